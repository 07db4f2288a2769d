//! The order entity: one actor per order. It owns the lifecycle (the pure
//! state machine in `domain::order`), the payment record, escrow, and the
//! follow-up work an order still owes: releasing or consuming held stock,
//! giving a coupon use back, refunding, releasing escrow, timing out an
//! unpaid order. That work is the order's *next action*; its due time is
//! kept in the `timers` read table, written atomically with the events that
//! change it, so the scheduler finds it again after a restart.

mod client;
mod live;
mod protocol;
mod state;

pub use client::PaymentApplied;

pub use protocol::*;
pub use state::*;

use chrono::{DateTime, Utc};

use crate::actors::{Ctx, Entity};
use crate::domain::order::{
    next_action, transition, DeliveryOffer, EscrowStatus, Order, OrderStatus, Party, PaymentStatus,
    Step, StockStatus, TimelineEntry, TimelineEvent, MAX_DECLINED,
};
use crate::domain::DomainError;
use crate::live::{LiveEvent, Topic};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{ORDERS_BY_CUSTOMER, ORDERS_BY_SHOP, PAYMENT_REFS, TIMERS_TABLE};
use crate::store::{codec, IndexOp};

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

fn order(state: &OrderState) -> Result<&Order, DomainError> {
    state.order.as_ref().ok_or(DomainError::NotFound("order"))
}

