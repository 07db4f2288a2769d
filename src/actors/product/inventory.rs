//! The product's inventory: its levels, the movements a merchant records
//! (received, adjusted, returned), the low-stock crossings, and the rows
//! they leave (history, the shop's inventory and low-stock lists, alerts).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ProductEntity, ProductEvent, ProductState};
use crate::actors::Entity;
use crate::domain::inventory::{
    is_low, AdjustmentInput, AdjustmentKind, InventoryItem, Movement, MovementKind, StockLevels,
};
use crate::domain::{Caller, DomainError};
use crate::store::tables::{INVENTORY, LOW_STOCK, STOCK_ALERTS, STOCK_MOVEMENTS};
use crate::store::{codec, IndexOp};

/// Version of the rows of `stock_movements`, `inventory`, `low_stock` and
/// `stock_alerts`.
pub const ROW_VERSION: u16 = 1;

/// A low-stock crossing waiting to be told to the merchant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockAlert {
    pub merchant_id: String,
    pub product_id: String,
    pub shop_id: String,
    pub name: String,
    pub available: u64,
    pub threshold: u64,
    /// 1, 2, … per product.
    pub crossing: u64,
    pub at: DateTime<Utc>,
}

impl ProductState {
    /// Units held on the product itself.
    fn held_here(&self) -> u64 {
        self.held_units
            .unwrap_or_else(|| self.held.values().copied().sum())
    }

    /// On hand, reserved and available. For a split product, each bucket
    /// counts as it last reported: what it was allotted and has not given
    /// back is on hand, what it had free is available.
    pub fn levels(&self) -> StockLevels {
        let pool = self.product.as_ref().map_or(0, |p| p.stock);
        let free: u64 = self.bucket_free.iter().sum();
        let in_buckets: u64 = self
            .allotted
            .iter()
            .zip(self.recovered.iter().chain(std::iter::repeat(&0)))
            .map(|(a, r)| a.saturating_sub(*r))
            .sum();
        StockLevels::new(
            pool.saturating_add(free),
            self.held_here()
                .saturating_add(in_buckets.saturating_sub(free)),
        )
    }

    /// The shop's line for this product.
    pub fn item(&self) -> Option<InventoryItem> {
        let p = self.product.as_ref()?;
        let levels = self.levels();
        Some(InventoryItem {
            product_id: p.id.clone(),
            shop_id: p.shop_id.clone(),
            name: p.name.clone(),
            category: p.category.clone(),
            levels,
            low_stock_threshold: p.low_stock_threshold,
            low: is_low(p.low_stock_threshold, levels.available),
            active: p.active,
            updated_at: p.updated_at,
        })
    }
}

/// A movement the merchant records: checked against the product. A
/// decrease takes only units neither held nor in a bucket (on hand never
/// goes below reserved); a return puts back at most `returnable` units
/// (what the returned order had of the product, as the service found it),
/// once per order.
pub(super) fn adjust(
    state: &ProductState,
    caller: &Caller,
    input: AdjustmentInput,
    returnable: u64,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = super::live(state)?;
    caller.ensure_owner(&p.owner_id, "product")?;
    let input = crate::domain::inventory::check_adjustment(&input)?;
    if input.quantity < 0 && input.quantity.unsigned_abs() > p.stock {
        return Err(DomainError::conflict(
            "below_reserved",
            format!(
                "only {} units are neither reserved nor in a stock bucket: on hand cannot go below what is reserved",
                p.stock
            ),
        ));
    }
    let over = p
        .stock
        .saturating_add(state.levels().reserved)
        .saturating_add(input.quantity.max(0) as u64);
    if over > crate::domain::catalog::MAX_STOCK {
        return Err(DomainError::invalid(
            "quantity",
            format!("on hand would exceed {}", crate::domain::catalog::MAX_STOCK),
        ));
    }
    let order_id = input.order_id.map(|o| o.to_string());
    if input.kind == AdjustmentKind::Returned {
        let order = order_id.as_deref().unwrap_or_default();
        if state.restocked.contains(order) {
            return Err(DomainError::conflict(
                "already_returned",
                "this order's goods were already put back",
            ));
        }
        if input.quantity as u64 > returnable {
            return Err(DomainError::invalid(
                "quantity",
                format!("the order had {returnable} of this product"),
            ));
        }
    }
    Ok(vec![ProductEvent::StockAdjusted {
        kind: input.kind,
        quantity: input.quantity,
        reason: input.reason,
        order_id,
        by: caller.user_id.to_string(),
        at: now,
    }])
}

/// The crossing event the state after `events` calls for, if any: low
/// once available falls to the threshold, cleared once it is above it
/// again (or the threshold is gone). One alert per crossing.
pub(super) fn crossing(next: &ProductState, now: DateTime<Utc>) -> Option<ProductEvent> {
    let p = next.product.as_ref()?;
    let available = next.levels().available;
    let low = is_low(p.low_stock_threshold, available);
    match (low, next.low) {
        (true, false) => Some(ProductEvent::LowStockReached {
            crossing: next.crossings + 1,
            available,
            threshold: p.low_stock_threshold.unwrap_or(0),
            at: now,
        }),
        (false, true) => Some(ProductEvent::LowStockCleared { at: now }),
        _ => None,
    }
}

