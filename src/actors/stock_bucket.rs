//! A stock bucket: a share of a hot product's stock with its own actor and
//! stream (`stock_bucket:{product}~{i}`), so that one product's checkout
//! holds are decided on several cores (`stock_buckets` on the product).
//!
//! The product allots units to its buckets and recovers what they give
//! back. Both sides count in growing totals, each a durable event, so a
//! step lost to a crash is redone by the next refill or drain and never
//! counted twice: a bucket holds and sells at most what it was granted and
//! did not give back, and it is granted at most what the product allotted
//! to it (`Hold { grant }` takes the product's allotted total, never more).
//! An order's hold lives in one bucket, found again by its order id
//! (`bucket_of`); release and consume are idempotent per order.

use serde::{Deserialize, Serialize};

use super::{Ctx, Entity};
use crate::domain::DomainError;
use crate::store::codec;

pub struct StockBucketEntity;

/// The bucket of an order's hold, out of `buckets`: stable for the order,
/// spread evenly over the buckets.
pub fn bucket_of(order_id: &str, buckets: u32) -> u32 {
    crate::domain::ids::spread(order_id, buckets)
}

/// The actor id of bucket `i` of `product_id`.
pub fn bucket_id(product_id: &str, i: u32) -> String {
    format!("{product_id}~{i}")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketState {
    /// Units granted by the product, given back to it, and sold, in total.
    pub received: u64,
    pub returned: u64,
    pub sold: u64,
    /// Open holds: order id → quantity (a persistent map: deciding clones
    /// the state in O(1)).
    #[serde(deserialize_with = "codec::via::<_, std::collections::BTreeMap<String, u64>, _>")]
    pub held: imbl::OrdMap<String, u64>,
    /// The sum of `held`.
    pub held_units: u64,
    /// Events applied: orders the bucket's reports to the product.
    pub changes: u64,
}

impl BucketState {
    /// Units granted and neither held, sold nor given back.
    pub fn free(&self) -> u64 {
        self.received
            .saturating_sub(self.returned)
            .saturating_sub(self.sold)
            .saturating_sub(self.held_units)
    }

    fn view(&self, order_id: Option<&str>) -> BucketView {
        BucketView {
            holds: order_id.is_some_and(|o| self.held.contains_key(o)),
            free: self.free(),
            received: self.received,
            returned: self.returned,
            changes: self.changes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BucketEvent {
    /// The product's allotted total for this bucket, taken.
    Granted {
        total: u64,
    },
    Held {
        order_id: String,
        quantity: u64,
    },
    Released {
        order_id: String,
        quantity: u64,
    },
    Sold {
        order_id: String,
        quantity: u64,
    },
    /// Free units sent back to the product.
    GaveBack {
        units: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BucketCommand {
    /// Take the units granted up to `grant` (the product's allotted total
    /// for this bucket), then hold `quantity` for `order_id` if that many
    /// are free — one decision, so no other order takes a refill meant for
    /// this one. Idempotent per order; `holds: false` when short.
    Hold {
        order_id: String,
        quantity: u64,
        grant: Option<u64>,
    },
    /// The order's held units are free again (a no-op where none).
    Release {
        order_id: String,
    },
    /// The order was delivered: its held units are sold.
    Consume {
        order_id: String,
    },
    /// Every free unit goes back to the product.
    GiveBack,
    /// Take the units granted up to `total` (a refill ahead of need).
    Grant {
        total: u64,
    },
    Get,
}

/// A bucket's answer: whether the order holds here, and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketView {
    pub holds: bool,
    pub free: u64,
    pub received: u64,
    pub returned: u64,
    pub changes: u64,
}

fn hold(
    state: &BucketState,
    order_id: String,
    quantity: u64,
    grant: Option<u64>,
) -> Result<Vec<BucketEvent>, DomainError> {
    if state.held.contains_key(&order_id) {
        return Ok(vec![]);
    }
    if quantity == 0 {
        return Err(DomainError::conflict("out_of_stock", "nothing to hold"));
    }
    let mut events = Vec::new();
    let mut free = state.free();
    if let Some(total) = grant.filter(|t| *t > state.received) {
        free += total - state.received;
        events.push(BucketEvent::Granted { total });
    }
    if free >= quantity {
        events.push(BucketEvent::Held { order_id, quantity });
    }
    Ok(events)
}

impl Entity for StockBucketEntity {
    const KIND: &'static str = "stock_bucket";
    type State = BucketState;
    type Command = BucketCommand;
    type Event = BucketEvent;
    type Reply = BucketView;
    type Rejection = DomainError;

    fn decide(
        state: &BucketState,
        cmd: BucketCommand,
        _ctx: &Ctx<'_>,
    ) -> Result<(Vec<BucketEvent>, BucketView), DomainError> {
        let (events, order) = match cmd {
            BucketCommand::Hold {
                order_id,
                quantity,
                grant,
            } => (
                hold(state, order_id.clone(), quantity, grant)?,
                Some(order_id),
            ),
            BucketCommand::Release { order_id } => {
                let events = state
                    .held
                    .get(&order_id)
                    .map(|&quantity| BucketEvent::Released {
                        order_id: order_id.clone(),
                        quantity,
                    });
                (events.into_iter().collect(), Some(order_id))
            }
            BucketCommand::Consume { order_id } => {
                let events = state
                    .held
                    .get(&order_id)
                    .map(|&quantity| BucketEvent::Sold {
                        order_id: order_id.clone(),
                        quantity,
                    });
                (events.into_iter().collect(), Some(order_id))
            }
            BucketCommand::Get => (vec![], None),
            BucketCommand::Grant { total } => {
                let events = (total > state.received).then_some(BucketEvent::Granted { total });
                (events.into_iter().collect(), None)
            }
            BucketCommand::GiveBack => {
                let units = state.free();
                let events = (units > 0).then_some(BucketEvent::GaveBack { units });
                (events.into_iter().collect(), None)
            }
        };
        let next = Self::evolve(state, &events);
        Ok((events, next.view(order.as_deref())))
    }

    fn apply(state: &mut BucketState, event: &BucketEvent) {
        state.changes += 1;
        match event {
            BucketEvent::Granted { total } => state.received = state.received.max(*total),
            BucketEvent::Held { order_id, quantity } => {
                state.held.insert(order_id.clone(), *quantity);
                state.held_units += quantity;
            }
            BucketEvent::Released { order_id, quantity } => {
                state.held.remove(order_id);
                state.held_units = state.held_units.saturating_sub(*quantity);
            }
            BucketEvent::Sold { order_id, quantity } => {
                state.held.remove(order_id);
                state.held_units = state.held_units.saturating_sub(*quantity);
                state.sold += quantity;
            }
            BucketEvent::GaveBack { units } => state.returned += units,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn run(state: &BucketState, cmd: BucketCommand) -> (BucketState, BucketView) {
        let (events, view) = StockBucketEntity::decide(
            state,
            cmd,
            &Ctx {
                id: "p~0",
                now: Utc::now(),
            },
        )
        .unwrap();
        (StockBucketEntity::evolve(state, &events), view)
    }

    fn hold(order: &str, quantity: u64, grant: Option<u64>) -> BucketCommand {
        BucketCommand::Hold {
            order_id: order.into(),
            quantity,
            grant,
        }
    }

    #[test]
    fn a_bucket_holds_only_what_it_was_granted_and_counts_each_order_once() {
        let s = BucketState::default();
        let (s, v) = run(&s, hold("o1", 1, None));
        assert!(!v.holds, "nothing granted yet");
        let (s, v) = run(&s, hold("o1", 2, Some(3)));
        assert!(v.holds);
        assert_eq!((v.free, v.received), (1, 3));
        let (same, _) = run(&s, hold("o1", 2, Some(3)));
        assert_eq!(same, s, "a second hold of one order counts once");
        let (s, v) = run(&s, hold("o2", 2, Some(2)));
        assert!(!v.holds, "an older grant total adds nothing");
        assert_eq!(s.received, 3);
        let (s, v) = run(
            &s,
            BucketCommand::Consume {
                order_id: "o1".into(),
            },
        );
        assert_eq!((v.free, s.sold), (1, 2), "sold units do not come back");
        let (s, v) = run(&s, BucketCommand::GiveBack);
        assert_eq!((v.free, v.returned), (0, 1));
        let (again, _) = run(&s, BucketCommand::GiveBack);
        assert_eq!(again, s, "nothing free, nothing given back");
        let (s, _) = run(&s, hold("o3", 1, Some(4)));
        let (s, v) = run(
            &s,
            BucketCommand::Release {
                order_id: "o3".into(),
            },
        );
        assert_eq!((v.free, s.held_units), (1, 0));
        assert!(
            s.sold + s.held_units + s.free() + s.returned == s.received,
            "every granted unit is held, sold, free or given back"
        );
    }
}
