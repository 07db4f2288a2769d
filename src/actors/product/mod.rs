//! The product entity: one actor per product, the single writer of its
//! stock. Checkouts hold stock per order (`Hold`), which a cancelled order
//! gives back (`Release`) and a delivered order consumes (`Consume`); all
//! three are idempotent per order id, so a retried step never counts twice.
//! Writes the `products` read table used by the catalog search.
//!
//! A product with `stock_buckets` > 1 also allots units to its buckets
//! (`stock_bucket`), which decide the holds of checkouts, and recovers what
//! they give back, both as growing totals per bucket. Its `stock` is then
//! the pool not allotted; the public record adds what each bucket last
//! said it had free (an upper bound: buckets only hold since).

mod inventory;

pub use inventory::{movement_key, StockAlert, ROW_VERSION as INVENTORY_ROW_VERSION};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::entity::record_row;
use super::{Ctx, Entity};
use crate::domain::catalog::{
    check_product, patch_product, Product, ProductInput, ProductPatch, Shop,
};
use crate::domain::inventory::{AdjustmentInput, StockLevels};
use crate::domain::{Caller, DomainError};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{
    INVENTORY, LOW_STOCK, PRODUCTS_TABLE, STOCK_ALERTS, STOCK_MOVEMENTS,
};
use crate::store::{codec, IndexOp};

pub struct ProductEntity;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductState {
    /// The public record; `stock` is what is still available.
    pub product: Option<Product>,
    /// Stock held by open orders: order id → quantity. A persistent map:
    /// deciding a hold clones the state (`evolve`) in O(1), not once per
    /// open order; decoded through its std counterpart (`codec::via`).
    #[serde(deserialize_with = "codec::via::<_, std::collections::BTreeMap<String, u64>, _>")]
    pub held: imbl::OrdMap<String, u64>,
    /// Split stock: per bucket, units allotted and recovered, in total.
    #[serde(default)]
    pub allotted: Vec<u64>,
    #[serde(default)]
    pub recovered: Vec<u64>,
    /// Per bucket, what it had free when it last asked or gave back, plus
    /// what was allotted to it since.
    #[serde(default)]
    pub bucket_free: Vec<u64>,
    /// Per bucket, how many changes it had made at that report (an older
    /// report arriving late does not overwrite a newer one).
    #[serde(default)]
    pub bucket_changes: Vec<u64>,
    /// The sum of `held` (`None` in states saved before it was kept:
    /// counted once, then kept).
    #[serde(default)]
    pub held_units: Option<u64>,
    /// Movements recorded: the newest one's seq.
    #[serde(default)]
    pub movements: u64,
    /// Available is at or below the threshold (and the crossing alerted).
    #[serde(default)]
    pub low: bool,
    /// Low-stock crossings so far.
    #[serde(default)]
    pub crossings: u64,
    /// Returned orders whose goods were put back (each once).
    #[serde(
        default,
        deserialize_with = "codec::via::<_, std::collections::BTreeSet<String>, _>"
    )]
    pub restocked: imbl::OrdSet<String>,
}

impl ProductState {
    /// Keeps `held_units` with a holder's change from `before` to `after`
    /// (counting `held` once if it was not kept yet).
    fn count_held(&mut self, before: Option<u64>, after: Option<u64>) {
        self.held_units = Some(match self.held_units {
            Some(t) => t
                .saturating_sub(before.unwrap_or(0))
                .saturating_add(after.unwrap_or(0)),
            // `held` already has the change.
            None => self.held.values().copied().sum(),
        });
    }

    /// The public record: the pool plus what the buckets have free.
    pub fn public(&self) -> Option<Product> {
        let mut p = self.product.clone()?;
        p.stock = p.stock.saturating_add(self.bucket_free.iter().sum::<u64>());
        Some(p)
    }
}

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

/// The product with its images changed by its owner.
fn media(
    state: &ProductState,
    caller: &Caller,
    change: &crate::domain::media::MediaChange,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = live(state)?;
    caller.ensure_owner(&p.owner_id, "product")?;
    let media = crate::domain::media::change(&p.media, change, crate::domain::media::MAX_MEDIA)?;
    Ok((media != p.media)
        .then(|| ProductEvent::Updated {
            product: Product {
                media,
                updated_at: now,
                ..p.clone()
            },
        })
        .into_iter()
        .collect())
}

