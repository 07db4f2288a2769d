//! Inventory: what a product's stock levels mean, the movements that change
//! them, and when a level counts as low.
//!
//! - `available`: units a checkout can hold now (the product's public
//!   `stock`);
//! - `reserved`: units held by open orders and flash-sale reserves;
//! - `on_hand` = `available` + `reserved`: units in the shop. A sale leaves
//!   `on_hand` when its order is delivered (`sold`).
//!
//! Every change is a movement recorded with the levels it left.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::catalog::MAX_STOCK;
use super::{check_text, DomainError};

/// What moved stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods came in (on hand and available grow).
    Received,
    /// A correction, with its reason (a count, damage, loss): either way.
    Adjusted,
    /// Goods of a returned order put back on sale after inspection.
    Returned,
    /// An order (or a flash sale) holds units: available → reserved.
    Reserved,
    /// A hold ended without a sale: reserved → available.
    Released,
    /// An order was delivered: its reserved units leave on hand.
    Sold,
}

/// The three levels (see the module's text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLevels {
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

impl StockLevels {
    /// Levels from what is available and what is reserved.
    pub fn new(available: u64, reserved: u64) -> Self {
        StockLevels {
            on_hand: available.saturating_add(reserved),
            reserved,
            available,
        }
    }
}

/// One movement, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Movement {
    /// 1, 2, … per product: the order movements happened in.
    pub seq: u64,
    pub kind: MovementKind,
    /// Units moved: for `received`, `adjusted` and `returned` the signed
    /// change of on hand (and available); for the others the units held,
    /// released or sold.
    pub quantity: i64,
    /// The order (or `sale:{id}` reserve) behind a hold, release or sale;
    /// the returned order behind a return.
    pub order_id: Option<String>,
    pub reason: Option<String>,
    /// Who recorded a received, adjusted or returned movement.
    pub by: Option<String>,
    /// When (absent for holds recorded before movements had a time).
    pub at: Option<DateTime<Utc>>,
    /// The levels the movement left.
    pub levels: StockLevels,
}

/// The movements a merchant records by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Received,
    Adjusted,
    Returned,
}

impl From<AdjustmentKind> for MovementKind {
    fn from(k: AdjustmentKind) -> Self {
        match k {
            AdjustmentKind::Received => MovementKind::Received,
            AdjustmentKind::Adjusted => MovementKind::Adjusted,
            AdjustmentKind::Returned => MovementKind::Returned,
        }
    }
}

/// `POST /products/{id}/inventory/adjustments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentInput {
    /// `adjusted` (default): a correction, either way, with a reason;
    /// `received`: goods came in (positive); `returned`: goods of a
    /// returned order (`order_id`) put back on sale (positive, at most
    /// what the order had of the product, once per order).
    #[serde(default = "adjusted")]
    pub kind: AdjustmentKind,
    /// The change of on hand: signed for `adjusted`, positive otherwise.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub quantity: i64,
    /// Why (required for `adjusted`): 1 to 200 characters.
    pub reason: Option<String>,
    /// The returned order (`returned` only).
    pub order_id: Option<crate::domain::ids::OrderId>,
}

fn adjusted() -> AdjustmentKind {
    AdjustmentKind::Adjusted
}

/// The input with its text checked: quantity within bounds and of the
/// right sign for its kind, a reason for a correction, an order for a
/// return (and only then).
pub fn check_adjustment(input: &AdjustmentInput) -> Result<AdjustmentInput, DomainError> {
    let bound = MAX_STOCK as i64;
    if input.quantity == 0 || input.quantity.abs() > bound {
        return Err(DomainError::invalid(
            "quantity",
            format!("quantity must be between -{bound} and {bound}, and not 0"),
        ));
    }
    if input.kind != AdjustmentKind::Adjusted && input.quantity < 0 {
        return Err(DomainError::invalid(
            "quantity",
            "received and returned quantities are positive (correct with `adjusted`)",
        ));
    }
    let reason = match (&input.reason, input.kind) {
        (Some(r), _) => Some(check_text("reason", r, 200)?),
        (None, AdjustmentKind::Adjusted) => {
            return Err(DomainError::invalid(
                "reason",
                "an adjustment needs a reason",
            ))
        }
        (None, _) => None,
    };
    match (&input.order_id, input.kind) {
        (None, AdjustmentKind::Returned) => {
            return Err(DomainError::invalid(
                "order_id",
                "a return names the returned order",
            ))
        }
        (Some(_), AdjustmentKind::Received | AdjustmentKind::Adjusted) => {
            return Err(DomainError::invalid(
                "order_id",
                "only a return names an order",
            ))
        }
        _ => {}
    }
    Ok(AdjustmentInput {
        reason,
        ..input.clone()
    })
}

/// Whether `available` is low against `threshold` (at or below it).
pub fn is_low(threshold: Option<u64>, available: u64) -> bool {
    threshold.is_some_and(|t| available <= t)
}

/// A shop's view of one product's stock: the inventory listing, the
/// low-stock list and the CSV export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InventoryItem {
    pub product_id: crate::domain::ids::ProductId,
    pub shop_id: crate::domain::ids::ShopId,
    pub name: String,
    pub category: String,
    #[serde(flatten)]
    pub levels: StockLevels,
    pub low_stock_threshold: Option<u64>,
    /// At or below the threshold.
    pub low: bool,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        kind: AdjustmentKind,
        quantity: i64,
        reason: Option<&str>,
        order: bool,
    ) -> AdjustmentInput {
        AdjustmentInput {
            kind,
            quantity,
            reason: reason.map(str::to_owned),
            order_id: order.then(|| "o1".into()),
        }
    }

    #[test]
    fn adjustments_need_the_right_sign_reason_and_order() {
        use AdjustmentKind::*;
        assert!(check_adjustment(&input(Adjusted, -3, Some("broken"), false)).is_ok());
        assert!(check_adjustment(&input(Received, 10, None, false)).is_ok());
        assert!(check_adjustment(&input(Returned, 1, None, true)).is_ok());
        for bad in [
            input(Adjusted, 0, Some("x"), false),
            input(Adjusted, -3, None, false),
            input(Adjusted, -3, Some("  "), false),
            input(Received, -1, None, false),
            input(Returned, -1, None, true),
            input(Returned, 1, None, false),
            input(Received, 1, None, true),
            input(Adjusted, MAX_STOCK as i64 + 1, Some("x"), false),
        ] {
            assert!(check_adjustment(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn low_means_at_or_below_the_threshold() {
        assert!(is_low(Some(5), 5));
        assert!(is_low(Some(0), 0));
        assert!(!is_low(Some(5), 6));
        assert!(!is_low(None, 0));
    }
}
