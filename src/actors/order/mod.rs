//! The order entity: one actor per order. It owns the lifecycle (the pure
//! state machine in `domain::order`), the payment record, escrow, and the
//! follow-up work an order still owes: releasing or consuming held stock,
//! giving a coupon use back, refunding, releasing escrow, timing out an
//! unpaid order. That work is the order's *next action*; its due time is
//! kept in the `timers` read table, written atomically with the events that
//! change it, so the scheduler finds it again after a restart.

mod apply;
use crate::domain::order::returns;
mod client;
mod decide;
mod live;
mod protocol;
mod state;

pub use client::PaymentApplied;
pub use decide::closed as payment_closed;

pub use protocol::*;
pub use state::*;

use chrono::{DateTime, Utc};

use crate::actors::{Ctx, Entity};
use crate::domain::order::{next_action, Order, Party};
use crate::domain::DomainError;
use crate::live::{LiveEvent, Topic};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{
    ORDERS_BY_CUSTOMER, ORDERS_BY_SHOP, ORDERS_BY_SHOP_STATUS, PAYMENT_REFS, TIMERS_TABLE,
};
use crate::store::{codec, IndexOp};

/// The `PAYMENT_REFS` key of checkout payment `session`, which names
/// one of its orders (each of them names all).
pub fn session_key(session: &str) -> String {
    format!("checkout|{session}")
}

pub fn timer_key(due: DateTime<Utc>, order_id: &str) -> String {
    format!("{:020}|{order_id}", due.timestamp_millis().max(0))
}

/// The order id of a `timers` row key.
pub fn timer_order(key: &str) -> Option<(i64, &str)> {
    let (ms, id) = key.split_once('|')?;
    Some((ms.parse().ok()?, id))
}

fn listing_key(owner: &str, o: &Order) -> String {
    let inverted = i64::MAX - o.created_at.timestamp_millis().max(0);
    format!("{owner}|{inverted:020}|{}", o.id)
}

/// In a newest-first listing of `owner` (`orders_by_customer`,
/// `orders_by_shop`): the key every order created before `at` sorts
/// after, and every order created at or after it before.
pub fn listing_key_before(owner: &str, at: DateTime<Utc>) -> String {
    let inverted = i64::MAX - at.timestamp_millis().max(0);
    // `~` sorts after every id character: the rows of `at` itself come
    // before this key.
    format!("{owner}|{inverted:020}|~")
}

/// What the statistics count of the order's change from `before` to `o`:
/// placed, paid (online or cash collected), refunded, delivered by a
/// shipper — each once.
fn stats_facts(id: &str, before: Option<&Order>, o: &Order) -> Vec<IndexOp> {
    use crate::actors::entity::stats_fact;
    use crate::domain::order::PaymentStatus as P;
    use crate::domain::stats::Fact;
    let paid =
        |o: Option<&Order>| o.is_some_and(|o| matches!(o.payment.status, P::Paid | P::Collected));
    let refunded = |o: Option<&Order>| o.is_some_and(|o| o.payment.status == P::Refunded);
    let mut ops = Vec::new();
    if before.is_none() {
        let lines = o
            .lines
            .iter()
            .map(|l| (l.product_id.to_string(), u64::from(l.quantity)))
            .collect();
        let fact = Fact::OrderPlaced {
            shop_id: o.shop_id.to_string(),
            lines,
        };
        ops.push(stats_fact(
            o.created_at,
            &format!("order:{id}:placed"),
            &fact,
        ));
    }
    if paid(Some(o)) && !paid(before) && !refunded(before) {
        let lines = o
            .lines
            .iter()
            .map(|l| {
                let units = u64::from(l.quantity);
                (
                    l.product_id.to_string(),
                    units,
                    l.unit_price.saturating_mul(units),
                )
            })
            .collect();
        let fact = Fact::OrderPaid {
            shop_id: o.shop_id.to_string(),
            currency: o.currency.clone(),
            total: o.totals.total,
            lines,
        };
        let at = o.payment.paid_at.unwrap_or(o.updated_at);
        ops.push(stats_fact(at, &format!("order:{id}:paid"), &fact));
    }
    if refunded(Some(o)) && !refunded(before) {
        let fact = Fact::OrderRefunded {
            currency: o.currency.clone(),
            amount: o.payment.amount,
        };
        ops.push(stats_fact(
            o.updated_at,
            &format!("order:{id}:refunded"),
            &fact,
        ));
    }
    if let (Some(at), None, Some(shipper)) = (
        o.delivered_at,
        before.and_then(|b| b.delivered_at),
        o.delivery.shipper_id.as_ref(),
    ) {
        let fact = Fact::Delivered {
            shipper_id: shipper.to_string(),
        };
        ops.push(stats_fact(at, &format!("order:{id}:delivered"), &fact));
    }
    ops
}

/// What an erased customer's street reads as on their orders.
pub const ERASED: &str = "(erased)";

/// The order's row in its shop's listing of orders in its status.
fn status_key(o: &Order) -> String {
    listing_key(&format!("{}|{}", o.shop_id, o.status.as_str()), o)
}

impl Entity for OrderEntity {
    const KIND: &'static str = "order";
    type State = OrderState;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Reply = OrderReply;
    type Rejection = DomainError;