/// Deletes the product (its owner), unless stock of it is held.
fn delete(
    state: &ProductState,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    caller.ensure_owner(&p.owner_id, "product")?;
    if p.deleted_at.is_some() {
        return Ok(vec![]);
    }
    let in_buckets = state
        .allotted
        .iter()
        .enumerate()
        .any(|(i, a)| *a > state.recovered.get(i).copied().unwrap_or(0));
    if !state.held.is_empty() || in_buckets {
        return Err(DomainError::conflict(
            "stock_held",
            "orders or a flash sale still hold its stock: set active to false and delete it when they are done",
        ));
    }
    Ok(vec![ProductEvent::Updated {
        product: Product {
            active: false,
            deleted_at: Some(now),
            updated_at: now,
            ..p.clone()
        },
    }])
}

/// A new product in `shop`, which `caller` must own.
fn create(
    state: &ProductState,
    caller: &Caller,
    shop: Shop,
    input: &ProductInput,
    ctx: &Ctx<'_>,
) -> Result<Vec<ProductEvent>, DomainError> {
    if state.product.is_some() {
        return Err(DomainError::conflict(
            "already_exists",
            "this product already exists",
        ));
    }
    caller.ensure_owner(&shop.owner_id, "shop")?;
    let input = check_product(input)?;
    let description = described(&input)?;
    let product = Product {
        id: ctx.id.into(),
        shop_id: shop.id,
        owner_id: shop.owner_id,
        name: input.name,
        category: input.category,
        price: input.price,
        currency: input.currency,
        stock: input.stock,
        weight_grams: input.weight_grams,
        stock_buckets: input.stock_buckets,
        low_stock_threshold: input.low_stock_threshold,
        category_id: input.category_id,
        hidden: None,
        active: true,
        media: Vec::new(),
        deleted_at: None,
        created_at: ctx.now,
        updated_at: ctx.now,
        sale: input.sale,
        description,
        brand: input.brand,
        attributes: input.attributes,
    };
    Ok(vec![ProductEvent::Created { product }])
}

/// The checked input's description, rendered.
fn described(
    input: &ProductInput,
) -> Result<Option<crate::domain::description::Description>, DomainError> {
    match &input.description {
        Some(d) => crate::domain::description::render(d),
        None => Ok(None),
    }
}

/// The product with `patch` applied, by its owner.
fn update(
    state: &ProductState,
    caller: &Caller,
    patch: &ProductPatch,
    ctx: &Ctx<'_>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let current = live(state)?;
    caller.ensure_owner(&current.owner_id, "product")?;
    let input = patch_product(current, patch)?;
    if input.stock_buckets != current.stock_buckets && !state.allotted.is_empty() {
        return Err(DomainError::conflict(
            "stock_buckets_fixed",
            "stock_buckets cannot change once a bucket has been stocked",
        ));
    }
    // A new stock is what is available: the buckets' free units count.
    let in_buckets: u64 = state.bucket_free.iter().sum();
    let stock = match patch.stock {
        Some(n) => n.saturating_sub(in_buckets),
        None => current.stock,
    };
    let description = match &patch.description {
        // Rendered again only when it changes.
        None => current.description.clone(),
        Some(_) => described(&input)?,
    };
    let product = Product {
        name: input.name,
        category: input.category,
        price: input.price,
        currency: input.currency,
        weight_grams: input.weight_grams,
        stock_buckets: input.stock_buckets,
        low_stock_threshold: input.low_stock_threshold,
        category_id: input.category_id,
        active: patch.active.unwrap_or(current.active),
        sale: input.sale,
        description,
        brand: input.brand,
        attributes: input.attributes,
        updated_at: ctx.now,
        ..current.clone()
    };
    let mut events = vec![ProductEvent::Updated { product }];
    // A new stock is recorded as the correction it is.
    if stock != current.stock {
        events.push(ProductEvent::StockAdjusted {
            kind: crate::domain::inventory::AdjustmentKind::Adjusted,
            quantity: stock as i64 - current.stock as i64,
            reason: Some(format!("available set to {}", patch.stock.unwrap_or(stock))),
            order_id: None,
            by: caller.user_id.to_string(),
            at: ctx.now,
        });
    }
    Ok(events)
}

