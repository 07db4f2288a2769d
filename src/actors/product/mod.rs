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

mod apply;
mod decide;
mod inventory;
mod protocol;
mod state;
#[cfg(test)]
mod tests;

pub use inventory::{movement_key, StockAlert, ROW_VERSION as INVENTORY_ROW_VERSION};
pub use protocol::*;
pub use state::*;

pub(crate) use decide::admin_only;
use decide::*;

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
        apply::apply(state, event)
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