    fn decide(
        state: &OrderState,
        cmd: OrderCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<OrderEvent>, OrderReply), DomainError> {
        use decide as d;
        let now = ctx.now;
        let events = match cmd {
            OrderCommand::Place { order } => return d::place(state, order),
            OrderCommand::Get { caller } => d::get(state, caller, now)?,
            OrderCommand::Offer {
                shipper_id,
                expires_at,
                distance_m,
            } => return d::offer(state, shipper_id, expires_at, distance_m, now),
            OrderCommand::ExpireOffer => d::expire_offer(d::order(state)?, now),
            OrderCommand::DeferDispatch { until } => d::defer_dispatch(d::order(state)?, until),
            OrderCommand::Accept { caller } => d::accept(d::order(state)?, caller, now)?,
            OrderCommand::Decline { caller } => d::decline(d::order(state)?, caller, now)?,
            OrderCommand::ShipperBound => d::shipper_bound(d::order(state)?),
            OrderCommand::ShipperReleased => d::shipper_released(d::order(state)?),
            OrderCommand::Arriving => d::arriving(d::order(state)?, now),
            OrderCommand::Act {
                caller,
                step,
                reason,
            } => d::act(d::order(state)?, caller, step, reason, now)?,
            OrderCommand::System { step, reason } => d::step_events(
                d::order(state)?,
                step,
                Party::System,
                None,
                Some(reason),
                now,
            )?,
            OrderCommand::Payment(report) => return d::payment(state, report, now),
            OrderCommand::Reopen {
                attempt,
                reference,
                checkout_url,
            } => d::reopen(d::order(state)?, attempt, reference, checkout_url, now)?,
            OrderCommand::StockReleased => d::stock_released(d::order(state)?, now),
            OrderCommand::StockConsumed => d::stock_consumed(d::order(state)?, now),
            OrderCommand::CouponReleased => d::coupon_released(d::order(state)?),
            OrderCommand::ReleaseEscrow => d::release_escrow(d::order(state)?, now),
            OrderCommand::NotificationsSent { upto } => {
                d::notifications_sent(d::order(state)?, upto)
            }
            OrderCommand::RefundDue => d::refund_due(d::order(state)?, now),
            OrderCommand::EraseCustomer => {
                let o = d::order(state)?;
                if o.address.line1 == ERASED {
                    vec![]
                } else {
                    vec![OrderEvent::CustomerErased { at: now }]
                }
            }
            OrderCommand::AddReturnPhoto { caller, url } => {
                let o = d::order(state)?;
                returns::may_add_photo(o, &caller, now)?;
                vec![OrderEvent::ReturnPhotoAdded { url }]
            }
            OrderCommand::RequestReturn { caller, input } => {
                d::request_return(d::order(state)?, caller, input, now)?
            }
            OrderCommand::Refunded {
                refund_reference,
                amount,
            } => d::refunded(d::order(state)?, refund_reference, amount, now),
            OrderCommand::AttachReview {
                caller,
                subject,
                review_id,
            } => return d::attach_review(state, &caller, subject, review_id),
            OrderCommand::Reviews { caller } => {
                d::get(state, Some(caller), now)?;
                return Ok((vec![], OrderReply::Reviews(state.reviews.clone())));
            }
        };
        d::answered(state, events)
    }

    /// Public on `order:{id}` (to its customer, its shop's merchant and
    /// admins): status changes and what happened to the money.
    fn publish(id: &str, event: &OrderEvent) -> Option<(Topic, LiveEvent)> {
        live::payload(id, event)
    }

    fn apply(state: &mut OrderState, event: &OrderEvent) {
        apply::apply(state, event)
    }

    fn index(
        id: &str,
        before: &OrderState,
        after: &OrderState,
        _events: &[OrderEvent],
    ) -> Vec<IndexOp> {
        let Some(o) = after.order.as_ref() else {
            return vec![];
        };
        let mut ops = Vec::new();
        let old = before
            .order
            .as_ref()
            .and_then(next_action)
            .map(|(at, _)| timer_key(at, id));
        let new = next_action(o).map(|(at, _)| timer_key(at, id));
        if old != new {
            if let Some(key) = old {
                ops.push(IndexOp::Delete {
                    table: TIMERS_TABLE,
                    key,
                });
            }
            if let Some(key) = new {
                ops.push(IndexOp::Put {
                    table: TIMERS_TABLE,
                    key,
                    value: Vec::new(),
                });
            }
        }
        ops.extend(stats_facts(id, before.order.as_ref(), o));
        // Webhooks find the order by the provider's reference (of every
        // attempt, so a late one still lands) and `POST /checkouts/{id}/pay`
        // finds a checkout's orders by its payment session.
        let earlier = before.order.as_ref().map(|b| &b.payment.reference);
        if earlier != Some(&o.payment.reference) {
            ops.push(IndexOp::Put {
                table: PAYMENT_REFS,
                key: format!("{}|{}", o.payment.provider, o.payment.reference),
                value: id.as_bytes().to_vec(),
            });
        }
        if let (None, Some(session)) = (&before.order, &o.payment.session) {
            ops.push(IndexOp::Put {
                table: PAYMENT_REFS,
                key: session_key(&session.id),
                value: id.as_bytes().to_vec(),
            });
        }
        let value = codec::encode(Self::VERSION, o).expect("orders always encode");
        ops.push(IndexOp::Put {
            table: ORDERS_BY_CUSTOMER,
            key: listing_key(&o.customer_id, o),
            value: value.clone(),
        });
        if let Some(old) = before.order.as_ref().filter(|b| b.status != o.status) {
            ops.push(IndexOp::Delete {
                table: ORDERS_BY_SHOP_STATUS,
                key: status_key(old),
            });
        }
        ops.push(IndexOp::Put {
            table: ORDERS_BY_SHOP_STATUS,
            key: status_key(o),
            value: value.clone(),
        });
        ops.push(IndexOp::Put {
            table: ORDERS_BY_SHOP,
            key: listing_key(&o.shop_id, o),
            value,
        });
        ops
    }
}