/// Only admins moderate.
pub(crate) fn admin_only(caller: &Caller) -> Result<(), DomainError> {
    if caller.role == crate::domain::Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only admins moderate".into()))
    }
}

/// Hides the product or lifts its hiding; hiding a hidden product keeps
/// the first reason.
fn moderate(
    state: &ProductState,
    caller: &Caller,
    hidden: Option<crate::domain::catalog::Moderation>,
    only_by_shop: bool,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = live(state)?;
    admin_only(caller)?;
    let change = match (&p.hidden, &hidden) {
        (None, Some(_)) => true,
        (Some(now), None) => !only_by_shop || now.by_shop,
        _ => false,
    };
    Ok(change
        .then_some(ProductEvent::Moderated { hidden, at: now })
        .into_iter()
        .collect())
}

/// What `holder` (an order, or a claim's reservation) holds of an existing
/// product.
fn held(state: &ProductState, holder: &str) -> Result<Option<u64>, DomainError> {
    product(state)?;
    Ok(state.held.get(holder).copied())
}

/// Holds stock for an order (idempotent per order).
fn hold(
    state: &ProductState,
    order_id: String,
    quantity: u64,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    if state.held.contains_key(&order_id) {
        Ok(vec![])
    } else if !p.on_sale() {
        Err(DomainError::conflict(
            "product_unavailable",
            format!("{} is no longer sold", p.name),
        ))
    } else if quantity == 0 || p.stock < quantity {
        Err(DomainError::conflict(
            "out_of_stock",
            format!("only {} of {} left", p.stock, p.name),
        ))
    } else {
        Ok(vec![ProductEvent::StockHeld {
            order_id,
            quantity,
            at: Some(now),
        }])
    }
}

/// Moves held stock from one holder to another (idempotent per receiver).
fn transfer(
    state: &ProductState,
    from: String,
    to: String,
    quantity: u64,
) -> Result<Vec<ProductEvent>, DomainError> {
    product(state)?;
    if state.held.contains_key(&to) {
        Ok(vec![])
    } else if quantity == 0 || state.held.get(&from).copied().unwrap_or(0) < quantity {
        Err(DomainError::conflict(
            "out_of_stock",
            "the reserved stock is used up",
        ))
    } else {
        Ok(vec![ProductEvent::StockTransferred { from, to, quantity }])
    }
}

/// Units for bucket `bucket` (short of `need`): what it needs, or more,
/// up to its fair share of the pool (pool ÷ buckets), so refills are few:
/// each is two durable steps under the product's refill lock, and 32-unit
/// refills queued checkouts for 20 s in `mixed` at 250 journeys/s. The
/// last units (fewer than two per bucket) are not allotted: those holds
/// are decided by the product itself (`END_OF_STOCK`).
fn allot(
    state: &ProductState,
    bucket: u32,
    need: u64,
    (free, changes): (u64, u64),
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    if !p.on_sale() {
        return Err(DomainError::conflict(
            "product_unavailable",
            format!("{} is no longer sold", p.name),
        ));
    }
    if bucket >= p.stock_buckets {
        return Err(DomainError::conflict(
            "not_split",
            "this product's stock is not split over that many buckets",
        ));
    }
    let k = u64::from(p.stock_buckets);
    let share = p.stock / k;
    let units = if p.stock < END_OF_STOCK * k {
        0
    } else {
        need.max(share).min(p.stock)
    };
    Ok((units > 0)
        .then_some(ProductEvent::Allotted {
            bucket,
            units,
            free,
            changes,
        })
        .into_iter()
        .collect())
}

/// What bucket `bucket` gave back since the last recovery.
fn recover(
    state: &ProductState,
    bucket: u32,
    returned: u64,
    (free, changes): (u64, u64),
) -> Result<Vec<ProductEvent>, DomainError> {
    product(state)?;
    let i = bucket as usize;
    let done = state.recovered.get(i).copied().unwrap_or(0);
    let out = state.allotted.get(i).copied().unwrap_or(0);
    // Never more than was allotted: a bucket gives back only what it got.
    let units = returned.min(out).saturating_sub(done);
    let newer = changes > state.bucket_changes.get(i).copied().unwrap_or(0);
    let stale = newer && state.bucket_free.get(i).copied().unwrap_or(0) != free;
    Ok((units > 0 || stale)
        .then_some(ProductEvent::Recovered {
            bucket,
            units,
            free,
            changes,
        })
        .into_iter()
        .collect())
}