/// What `event` moved: the movement without its seq and levels.
fn movement(event: &ProductEvent) -> Option<Movement> {
    let order = |kind, quantity: &u64, order_id: &str, at: &Option<DateTime<Utc>>| Movement {
        seq: 0,
        kind,
        quantity: i64::try_from(*quantity).unwrap_or(i64::MAX),
        order_id: Some(order_id.to_owned()),
        reason: None,
        by: None,
        at: *at,
        levels: StockLevels::default(),
    };
    Some(match event {
        ProductEvent::StockHeld {
            order_id,
            quantity,
            at,
        } => order(MovementKind::Reserved, quantity, order_id, at),
        ProductEvent::StockReleased {
            order_id,
            quantity,
            at,
        } => order(MovementKind::Released, quantity, order_id, at),
        ProductEvent::StockConsumed {
            order_id,
            quantity,
            at,
        } => order(MovementKind::Sold, quantity, order_id, at),
        ProductEvent::StockAdjusted {
            kind,
            quantity,
            reason,
            order_id,
            by,
            at,
        } => Movement {
            seq: 0,
            kind: MovementKind::from(*kind),
            quantity: *quantity,
            order_id: order_id.clone(),
            reason: reason.clone(),
            by: Some(by.clone()),
            at: Some(*at),
            levels: StockLevels::default(),
        },
        _ => return None,
    })
}

/// Whether `event` is a movement (counted in `movements`).
pub(super) fn is_movement(event: &ProductEvent) -> bool {
    matches!(
        event,
        ProductEvent::StockHeld { .. }
            | ProductEvent::StockReleased { .. }
            | ProductEvent::StockConsumed { .. }
            | ProductEvent::StockAdjusted { .. }
    )
}

fn row<T: Serialize>(table: &'static str, key: String, value: &T) -> IndexOp {
    IndexOp::Put {
        table,
        key,
        value: codec::encode(ROW_VERSION, value).expect("inventory rows encode"),
    }
}

/// The key of movement `seq` of `product`: newest first.
pub fn movement_key(product: &str, seq: u64) -> String {
    format!("{product}|{:020}", u64::MAX - seq)
}

