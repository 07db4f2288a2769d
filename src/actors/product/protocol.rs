//! The product entity's commands, replies and events.

use super::*;

/// A product's answer: its public record; for `Allot` the bucket's
/// allotted total; for `Holds` whether the order holds stock here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductReply {
    pub product: Product,
    pub allotted: u64,
    pub holds: bool,
    /// On hand, reserved and available after the command.
    pub levels: StockLevels,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductEvent {
    Created {
        product: Product,
    },
    Updated {
        product: Product,
    },
    StockHeld {
        order_id: String,
        quantity: u64,
        /// Absent in events recorded before movements had a time.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    StockReleased {
        order_id: String,
        quantity: u64,
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    StockConsumed {
        order_id: String,
        quantity: u64,
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    /// A movement the merchant recorded: on hand and available change by
    /// `quantity`.
    StockAdjusted {
        kind: crate::domain::inventory::AdjustmentKind,
        quantity: i64,
        reason: Option<String>,
        order_id: Option<String>,
        by: String,
        at: DateTime<Utc>,
    },
    /// An admin hid the product or lifted it.
    Moderated {
        hidden: Option<crate::domain::catalog::Moderation>,
        at: DateTime<Utc>,
    },
    /// Available fell to the low-stock threshold (crossing number `crossing`).
    LowStockReached {
        crossing: u64,
        available: u64,
        threshold: u64,
        at: DateTime<Utc>,
    },
    /// Available is above the threshold again (or it was removed).
    LowStockCleared {
        at: DateTime<Utc>,
    },
    /// Held stock moved from one holder to another (a flash sale's reserve
    /// to a claim's order, and back).
    StockTransferred {
        from: String,
        to: String,
        quantity: u64,
    },
    /// Units of the pool allotted to a bucket, which had `free` when it
    /// asked.
    Allotted {
        bucket: u32,
        units: u64,
        free: u64,
        changes: u64,
    },
    /// Units a bucket gave back, in the pool again; it has `free` left.
    Recovered {
        bucket: u32,
        units: u64,
        free: u64,
        changes: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProductCommand {
    /// Create in `shop`, which the caller must own.
    Create {
        caller: Caller,
        shop: Shop,
        input: ProductInput,
    },
    Update {
        caller: Caller,
        patch: ProductPatch,
    },
    Get,
    /// Add, reorder or remove an image (the owner).
    Media {
        caller: Caller,
        change: crate::domain::media::MediaChange,
    },
    /// The owner deletes the product: it reads as gone from then on (409
    /// `stock_held` while orders or a sale hold its stock). Again: a no-op.
    Delete {
        caller: Caller,
    },
    /// An admin hides the product (`Some`) or lifts its hiding (`None`;
    /// with `only_by_shop`, only a hiding that came with its shop's).
    Moderate {
        caller: Caller,
        hidden: Option<crate::domain::catalog::Moderation>,
        only_by_shop: bool,
    },
    /// Record a received, adjusted or returned movement (the owner);
    /// `returnable`: what the returned order had of the product.
    Adjust {
        caller: Caller,
        input: AdjustmentInput,
        returnable: u64,
    },
    /// Hold `quantity` for `order_id` (409 `out_of_stock` if not available).
    Hold {
        order_id: String,
        quantity: u64,
    },
    /// Give an order's held stock back.
    Release {
        order_id: String,
    },
    /// The order was delivered: its held stock is sold.
    Consume {
        order_id: String,
    },
    /// Move `quantity` held by `from` to `to` (a no-op once `to` holds
    /// stock; 409 `out_of_stock` when `from` holds too little).
    Transfer {
        from: String,
        to: String,
        quantity: u64,
    },
    /// Give everything `from` holds back to `to`, adding to what `to`
    /// holds (a no-op once `from` holds nothing).
    Return {
        from: String,
        to: String,
    },
    /// Whether `order_id` holds stock on the product itself (a split
    /// product's order held here at the end of its stock).
    Holds {
        order_id: String,
    },
    /// Bucket `bucket`, which has `free` units and is short of `need` for
    /// a hold, asks for more; answers its allotted total.
    Allot {
        bucket: u32,
        need: u64,
        free: u64,
        changes: u64,
    },
    /// Bucket `bucket` has given back `returned` units in total and has
    /// `free` left.
    Recover {
        bucket: u32,
        returned: u64,
        free: u64,
        changes: u64,
    },
}

pub(crate) fn product(state: &ProductState) -> Result<&Product, DomainError> {
    state
        .product
        .as_ref()
        .ok_or(DomainError::NotFound("product"))
}

/// The product, unless it was deleted (what its merchant and admins may
/// still change).
pub(super) fn live(state: &ProductState) -> Result<&Product, DomainError> {
    product(state).and_then(|p| match p.deleted_at {
        None => Ok(p),
        Some(_) => Err(DomainError::NotFound("product")),
    })
}