/// Bucket `bucket` said it had `free` units after `changes` changes: kept
/// unless a newer report came first.
fn report(state: &mut ProductState, bucket: u32, free: u64, changes: u64) {
    let seen = slot(&mut state.bucket_changes, bucket);
    if changes >= *seen {
        *seen = changes;
        *slot(&mut state.bucket_free, bucket) = free;
    }
}

/// Below this many units per bucket, a split product's pool is not
/// allotted any more: its holds go to the product (no refill per unit at
/// the end of a sale).
pub const END_OF_STOCK: u64 = 2;

/// `v[i]`, grown to hold it.
fn slot(v: &mut Vec<u64>, i: u32) -> &mut u64 {
    let i = i as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    &mut v[i]
}

impl Entity for ProductEntity {
    const KIND: &'static str = "product";
    type State = ProductState;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Reply = ProductReply;
    type Rejection = DomainError;

    fn decide(
        state: &ProductState,
        cmd: ProductCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ProductEvent>, ProductReply), DomainError> {
        let mut asked = None;
        let mut holder = None;
        let events = match cmd {
            ProductCommand::Create {
                caller,
                shop,
                input,
            } => create(state, &caller, shop, &input, ctx)?,
            ProductCommand::Update { caller, patch } => update(state, &caller, &patch, ctx)?,
            ProductCommand::Get => vec![],
            ProductCommand::Media { caller, change } => media(state, &caller, &change, ctx.now)?,
            ProductCommand::Delete { caller } => delete(state, &caller, ctx.now)?,
            ProductCommand::Adjust {
                caller,
                input,
                returnable,
            } => inventory::adjust(state, &caller, input, returnable, ctx.now)?,
            ProductCommand::Moderate {
                caller,
                hidden,
                only_by_shop,
            } => moderate(state, &caller, hidden, only_by_shop, ctx.now)?,
            ProductCommand::Holds { order_id } => {
                holder = Some(order_id);
                vec![]
            }
            ProductCommand::Hold { order_id, quantity } => {
                hold(state, order_id, quantity, ctx.now)?
            }
            ProductCommand::Release { order_id } => {
                let held = held(state, &order_id)?;
                held.map(|quantity| ProductEvent::StockReleased {
                    order_id,
                    quantity,
                    at: Some(ctx.now),
                })
                .into_iter()
                .collect()
            }
            ProductCommand::Transfer { from, to, quantity } => transfer(state, from, to, quantity)?,
            ProductCommand::Return { from, to } => {
                let held = held(state, &from)?;
                held.map(|quantity| ProductEvent::StockTransferred { from, to, quantity })
                    .into_iter()
                    .collect()
            }
            ProductCommand::Consume { order_id } => {
                let held = held(state, &order_id)?;
                held.map(|quantity| ProductEvent::StockConsumed {
                    order_id,
                    quantity,
                    at: Some(ctx.now),
                })
                .into_iter()
                .collect()
            }
            ProductCommand::Allot {
                bucket,
                need,
                free,
                changes,
            } => {
                asked = Some(bucket);
                allot(state, bucket, need, (free, changes))?
            }
            ProductCommand::Recover {
                bucket,
                returned,
                free,
                changes,
            } => recover(state, bucket, returned, (free, changes))?,
        };
        let mut events = events;
        let mut next = Self::evolve(state, &events);
        if let Some(crossed) = inventory::crossing(&next, ctx.now) {
            Self::apply(&mut next, &crossed);
            events.push(crossed);
        }
        let product = next.public().ok_or(DomainError::NotFound("product"))?;
        let allotted = asked
            .and_then(|b| next.allotted.get(b as usize).copied())
            .unwrap_or(0);
        let holds = holder.is_some_and(|o| next.held.contains_key(&o));
        Ok((
            events,
            ProductReply {
                product,
                allotted,
                holds,
                levels: next.levels(),
            },
        ))
    }