fn step_events(
    o: &Order,
    step: Step,
    by: Party,
    actor_id: Option<String>,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let to = transition(o.status, step, by, o.is_cod())?;
    if step == Step::RequestReturn && o.return_deadline.is_some_and(|d| now > d) {
        return Err(DomainError::Conflict {
            code: "return_window_closed",
            message: "the return window for this order has closed".into(),
        });
    }
    let mut events = vec![OrderEvent::Transitioned {
        step,
        to,
        by,
        actor_id,
        reason,
        at: now,
    }];
    if step == Step::Deliver && o.is_cod() {
        events.push(OrderEvent::CashCollected { at: now });
    }
    Ok(events)
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
        let now = ctx.now;
        let events = match cmd {
            OrderCommand::Place { order } => match &state.order {
                Some(existing) => {
                    return Ok((vec![], OrderReply::Order(Box::new(existing.clone()))))
                }
                None => vec![OrderEvent::Placed { order }],
            },
            OrderCommand::Get { caller } => {
                let o = order(state)?;
                // The offered shipper may look before answering.
                if caller.is_some_and(|c| o.party_of(&c).is_none() && !o.offered_to(&c, now)) {
                    return Err(DomainError::NotFound("order"));
                }
                vec![]
            }
            OrderCommand::Offer {
                shipper_id,
                expires_at,
                distance_m,
            } => {
                let o = order(state)?;
                // Two dispatchers racing for one order offer to the same
                // shipper: the second is a no-op.
                if o.awaits_shipper()
                    && o.delivery
                        .offer
                        .as_ref()
                        .is_some_and(|x| x.shipper_id == shipper_id)
                {
                    return Ok((vec![], OrderReply::Order(Box::new(o.clone()))));
                }
                if !o.awaits_shipper() || o.delivery.offer.is_some() {
                    return Err(DomainError::Conflict {
                        code: "not_dispatchable",
                        message: "this order is not waiting for a shipper".into(),
                    });
                }
                vec![OrderEvent::ShipperOffered {
                    shipper_id,
                    expires_at,
                    distance_m,
                    at: now,
                }]
            }
            OrderCommand::ExpireOffer => match &order(state)?.delivery.offer {
                Some(offer) if offer.expires_at <= now => vec![OrderEvent::OfferEnded {
                    shipper_id: offer.shipper_id.clone(),
                    expired: true,
                    at: now,
                }],
                _ => vec![],
            },
            OrderCommand::DeferDispatch { until } => match order(state)? {
                o if o.awaits_shipper() && o.delivery.offer.is_none() => {
                    vec![OrderEvent::DispatchDeferred { until }]
                }
                _ => vec![],
            },
            OrderCommand::Accept { caller } | OrderCommand::Decline { caller }
                if !order(state)?.offered_to(&caller, now) =>
            {
                let o = order(state)?;
                return Err(
                    if o.delivery.shipper_id.as_deref() == Some(caller.user_id.as_str()) {
                        DomainError::Conflict {
                            code: "already_assigned",
                            message: "you already deliver this order".into(),
                        }
                    } else if o
                        .delivery
                        .offer
                        .as_ref()
                        .is_some_and(|x| x.shipper_id == caller.user_id)
                        || o.delivery.declined.contains(&caller.user_id)
                    {
                        DomainError::Conflict {
                            code: "offer_expired",
                            message: "the offer expired and goes to another shipper".into(),
                        }
                    } else {
                        DomainError::NotFound("offer")
                    },
                );
            }
            OrderCommand::Accept { caller } => vec![OrderEvent::ShipperAssigned {
                shipper_id: caller.user_id,
                at: now,
            }],
            OrderCommand::Decline { caller } => vec![OrderEvent::OfferEnded {
                shipper_id: caller.user_id,
                expired: false,
                at: now,
            }],
            OrderCommand::ShipperBound => match &order(state)?.delivery {
                d if d.shipper_id.is_some() && !d.shipper_bound => vec![OrderEvent::ShipperBound],
                _ => vec![],
            },
            OrderCommand::ShipperReleased => match &order(state)?.delivery {
                d if d.shipper_bound && !d.shipper_released => vec![OrderEvent::ShipperReleased],
                _ => vec![],
            },
            OrderCommand::Arriving => match order(state)? {
                o if o.delivery.shipper_id.is_some()
                    && o.delivery.arriving_at.is_none()
                    && matches!(o.status, OrderStatus::PickedUp | OrderStatus::Delivering) =>
                {
                    vec![OrderEvent::Arriving { at: now }]
                }
                _ => vec![],
            },
            OrderCommand::Act {
                caller,
                step,
                reason,
            } => {
                let o = order(state)?;
                let by = o.party_of(&caller).ok_or(DomainError::NotFound("order"))?;
                step_events(o, step, by, Some(caller.user_id), reason, now)?
            }
            OrderCommand::System { step, reason } => {
                step_events(order(state)?, step, Party::System, None, Some(reason), now)?
            }
            OrderCommand::Payment(report) => {
                let o = order(state)?;
                if let Some(id) = &report.event_id {
                    if state.seen_events.contains(id) {
                        return Ok((vec![], OrderReply::Duplicate(Box::new(o.clone()))));
                    }
                }
                if report.paid && report.amount != o.totals.total {
                    return Err(DomainError::Conflict {
                        code: "amount_mismatch",
                        message: format!(
                            "paid {} but the order total is {}",
                            report.amount, o.totals.total
                        ),
                    });
                }
                let mut events: Vec<OrderEvent> = report
                    .event_id
                    .iter()
                    .map(|id| OrderEvent::WebhookSeen {
                        event_id: id.clone(),
                    })
                    .collect();
                // A payment arriving after the order was cancelled unpaid is recorded
                // too: the next action then refunds it.
                if report.paid
                    && matches!(
                        o.payment.status,
                        PaymentStatus::Pending | PaymentStatus::Voided
                    )
                {
                    events.push(OrderEvent::PaymentReceived {
                        event_id: report.event_id.clone(),
                        amount: report.amount,
                        by: Party::Gateway,
                        at: now,
                    });
                    // Paid on time moves the order on; paid late (cancelled) does not.
                    if let Ok(to) = transition(o.status, Step::Pay, Party::Gateway, o.is_cod()) {
                        events.push(OrderEvent::Transitioned {
                            step: Step::Pay,
                            to,
                            by: Party::Gateway,
                            actor_id: None,
                            reason: None,
                            at: now,
                        });
                    }
                }
                events
            }
            OrderCommand::StockReleased => {
                let o = order(state)?;
                let mut events = vec![];
                if o.claim.is_some() && !o.claim_released {
                    events.push(OrderEvent::ClaimReleased);
                }
                if o.stock == StockStatus::Held {
                    events.push(OrderEvent::StockReleased { at: now });
                }
                if o.coupon.is_some() && !o.coupon_released {
                    events.push(OrderEvent::CouponReleased);
                }
                events
            }
            OrderCommand::StockConsumed => match order(state)?.stock {
                StockStatus::Held => vec![OrderEvent::StockConsumed { at: now }],
                _ => vec![],
            },
            OrderCommand::CouponReleased => match order(state)? {
                o if o.coupon.is_some() && !o.coupon_released => vec![OrderEvent::CouponReleased],
                _ => vec![],
            },
            OrderCommand::ReleaseEscrow => {
                let o = order(state)?;
                let due = o.return_deadline.is_some_and(|d| now >= d);
                if o.status == OrderStatus::Delivered && o.escrow == EscrowStatus::Held && due {
                    vec![OrderEvent::EscrowReleased { at: now }]
                } else {
                    vec![]
                }
            }
            OrderCommand::NotificationsSent { upto } => match order(state)? {
                o if upto > o.notified && upto as usize <= o.timeline.len() => {
                    vec![OrderEvent::NotificationsSent { upto }]
                }
                _ => vec![],
            },
            OrderCommand::RefundDue => match order(state)?.payment.status {
                PaymentStatus::Paid => vec![OrderEvent::RefundMarkedDue { at: now }],
                _ => vec![],
            },
            OrderCommand::Refunded { refund_reference } => {
                let o = order(state)?;
                if o.payment.status != PaymentStatus::Paid {
                    vec![]
                } else {
                    let mut events = vec![OrderEvent::Refunded {
                        refund_reference,
                        at: now,
                    }];
                    // A returned order becomes refunded; a cancelled one stays cancelled.
                    if let Ok(to) = transition(o.status, Step::Refund, Party::System, o.is_cod()) {
                        events.push(OrderEvent::Transitioned {
                            step: Step::Refund,
                            to,
                            by: Party::System,
                            actor_id: None,
                            reason: None,
                            at: now,
                        });
                    }
                    events
                }
            }
        };
        let next = Self::evolve(state, &events);
        let o = next.order.ok_or(DomainError::NotFound("order"))?;
        Ok((events, OrderReply::Order(Box::new(o))))
    }

    /// Public on `order:{id}` (to its customer, its shop's merchant and
    /// admins): status changes and what happened to the money.
    fn publish(id: &str, event: &OrderEvent) -> Option<(Topic, LiveEvent)> {
        live::payload(id, event)
    }

    fn apply(state: &mut OrderState, event: &OrderEvent) {
        if let OrderEvent::Placed { order } = event {
            state.order = Some((**order).clone());
            return;
        }
        if let OrderEvent::WebhookSeen { event_id } = event {
            state.seen_events.push_back(event_id.clone());
            while state.seen_events.len() > MAX_SEEN_EVENTS {
                state.seen_events.pop_front();
            }
            return;
        }
        let Some(o) = state.order.as_mut() else {
            return;
        };
        let note = |o: &mut Order,
                    at: DateTime<Utc>,
                    event: TimelineEvent,
                    by: Party,
                    actor_id: Option<String>,
                    reason: Option<String>| {
            o.timeline.push(TimelineEntry {
                at,
                event,
                status: o.status,
                by,
                actor_id,
                reason,
            });
            o.updated_at = at;
        };
        match event {
            OrderEvent::Placed { .. } | OrderEvent::WebhookSeen { .. } => {}
            OrderEvent::Transitioned {
                step,
                to,
                by,
                actor_id,
                reason,
                at,
            } => {
                o.status = *to;
                match step {
                    Step::Deliver | Step::Complete => {
                        o.delivered_at = Some(*at);
                        o.return_deadline =
                            Some(*at + chrono::Duration::seconds(o.return_window_secs as i64));
                    }
                    Step::Cancel
                        if o.payment.status == PaymentStatus::Pending
                            || o.payment.status == PaymentStatus::DueOnDelivery =>
                    {
                        o.payment.status = PaymentStatus::Voided;
                    }
                    _ => {}
                }
                // The deadline only matters while the order awaits payment.
                o.payment_deadline = None;
                note(o, *at, (*to).into(), *by, actor_id.clone(), reason.clone());
            }
            OrderEvent::PaymentReceived { amount, by, at, .. } => {
                o.payment.status = PaymentStatus::Paid;
                o.payment.paid_at = Some(*at);
                o.escrow = EscrowStatus::Held;
                o.payment_deadline = None;
                note(
                    o,
                    *at,
                    TimelineEvent::PaymentReceived,
                    *by,
                    None,
                    Some(format!("{amount} {}", o.currency)),
                );
            }
            OrderEvent::CashCollected { at } => {
                o.payment.status = PaymentStatus::Collected;
                o.payment.paid_at = Some(*at);
                note(
                    o,
                    *at,
                    TimelineEvent::CashCollected,
                    Party::System,
                    None,
                    None,
                );
            }
            OrderEvent::StockReleased { at } => {
                o.stock = StockStatus::Released;
                note(
                    o,
                    *at,
                    TimelineEvent::StockReleased,
                    Party::System,
                    None,
                    None,
                );
            }
            OrderEvent::StockConsumed { at } => {
                o.stock = StockStatus::Consumed;
                o.updated_at = *at;
            }
            OrderEvent::CouponReleased => o.coupon_released = true,
            OrderEvent::EscrowReleased { at } => {
                o.escrow = EscrowStatus::Released;
                note(
                    o,
                    *at,
                    TimelineEvent::EscrowReleased,
                    Party::System,
                    None,
                    None,
                );
            }
            OrderEvent::NotificationsSent { upto } => o.notified = *upto,
            OrderEvent::ShipperOffered {
                shipper_id,
                expires_at,
                distance_m,
                at,
            } => {
                o.delivery.offer = Some(DeliveryOffer {
                    shipper_id: shipper_id.clone(),
                    expires_at: *expires_at,
                    distance_m: *distance_m,
                });
                o.delivery.retry_at = None;
                note(
                    o,
                    *at,
                    TimelineEvent::ShipperOffered,
                    Party::System,
                    Some(shipper_id.clone()),
                    None,
                );
            }
            OrderEvent::OfferEnded { shipper_id, at, .. } => {
                o.delivery.offer = None;
                o.delivery.declined.push(shipper_id.clone());
                if o.delivery.declined.len() > MAX_DECLINED {
                    o.delivery.declined.remove(0);
                }
                o.updated_at = *at;
            }
            OrderEvent::DispatchDeferred { until } => o.delivery.retry_at = Some(*until),
            OrderEvent::ShipperAssigned { shipper_id, at } => {
                o.delivery.offer = None;
                o.delivery.shipper_id = Some(shipper_id.clone());
                note(
                    o,
                    *at,
                    TimelineEvent::ShipperAssigned,
                    Party::Shipper,
                    Some(shipper_id.clone()),
                    None,
                );
            }
            OrderEvent::ClaimReleased => o.claim_released = true,
            OrderEvent::ShipperBound => o.delivery.shipper_bound = true,
            OrderEvent::ShipperReleased => o.delivery.shipper_released = true,
            OrderEvent::Arriving { at } => {
                o.delivery.arriving_at = Some(*at);
                let shipper = o.delivery.shipper_id.clone();
                note(
                    o,
                    *at,
                    TimelineEvent::Arriving,
                    Party::Shipper,
                    shipper,
                    None,
                );
            }
            OrderEvent::RefundMarkedDue { at } => {
                o.payment.status = PaymentStatus::RefundDue;
                let reason = format!(
                    "{} cannot refund; the merchant refunds by hand",
                    o.payment.provider
                );
                note(
                    o,
                    *at,
                    TimelineEvent::RefundDue,
                    Party::System,
                    None,
                    Some(reason),
                );
            }
            OrderEvent::Refunded {
                refund_reference,
                at,
            } => {
                o.payment.status = PaymentStatus::Refunded;
                o.payment.refund_reference = Some(refund_reference.clone());
                if o.escrow == EscrowStatus::Held {
                    o.escrow = EscrowStatus::Refunded;
                }
                note(
                    o,
                    *at,
                    TimelineEvent::PaymentRefunded,
                    Party::System,
                    None,
                    None,
                );
            }
        }
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
        if before.order.is_none() {
            ops.push(IndexOp::Put {
                table: PAYMENT_REFS,
                key: format!("{}|{}", o.payment.provider, o.payment.reference),
                value: id.as_bytes().to_vec(),
            });
        }
        let value = codec::encode(Self::VERSION, o).expect("orders always encode");
        ops.push(IndexOp::Put {
            table: ORDERS_BY_CUSTOMER,
            key: listing_key(&o.customer_id, o),
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