/// The rows the events leave: one history row per movement (with the
/// levels it left), the shop's inventory line when it changed, the
/// low-stock line while low, and an alert per crossing.
pub(super) fn rows(
    id: &str,
    before: &ProductState,
    after: &ProductState,
    events: &[ProductEvent],
) -> Vec<IndexOp> {
    let Some(p) = after.product.as_ref() else {
        return vec![];
    };
    let mut ops = Vec::new();
    let mut s = before.clone();
    for e in events {
        ProductEntity::apply(&mut s, e);
        if let Some(m) = movement(e) {
            let m = Movement {
                seq: s.movements,
                levels: s.levels(),
                ..m
            };
            ops.push(row(STOCK_MOVEMENTS, movement_key(id, m.seq), &m));
        }
        if let ProductEvent::LowStockReached {
            crossing,
            available,
            threshold,
            at,
        } = e
        {
            let alert = StockAlert {
                merchant_id: p.owner_id.to_string(),
                product_id: id.to_owned(),
                shop_id: p.shop_id.to_string(),
                name: p.name.clone(),
                available: *available,
                threshold: *threshold,
                crossing: *crossing,
                at: *at,
            };
            ops.push(row(STOCK_ALERTS, format!("{id}|{crossing:020}"), &alert));
        }
    }
    if p.deleted_at.is_some() {
        let key = format!("{}|{id}", p.shop_id);
        ops.extend([INVENTORY, LOW_STOCK].map(|table| IndexOp::Delete {
            table,
            key: key.clone(),
        }));
        return ops;
    }
    let item = after.item();
    if before.item() != item {
        let item = item.expect("the product exists");
        let key = format!("{}|{id}", p.shop_id);
        ops.push(row(INVENTORY, key.clone(), &item));
        if after.low {
            ops.push(row(LOW_STOCK, key, &item));
        } else if before.low {
            ops.push(IndexOp::Delete {
                table: LOW_STOCK,
                key,
            });
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::product::ProductCommand;
    use crate::actors::Ctx;
    use crate::domain::catalog::ProductPatch;
    use crate::domain::Role;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn owner() -> Caller {
        Caller {
            user_id: "m".into(),
            role: Role::Merchant,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Hold(u8, u64),
        Release(u8),
        Consume(u8),
        Adjust(i64),
        Receive(u64),
        Threshold(Option<u64>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12, 1u64..6).prop_map(|(o, q)| Op::Hold(o, q)),
            2 => (0u8..12).prop_map(Op::Release),
            2 => (0u8..12).prop_map(Op::Consume),
            2 => (-8i64..8).prop_map(Op::Adjust),
            1 => (1u64..10).prop_map(Op::Receive),
            1 => proptest::option::of(0u64..12).prop_map(Op::Threshold),
        ]
    }

    fn command(op: &Op) -> ProductCommand {
        let adjust = |kind, quantity| ProductCommand::Adjust {
            caller: owner(),
            input: AdjustmentInput {
                kind,
                quantity,
                reason: Some("count".into()),
                order_id: None,
            },
            returnable: 0,
        };
        match op {
            Op::Hold(o, q) => ProductCommand::Hold {
                order_id: format!("o{o}"),
                quantity: *q,
            },
            Op::Release(o) => ProductCommand::Release {
                order_id: format!("o{o}"),
            },
            Op::Consume(o) => ProductCommand::Consume {
                order_id: format!("o{o}"),
            },
            Op::Adjust(q) => adjust(AdjustmentKind::Adjusted, *q),
            Op::Receive(q) => adjust(AdjustmentKind::Received, *q as i64),
            Op::Threshold(t) => ProductCommand::Update {
                caller: owner(),
                patch: ProductPatch {
                    low_stock_threshold: Some(*t),
                    ..ProductPatch::default()
                },
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the interleaving of orders' holds, releases and sales
        /// with the merchant's movements: the levels are what an
        /// independent count says (on hand = available + reserved, never a
        /// reserved unit taken), every movement has its history row with
        /// the levels it left, and each crossing of the threshold makes
        /// exactly one alert.
        #[test]
        fn levels_history_and_alerts_follow_any_interleaving(
            stock in 0u64..20,
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let now = Utc::now();
            let ctx = Ctx { id: "p", now };
            let mut state = super::super::tests::created(stock);
            // The independent count.
            let (mut on_hand, mut holds) = (stock, HashMap::<String, u64>::new());
            let mut threshold: Option<u64> = None;
            let (mut low, mut crossings) = (false, 0u64);
            let (mut rows, mut alerts) = (0u64, 0u64);
            for op in ops {
                let reserved: u64 = holds.values().sum();
                let available = on_hand - reserved;
                let accepted = match &op {
                    Op::Hold(o, q) => {
                        match holds.entry(format!("o{o}")) {
                            std::collections::hash_map::Entry::Occupied(_) => true,
                            std::collections::hash_map::Entry::Vacant(v) if *q <= available => {
                                v.insert(*q);
                                true
                            }
                            std::collections::hash_map::Entry::Vacant(_) => false,
                        }
                    }
                    Op::Release(o) => { holds.remove(&format!("o{o}")); true }
                    Op::Consume(o) => {
                        if let Some(q) = holds.remove(&format!("o{o}")) { on_hand -= q; }
                        true
                    }
                    Op::Adjust(0) => false,
                    Op::Adjust(q) if *q < 0 && q.unsigned_abs() > available => false,
                    Op::Adjust(q) => { on_hand = on_hand.saturating_add_signed(*q); true }
                    Op::Receive(q) => { on_hand += q; true }
                    Op::Threshold(t) => { threshold = *t; true }
                };
                let decided = ProductEntity::decide(&state, command(&op), &ctx);
                prop_assert_eq!(decided.is_ok(), accepted, "{:?}", op);
                let Ok((events, reply)) = decided else { continue };
                let next = ProductEntity::evolve(&state, &events);
                let mut newest: Option<Movement> = None;
                for (table, value) in rows_of(&state, &next, &events) {
                    if table == STOCK_MOVEMENTS {
                        rows += 1;
                        let m: Movement = codec::decode(ROW_VERSION, &value).unwrap();
                        if newest.as_ref().is_none_or(|n| m.seq > n.seq) {
                            newest = Some(m);
                        }
                    } else if table == STOCK_ALERTS {
                        alerts += 1;
                    }
                }
                state = next;
                let reserved: u64 = holds.values().sum();
                let want = StockLevels::new(on_hand - reserved, reserved);
                prop_assert_eq!(state.levels(), want);
                prop_assert_eq!(reply.levels, want);
                let now_low = is_low(threshold, want.available);
                if now_low && !low { crossings += 1; }
                low = now_low;
                prop_assert_eq!(state.low, low);
                prop_assert_eq!(alerts, crossings);
                prop_assert_eq!(rows, state.movements);
                // The newest row carries the levels the append left (a
                // crossing event after it changes no level).
                if let Some(last) = newest {
                    prop_assert_eq!(last.levels, want);
                    prop_assert_eq!(last.seq, state.movements);
                }
            }
        }
    }

    fn rows_of(
        before: &ProductState,
        after: &ProductState,
        events: &[ProductEvent],
    ) -> Vec<(&'static str, Vec<u8>)> {
        rows("p", before, after, events)
            .into_iter()
            .filter_map(|op| match op {
                IndexOp::Put { table, value, .. } => Some((table, value)),
                IndexOp::Delete { .. } => None,
            })
            .collect()
    }
}