    fn apply(state: &mut ProductState, event: &ProductEvent) {
        if inventory::is_movement(event) {
            state.movements += 1;
        }
        match event {
            ProductEvent::Created { product } | ProductEvent::Updated { product } => {
                state.product = Some(product.clone())
            }
            ProductEvent::StockHeld {
                order_id, quantity, ..
            } => {
                let before = state.held.insert(order_id.clone(), *quantity);
                state.count_held(before, Some(*quantity));
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_sub(*quantity);
                }
            }
            ProductEvent::StockReleased {
                order_id, quantity, ..
            } => {
                let before = state.held.remove(order_id);
                state.count_held(before, None);
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_add(*quantity);
                }
            }
            ProductEvent::StockConsumed { order_id, .. } => {
                let before = state.held.remove(order_id);
                state.count_held(before, None);
            }
            ProductEvent::StockTransferred { from, to, quantity } => {
                // Held stays held: only the holders change.
                if let Some(q) = state.held.get_mut(from) {
                    *q = q.saturating_sub(*quantity);
                    if *q == 0 {
                        state.held.remove(from);
                    }
                }
                *state.held.entry(to.clone()).or_insert(0) += quantity;
            }
            ProductEvent::StockAdjusted {
                kind,
                quantity,
                order_id,
                ..
            } => {
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_add_signed(*quantity);
                }
                if *kind == crate::domain::inventory::AdjustmentKind::Returned {
                    if let Some(o) = order_id {
                        state.restocked.insert(o.clone());
                    }
                }
            }
            ProductEvent::LowStockReached { crossing, .. } => {
                state.low = true;
                state.crossings = *crossing;
            }
            ProductEvent::LowStockCleared { .. } => state.low = false,
            ProductEvent::Moderated { hidden, at } => {
                if let Some(p) = state.product.as_mut() {
                    p.hidden = hidden.clone();
                    // Dated now: the search indexers follow catalog
                    // changes by their time.
                    p.updated_at = *at;
                }
            }
            ProductEvent::Allotted {
                bucket,
                units,
                free,
                changes,
            } => {
                *slot(&mut state.allotted, *bucket) += units;
                slot(&mut state.recovered, *bucket);
                report(state, *bucket, *free, *changes);
                *slot(&mut state.bucket_free, *bucket) += units;
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_sub(*units);
                }
            }
            ProductEvent::Recovered {
                bucket,
                units,
                free,
                changes,
            } => {
                *slot(&mut state.recovered, *bucket) += units;
                report(state, *bucket, *free, *changes);
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_add(*units);
                }
            }
        }
    }

    /// The `products` row, a catalog feed row when what search shows of it
    /// changed (not on every stock hold), and the inventory's rows
    /// (movements, the shop's lines, low-stock alerts).
    fn index(
        id: &str,
        before: &ProductState,
        state: &ProductState,
        events: &[ProductEvent],
    ) -> Vec<IndexOp> {
        let after = state.public();
        let mut ops = match after.as_ref().filter(|p| p.deleted_at.is_some()) {
            // A deleted product leaves every listing.
            Some(_) => vec![IndexOp::Delete {
                table: PRODUCTS_TABLE,
                key: id.to_owned(),
            }],
            None => record_row(PRODUCTS_TABLE, id, Self::VERSION, after.as_ref()),
        };
        ops.extend(inventory::rows(id, before, state, events));
        if let Some(p) = after {
            type Seen<'a> = (
                (&'a str, &'a str, u64, &'a str, bool),
                (
                    Option<&'a str>,
                    Option<&'a str>,
                    &'a crate::domain::catalog::Attributes,
                ),
            );
            fn seen(p: &Product) -> Seen<'_> {
                (
                    (&p.name, &p.category, p.price, &p.currency, p.on_sale()),
                    (
                        p.description.as_ref().map(|d| d.markdown.as_str()),
                        p.brand.as_deref(),
                        &p.attributes,
                    ),
                )
            }
            if before.product.as_ref().map(seen) != Some(seen(&p)) {
                ops.push(super::entity::catalog_change("product", id, p.updated_at));
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use chrono::Utc;

    /// A product of `stock` (id `p`) in shop `s` of merchant `m`.
    pub(super) fn created(stock: u64) -> ProductState {
        let caller = Caller {
            user_id: "m".into(),
            role: Role::Merchant,
        };
        let now = Utc::now();
        let shop = Shop {
            id: "s".into(),
            owner_id: "m".into(),
            name: "S".into(),
            location: crate::domain::GeoPoint { lat: 0.0, lng: 0.0 },
            address: "a".into(),
            hidden: None,
            created_at: now,
            updated_at: now,
        };
        let input = ProductInput {
            name: "Mat".into(),
            category: "yoga".into(),
            price: 100,
            currency: "VND".into(),
            stock,
            weight_grams: 1,
            stock_buckets: 1,
            low_stock_threshold: None,
            category_id: None,
            sale: None,
            description: None,
            brand: None,
            attributes: Default::default(),
        };
        run(
            &ProductState::default(),
            ProductCommand::Create {
                caller,
                shop,
                input,
            },
        )
        .unwrap()
    }

    /// A product of `stock` split over `k` buckets.
    fn split(stock: u64, k: u32) -> ProductState {
        let mut s = created(stock);
        s.product.as_mut().unwrap().stock_buckets = k;
        s
    }

    mod model {
        use super::*;
        use crate::actors::stock_bucket::{BucketCommand, BucketState, StockBucketEntity};
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// Order `order` holds `quantity` in bucket `bucket`, by the
            /// service's protocol; `lose` drops the step after the allotment
            /// (a crash between the product's event and the bucket's).
            Hold {
                order: u8,
                bucket: u32,
                quantity: u64,
                lose: bool,
            },
            Release(u8),
            Consume(u8),
            /// A bucket gives back what it has free; `lose` drops the
            /// product's recovery.
            Drain {
                bucket: u32,
                lose: bool,
            },
            /// A bucket refilled ahead of need; `lose` drops its grant.
            RefillAhead {
                bucket: u32,
                lose: bool,
            },
            /// Order `order` holds on the product itself (the end of the
            /// stock).
            HoldOnProduct {
                order: u8,
                quantity: u64,
            },
        }

        fn op(k: u32) -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0u8..24, 0..k, 1u64..4, proptest::bool::weighted(0.2)).prop_map(
                    |(order, bucket, quantity, lose)| Op::Hold { order, bucket, quantity, lose }
                ),
                1 => (0u8..24).prop_map(Op::Release),
                1 => (0u8..24).prop_map(Op::Consume),
                1 => (0..k, proptest::bool::weighted(0.2))
                    .prop_map(|(bucket, lose)| Op::Drain { bucket, lose }),
                1 => (0..k, proptest::bool::weighted(0.2))
                    .prop_map(|(bucket, lose)| Op::RefillAhead { bucket, lose }),
                1 => (0u8..24, 1u64..4)
                    .prop_map(|(order, quantity)| Op::HoldOnProduct { order, quantity }),
            ]
        }

        fn bucket(
            b: &BucketState,
            cmd: BucketCommand,
        ) -> (BucketState, crate::actors::stock_bucket::BucketView) {
            let ctx = Ctx {
                id: "p~0",
                now: Utc::now(),
            };
            let (events, view) = StockBucketEntity::decide(b, cmd, &ctx).unwrap();
            (StockBucketEntity::evolve(b, &events), view)
        }

        fn product(p: &ProductState, cmd: ProductCommand) -> (ProductState, u64) {
            let ctx = Ctx {
                id: "p",
                now: Utc::now(),
            };
            let (events, reply) = ProductEntity::decide(p, cmd, &ctx).unwrap();
            (ProductEntity::evolve(p, &events), reply.allotted)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            /// Whatever the order of holds, releases, sales and drains, and
            /// whichever second steps are lost: no unit is held or sold
            /// twice, the pool never goes below zero, and every unit is
            /// somewhere (pool, in flight, or a bucket).
            #[test]
            fn split_stock_never_oversells(
                stock in 0u64..40,
                k in 2u32..5,
                ops in proptest::collection::vec(op(4), 1..80),
            ) {
                let mut p = split(stock, k);
                let mut buckets = vec![BucketState::default(); k as usize];
                let mut at: std::collections::HashMap<u8, usize> = Default::default();
                // Orders held on the product, and units it sold.
                let mut on_product = std::collections::HashSet::new();
                let mut sold_on_product = 0;
                for op in ops {
                    match op {
                        Op::Hold { order, bucket: b, quantity, lose } => {
                            let b = (b % k) as usize;
                            let id = format!("o{order}");
                            if at.get(&order).is_some_and(|&h| h != b) || on_product.contains(&order) {
                                continue; // an order's hold lives in one place
                            }
                            let hold = |grant| BucketCommand::Hold { order_id: id.clone(), quantity, grant };
                            let (next, seen) = bucket(&buckets[b], hold(None));
                            buckets[b] = next;
                            if !seen.holds {
                                let allot = ProductCommand::Allot {
                                    bucket: b as u32,
                                    need: quantity.saturating_sub(seen.free),
                                    free: seen.free,
                                    changes: seen.changes,
                                };
                                let (next, allotted) = product(&p, allot);
                                p = next;
                                if !lose {
                                    let (next, _) = bucket(&buckets[b], hold(Some(allotted)));
                                    buckets[b] = next;
                                }
                            }
                            if buckets[b].held.contains_key(&id) {
                                at.insert(order, b);
                            }
                        }
                        Op::HoldOnProduct { order, quantity } => {
                            if at.contains_key(&order) {
                                continue;
                            }
                            let hold = ProductCommand::Hold { order_id: format!("o{order}"), quantity };
                            let ctx = Ctx { id: "p", now: Utc::now() };
                            if let Ok((events, _)) = ProductEntity::decide(&p, hold, &ctx) {
                                p = ProductEntity::evolve(&p, &events);
                                on_product.insert(order);
                            }
                        }
                        Op::RefillAhead { bucket: b, lose } => {
                            let b = (b % k) as usize;
                            let seen = buckets[b].clone();
                            let allot = ProductCommand::Allot {
                                bucket: b as u32,
                                need: 0,
                                free: seen.free(),
                                changes: seen.changes,
                            };
                            let (next, allotted) = product(&p, allot);
                            p = next;
                            if !lose {
                                buckets[b] = bucket(&buckets[b], BucketCommand::Grant { total: allotted }).0;
                            }
                        }
                        Op::Release(order) | Op::Consume(order) if on_product.contains(&order) => {
                            let id = format!("o{order}");
                            if matches!(op, Op::Release(_)) {
                                p = product(&p, ProductCommand::Release { order_id: id }).0;
                            } else {
                                sold_on_product += p.held.get(&id).copied().unwrap_or(0);
                                p = product(&p, ProductCommand::Consume { order_id: id }).0;
                            }
                            on_product.remove(&order);
                        }
                        Op::Release(order) | Op::Consume(order) => {
                            let Some(&b) = at.get(&order) else { continue };
                            let id = format!("o{order}");
                            let cmd = if matches!(op, Op::Release(_)) {
                                at.remove(&order);
                                BucketCommand::Release { order_id: id }
                            } else {
                                BucketCommand::Consume { order_id: id }
                            };
                            buckets[b] = bucket(&buckets[b], cmd).0;
                        }
                        Op::Drain { bucket: b, lose } => {
                            let b = (b % k) as usize;
                            let (next, back) = bucket(&buckets[b], BucketCommand::GiveBack);
                            buckets[b] = next;
                            if !lose {
                                let recover = ProductCommand::Recover {
                                    bucket: b as u32,
                                    returned: back.returned,
                                    free: back.free,
                                    changes: back.changes,
                                };
                                p = product(&p, recover).0;
                            }
                        }
                    }
                    let pool = p.product.as_ref().unwrap().stock;
                    let mut out = 0;
                    for (i, s) in buckets.iter().enumerate() {
                        let allotted = p.allotted.get(i).copied().unwrap_or(0);
                        let recovered = p.recovered.get(i).copied().unwrap_or(0);
                        prop_assert!(s.received <= allotted, "granted only what was allotted");
                        prop_assert!(recovered <= s.returned, "recovered only what was given back");
                        prop_assert_eq!(s.held_units + s.sold + s.free() + s.returned, s.received);
                        prop_assert_eq!(s.held.values().sum::<u64>(), s.held_units);
                        out += allotted - recovered;
                    }
                    let on_p: u64 = p.held.values().sum();
                    prop_assert_eq!(
                        pool + out + on_p + sold_on_product,
                        stock,
                        "every unit in the pool, out in a bucket, or held or sold on the product"
                    );
                    let taken: u64 = buckets.iter().map(|s| s.held_units + s.sold).sum::<u64>()
                        + on_p
                        + sold_on_product;
                    prop_assert!(taken <= stock, "never more held and sold than there is");
                }
            }
        }
    }

    fn run(state: &ProductState, cmd: ProductCommand) -> Result<ProductState, DomainError> {
        let (events, _) = ProductEntity::decide(
            state,
            cmd,
            &Ctx {
                id: "p",
                now: Utc::now(),
            },
        )?;
        Ok(ProductEntity::evolve(state, &events))
    }

    fn hold(order: &str, q: u64) -> ProductCommand {
        ProductCommand::Hold {
            order_id: order.into(),
            quantity: q,
        }
    }

    #[test]
    fn a_product_is_deleted_only_when_nothing_holds_it_and_is_then_gone_for_changes() {
        let owner = || Caller {
            user_id: "m".into(),
            role: Role::Merchant,
        };
        let delete = || ProductCommand::Delete { caller: owner() };
        let held = run(&created(3), hold("o1", 1)).unwrap();
        let refused = run(&held, delete()).unwrap_err();
        assert!(matches!(
            refused,
            DomainError::Conflict {
                code: "stock_held",
                ..
            }
        ));
        let stranger = Caller {
            user_id: "x".into(),
            role: Role::Merchant,
        };
        assert!(run(&created(3), ProductCommand::Delete { caller: stranger }).is_err());
        let released = run(
            &held,
            ProductCommand::Release {
                order_id: "o1".into(),
            },
        )
        .unwrap();
        let gone = run(&released, delete()).unwrap();
        assert!(gone.product.as_ref().unwrap().deleted_at.is_some());
        assert_eq!(run(&gone, delete()).unwrap(), gone, "again: nothing");
        assert!(run(&gone, hold("o2", 1)).is_err(), "not sold");
        let patch = ProductCommand::Update {
            caller: owner(),
            patch: crate::domain::catalog::ProductPatch::default(),
        };
        assert!(matches!(run(&gone, patch), Err(DomainError::NotFound(_))));
        let add =
            ProductCommand::Media {
                caller: owner(),
                change: crate::domain::media::MediaChange::Add(
                    crate::domain::media::MediaRef::new("i".into(), "image/jpeg", 1, 1),
                ),
            };
        assert!(matches!(run(&gone, add), Err(DomainError::NotFound(_))));
        // Its rows leave the listings and the inventory.
        let ops = ProductEntity::index("p", &released, &gone, &[]);
        let deleted: Vec<&str> = ops
            .iter()
            .filter_map(|op| match op {
                IndexOp::Delete { table, .. } => Some(*table),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, vec![PRODUCTS_TABLE, INVENTORY, LOW_STOCK]);
    }

    #[test]
    fn holds_answers_whether_an_order_holds_on_the_product() {
        let s = run(&created(3), hold("o1", 1)).unwrap();
        let holds = |order: &str| {
            let cmd = ProductCommand::Holds {
                order_id: order.into(),
            };
            let ctx = Ctx {
                id: "p",
                now: Utc::now(),
            };
            let (events, reply) = ProductEntity::decide(&s, cmd, &ctx).unwrap();
            assert!(events.is_empty(), "a read");
            reply.holds
        };
        assert!(holds("o1"));
        assert!(!holds("o2"));
    }

    #[test]
    fn holds_never_exceed_stock_and_are_idempotent() {
        let s = created(3);
        let s = run(&s, hold("o1", 2)).unwrap();
        assert_eq!(s.product.as_ref().unwrap().stock, 1);
        let again = run(&s, hold("o1", 2)).unwrap();
        assert_eq!(again, s, "holding twice for one order counts once");
        assert!(matches!(
            run(&s, hold("o2", 2)),
            Err(DomainError::Conflict {
                code: "out_of_stock",
                ..
            })
        ));
        assert!(matches!(
            run(&s, hold("o2", 0)),
            Err(DomainError::Conflict {
                code: "out_of_stock",
                ..
            })
        ));
        let s = run(
            &s,
            ProductCommand::Release {
                order_id: "o1".into(),
            },
        )
        .unwrap();
        assert_eq!(s.product.as_ref().unwrap().stock, 3);
        assert_eq!(
            run(
                &s,
                ProductCommand::Release {
                    order_id: "o1".into()
                }
            )
            .unwrap(),
            s,
            "release is idempotent"
        );
        let s = run(&s, hold("o3", 3)).unwrap();
        let s = run(
            &s,
            ProductCommand::Consume {
                order_id: "o3".into(),
            },
        )
        .unwrap();
        assert_eq!(
            (s.product.as_ref().unwrap().stock, s.held.len()),
            (0, 0),
            "consumed stock does not come back"
        );
    }
}
