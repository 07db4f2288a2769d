//! The order entity: one actor per order. It owns the lifecycle (the pure
//! state machine in `domain::order`), the payment record, escrow, and the
//! follow-up work an order still owes: releasing or consuming held stock,
//! giving a coupon use back, refunding, releasing escrow, timing out an
//! unpaid order. That work is the order's *next action*; its due time is
//! kept in the `timers` read table, written atomically with the events that
//! change it, so the scheduler finds it again after a restart.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Entity};
use crate::domain::order::{transition, OrderStatus, Party, Step};
use crate::domain::pricing::{Line, Totals};
use crate::domain::user::Address;
use crate::domain::{Caller, DomainError, Role};
use crate::store::{codec, IndexOp};

/// Read table: `{due_ms:020}|{order_id}` → empty. Scanned in key order.
pub const TIMERS_TABLE: &str = "timers";
/// Read table: `{customer}|{inverted created ms}|{order}` → encoded order.
pub const ORDERS_BY_CUSTOMER: &str = "orders_by_customer";
/// Read table: `{shop}|{inverted created ms}|{order}` → encoded order.
pub const ORDERS_BY_SHOP: &str = "orders_by_shop";
/// Read table: `{provider}|{provider reference}` → order id (webhooks name
/// the provider's reference).
pub const PAYMENT_REFS: &str = "payment_refs";
/// Webhook event ids remembered per order for deduplication.
pub const MAX_SEEN_EVENTS: usize = 64;

pub struct OrderEntity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the gateway.
    Pending,
    Paid,
    Refunded,
    /// Cash on delivery, not yet collected.
    DueOnDelivery,
    /// Cash on delivery, collected.
    Collected,
    /// Never paid; the order was cancelled.
    Voided,
    /// Must be refunded by hand: the provider has no refund API.
    RefundDue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub provider: String,
    pub status: PaymentStatus,
    pub amount: u64,
    pub currency: String,
    /// Where the customer pays (hosted payment page), for online providers.
    pub checkout_url: Option<String>,
    /// The provider's reference for this payment.
    pub reference: String,
    pub paid_at: Option<DateTime<Utc>>,
    pub refund_reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscrowStatus {
    /// Nothing held (cash on delivery, or not paid yet).
    None,
    /// Paid money held for the shop.
    Held,
    /// Paid out to the shop (delivered, return window over).
    Released,
    /// Given back to the customer.
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    Held,
    Released,
    Consumed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// What happened: a status name, or `payment_received`, `escrow_released`…
    pub event: String,
    pub status: OrderStatus,
    pub by: Party,
    pub actor_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub shop_id: String,
    pub merchant_id: String,
    pub lines: Vec<Line>,
    pub coupon: Option<String>,
    pub currency: String,
    pub totals: Totals,
    pub address: Address,
    pub distance_km: f64,
    pub status: OrderStatus,
    pub payment: Payment,
    pub escrow: EscrowStatus,
    pub stock: StockStatus,
    pub coupon_released: bool,
    pub payment_deadline: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub return_deadline: Option<DateTime<Utc>>,
    /// How long after delivery a return may be requested (seconds).
    pub return_window_secs: u64,
    pub timeline: Vec<TimelineEntry>,
    /// Timeline entries already turned into notifications.
    #[serde(default)]
    pub notified: u32,
    /// Who carries it, and the dispatch that finds them.
    #[serde(default)]
    pub delivery: Delivery,
    /// The flash-sale claim this order pays for: its stock comes from the
    /// sale's reserve and goes back there if the order is cancelled.
    #[serde(default)]
    pub claim: Option<ClaimRef>,
    /// Nothing to ship (a course place): fulfilled once paid.
    #[serde(default)]
    pub digital: bool,
    /// The claim behind it was told the order ended unpaid or cancelled.
    #[serde(default)]
    pub claim_released: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The queue claim behind an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRef {
    pub queue_id: String,
    pub claim_id: String,
}

/// Shippers remembered as having declined (or let lapse) an order.
pub const MAX_DECLINED: usize = 32;

/// A delivery offer waiting for the shipper's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryOffer {
    pub shipper_id: String,
    pub expires_at: DateTime<Utc>,
    /// From the shipper to the shop when offered.
    pub distance_m: f64,
}

/// The delivery side of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The shipper who accepted.
    pub shipper_id: Option<String>,
    pub offer: Option<DeliveryOffer>,
    /// Shippers not to offer again (declined or let the offer lapse).
    pub declined: Vec<String>,
    /// No shipper was available: look again at this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// The shipper actor was told it carries this order.
    pub shipper_bound: bool,
    /// The shipper actor was told the delivery is over.
    pub shipper_released: bool,
    /// The shipper dwelt inside the delivery geofence.
    pub arriving_at: Option<DateTime<Utc>>,
}

impl Order {
    pub fn is_cod(&self) -> bool {
        self.payment.provider == "cod"
    }

    /// Waiting for a shipper: confirmed (or ready) and nobody accepted yet.
    pub fn awaits_shipper(&self) -> bool {
        !self.digital
            && matches!(
                self.status,
                OrderStatus::Confirmed | OrderStatus::ReadyForPickup
            )
            && self.delivery.shipper_id.is_none()
    }

    /// The parcel is (or is about to be) on its way with the shipper.
    pub fn in_delivery(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::Confirmed
                | OrderStatus::ReadyForPickup
                | OrderStatus::PickedUp
                | OrderStatus::Delivering
        )
    }

    /// `caller` holds a live offer for this order.
    pub fn offered_to(&self, caller: &Caller, now: DateTime<Utc>) -> bool {
        self.delivery
            .offer
            .as_ref()
            .is_some_and(|o| o.shipper_id == caller.user_id && o.expires_at > now)
    }

    /// Which party `caller` is to this order, if any.
    pub fn party_of(&self, caller: &Caller) -> Option<Party> {
        if caller.role == Role::Admin {
            Some(Party::Admin)
        } else if caller.user_id == self.merchant_id {
            Some(Party::Merchant)
        } else if caller.user_id == self.customer_id {
            Some(Party::Customer)
        } else if self.delivery.shipper_id.as_deref() == Some(caller.user_id.as_str()) {
            Some(Party::Shipper)
        } else {
            None
        }
    }
}

/// Work an order still owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Unpaid at the deadline: ask the provider, then mark paid or cancel.
    PaymentTimeout,
    /// Cancelled: give held stock and the coupon use back.
    ReleaseStock,
    /// Delivered: the held stock is sold.
    ConsumeStock,
    /// Paid money must go back (cancelled after paying, or returned).
    Refund,
    /// Delivered and the return window is over: pay the shop.
    ReleaseEscrow,
    /// Timeline entries not yet told to the people concerned.
    Notify,
    /// Offer the order to the nearest available shipper (or expire the
    /// unanswered offer and offer it to the next one).
    Dispatch,
    /// A shipper accepted: tell the shipper actor it carries the order.
    BindShipper,
    /// The delivery is over: free the shipper.
    ReleaseShipper,
    /// A paid digital order is fulfilled.
    Complete,
}

/// The earliest work `order` still owes, with its due time.
pub fn next_action(o: &Order) -> Option<(DateTime<Utc>, Action)> {
    use OrderStatus as S;
    let mut due: Vec<(DateTime<Utc>, Action)> = Vec::new();
    if o.status == S::PendingPayment {
        if let Some(d) = o.payment_deadline {
            due.push((d, Action::PaymentTimeout));
        }
    }
    if o.status == S::Cancelled
        && (o.stock == StockStatus::Held
            || (o.coupon.is_some() && !o.coupon_released)
            || (o.claim.is_some() && !o.claim_released))
    {
        due.push((o.updated_at, Action::ReleaseStock));
    }
    let delivered = matches!(
        o.status,
        S::Delivered | S::ReturnRequested | S::Returned | S::Refunded
    );
    if delivered && o.stock == StockStatus::Held {
        due.push((o.delivered_at.unwrap_or(o.updated_at), Action::ConsumeStock));
    }
    if matches!(o.status, S::Cancelled | S::Returned) && o.payment.status == PaymentStatus::Paid {
        due.push((o.updated_at, Action::Refund));
    }
    if o.status == S::Delivered && o.escrow == EscrowStatus::Held {
        due.push((
            o.return_deadline.unwrap_or(o.updated_at),
            Action::ReleaseEscrow,
        ));
    }
    if (o.notified as usize) < o.timeline.len() {
        due.push((o.updated_at, Action::Notify));
    }
    if o.digital && o.status == S::Paid {
        due.push((o.updated_at, Action::Complete));
    }
    let d = &o.delivery;
    if o.awaits_shipper() {
        let at = match (&d.offer, d.retry_at) {
            (Some(offer), _) => offer.expires_at,
            (None, Some(retry)) => retry,
            (None, None) => o.updated_at,
        };
        due.push((at, Action::Dispatch));
    }
    if d.shipper_id.is_some() && !d.shipper_bound {
        due.push((o.updated_at, Action::BindShipper));
    }
    if d.shipper_bound && !d.shipper_released && !o.in_delivery() {
        due.push((o.updated_at, Action::ReleaseShipper));
    }
    due.into_iter().min_by_key(|(at, _)| *at)
}

/// The notifications timeline entry `index` of `o` produces:
/// `(recipient user id, notification)`.
pub fn notifications_for(
    o: &Order,
    index: usize,
) -> Vec<(String, crate::actors::user::Notification)> {
    let Some(entry) = o.timeline.get(index) else {
        return vec![];
    };
    let short = &o.id[o.id.len().saturating_sub(8)..];
    let total = format!("{} {}", o.totals.total, o.currency);
    let to_customer = |kind: &str, title: &str, body: String| {
        (
            o.customer_id.clone(),
            kind.to_owned(),
            title.to_owned(),
            body,
        )
    };
    let to_merchant = |kind: &str, title: &str, body: String| {
        (
            o.merchant_id.clone(),
            kind.to_owned(),
            title.to_owned(),
            body,
        )
    };
    let mut out = Vec::new();
    match entry.event.as_str() {
        "placed" => {
            out.push(to_customer(
                "order_placed",
                "Order placed",
                format!("Order …{short} ({total}) is placed."),
            ));
            out.push(to_merchant(
                "new_order",
                "New order",
                format!("Order …{short} ({total}) was placed at your shop."),
            ));
        }
        "payment_received" => {
            out.push(to_customer(
                "payment_received",
                "Payment received",
                format!("We received {total} for order …{short}."),
            ));
            out.push(to_merchant(
                "order_paid",
                "Order paid",
                format!("Order …{short} is paid; please confirm it."),
            ));
        }
        "cancelled" => {
            let why = entry
                .reason
                .clone()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push(to_customer(
                "order_cancelled",
                "Order cancelled",
                format!("Order …{short} was cancelled{why}."),
            ));
            out.push(to_merchant(
                "order_cancelled",
                "Order cancelled",
                format!("Order …{short} was cancelled{why}."),
            ));
        }
        "return_requested" => {
            out.push(to_merchant(
                "return_requested",
                "Return requested",
                format!("The customer asked to return order …{short}."),
            ));
        }
        "escrow_released" => {
            out.push(to_merchant(
                "payout_released",
                "Payout released",
                format!("{total} for order …{short} was released to your shop."),
            ));
        }
        "refund_due" => {
            out.push(to_merchant(
                "refund_due",
                "Refund due",
                format!("Order …{short} must be refunded by hand ({total})."),
            ));
        }
        "payment_refunded" => {
            out.push(to_customer(
                "order_refunded",
                "Refunded",
                format!("{total} for order …{short} was refunded."),
            ));
        }
        "shipper_offered" => {
            if let (Some(shipper), Some(offer)) = (&entry.actor_id, &o.delivery.offer) {
                out.push((
                    shipper.clone(),
                    "delivery_offer".to_owned(),
                    "New delivery offer".to_owned(),
                    format!(
                        "Order …{short}: the shop is {:.1} km away. Accept before {}.",
                        offer.distance_m / 1000.0,
                        offer.expires_at.format("%H:%M:%S UTC")
                    ),
                ));
            }
        }
        "shipper_assigned" => out.push(to_customer(
            "shipper_assigned",
            "Shipper on the way",
            format!("A shipper accepted order …{short}; follow them live on the order page."),
        )),
        "arriving" => out.push(to_customer(
            "shipper_arriving",
            "Your shipper is arriving",
            format!("The shipper with order …{short} is at your address."),
        )),
        status @ ("confirmed" | "ready_for_pickup" | "picked_up" | "delivering" | "delivered"
        | "returned" | "refunded") => {
            let human = status.replace('_', " ");
            out.push(to_customer(
                &format!("order_{status}"),
                &format!("Order {human}"),
                format!("Order …{short} is {human}."),
            ));
        }
        _ => {}
    }
    out.into_iter()
        .map(|(to, kind, title, body)| {
            let n = crate::actors::user::Notification {
                id: format!("{}:{index}:{kind}", o.id),
                kind,
                title,
                body,
                order_id: Some(o.id.clone()),
                created_at: entry.at,
                read: false,
            };
            (to, n)
        })
        .collect()
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub order: Option<Order>,
    /// Recently processed webhook event ids, newest last.
    pub seen_events: VecDeque<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed {
        order: Box<Order>,
    },
    Transitioned {
        step: Step,
        to: OrderStatus,
        by: Party,
        actor_id: Option<String>,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    PaymentReceived {
        event_id: Option<String>,
        amount: u64,
        by: Party,
        at: DateTime<Utc>,
    },
    WebhookSeen {
        event_id: String,
    },
    CashCollected {
        at: DateTime<Utc>,
    },
    StockReleased {
        at: DateTime<Utc>,
    },
    StockConsumed {
        at: DateTime<Utc>,
    },
    CouponReleased,
    EscrowReleased {
        at: DateTime<Utc>,
    },
    Refunded {
        refund_reference: String,
        at: DateTime<Utc>,
    },
    RefundMarkedDue {
        at: DateTime<Utc>,
    },
    NotificationsSent {
        upto: u32,
    },
    ShipperOffered {
        shipper_id: String,
        expires_at: DateTime<Utc>,
        distance_m: f64,
        at: DateTime<Utc>,
    },
    /// The offer was declined (or lapsed, `expired`).
    OfferEnded {
        shipper_id: String,
        expired: bool,
        at: DateTime<Utc>,
    },
    DispatchDeferred {
        until: DateTime<Utc>,
    },
    ShipperAssigned {
        shipper_id: String,
        at: DateTime<Utc>,
    },
    ShipperBound,
    ShipperReleased,
    Arriving {
        at: DateTime<Utc>,
    },
    ClaimReleased,
}

/// What a payment provider reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReport {
    /// The provider's event id (webhooks); `None` for a status query.
    pub event_id: Option<String>,
    pub amount: u64,
    pub paid: bool,
}

pub enum OrderCommand {
    Place {
        order: Box<Order>,
    },
    /// Read, for `caller` (404 unless customer, merchant or admin).
    Get {
        caller: Option<Caller>,
    },
    /// A lifecycle step asked by a person.
    Act {
        caller: Caller,
        step: Step,
        reason: Option<String>,
    },
    /// A lifecycle step taken by Surge itself.
    System {
        step: Step,
        reason: String,
    },
    /// A verified webhook or status answer from the payment provider.
    Payment(PaymentReport),
    StockReleased,
    StockConsumed,
    CouponReleased,
    ReleaseEscrow,
    Refunded {
        refund_reference: String,
    },
    /// The provider cannot refund: the merchant must, by hand.
    RefundDue,
    /// Timeline entries before `upto` have been notified.
    NotificationsSent {
        upto: u32,
    },
    /// The dispatcher offers the order to `shipper_id` (who holds the
    /// offer on its own actor already).
    Offer {
        shipper_id: String,
        expires_at: DateTime<Utc>,
        distance_m: f64,
    },
    /// The unanswered offer's deadline passed.
    ExpireOffer,
    /// No shipper available: look again at `until`.
    DeferDispatch {
        until: DateTime<Utc>,
    },
    /// The offered shipper answers.
    Accept {
        caller: Caller,
    },
    Decline {
        caller: Caller,
    },
    ShipperBound,
    ShipperReleased,
    /// The shipper dwelt inside the delivery geofence.
    Arriving,
}

#[derive(Debug, Clone)]
pub enum OrderReply {
    Order(Box<Order>),
    /// A webhook event this order had already processed: no effect.
    Duplicate(Box<Order>),
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
    fn publish(id: &str, event: &OrderEvent) -> Option<(String, serde_json::Value)> {
        use serde_json::json;
        let data = match event {
            OrderEvent::Placed { order } => {
                json!({"kind": "placed", "status": order.status, "at": order.created_at})
            }
            OrderEvent::Transitioned {
                step,
                to,
                by,
                reason,
                at,
                ..
            } => {
                json!({"kind": "status", "status": to, "step": step, "by": by, "reason": reason, "at": at})
            }
            OrderEvent::PaymentReceived { amount, at, .. } => {
                json!({"kind": "payment_received", "amount": amount, "at": at})
            }
            OrderEvent::CashCollected { at } => json!({"kind": "cash_collected", "at": at}),
            OrderEvent::EscrowReleased { at } => json!({"kind": "escrow_released", "at": at}),
            OrderEvent::Refunded { at, .. } => json!({"kind": "refunded", "at": at}),
            OrderEvent::RefundMarkedDue { at } => json!({"kind": "refund_due", "at": at}),
            OrderEvent::ShipperAssigned { shipper_id, at } => {
                json!({"kind": "shipper_assigned", "shipper_id": shipper_id, "at": at})
            }
            OrderEvent::Arriving { at } => json!({"kind": "arriving", "at": at}),
            OrderEvent::StockReleased { .. }
            | OrderEvent::StockConsumed { .. }
            | OrderEvent::CouponReleased
            | OrderEvent::NotificationsSent { .. }
            | OrderEvent::WebhookSeen { .. }
            | OrderEvent::ShipperOffered { .. }
            | OrderEvent::OfferEnded { .. }
            | OrderEvent::DispatchDeferred { .. }
            | OrderEvent::ShipperBound
            | OrderEvent::ShipperReleased
            | OrderEvent::ClaimReleased => return None,
        };
        Some((format!("order:{id}"), data))
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
                    event: &str,
                    by: Party,
                    actor_id: Option<String>,
                    reason: Option<String>| {
            o.timeline.push(TimelineEntry {
                at,
                event: event.into(),
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
                note(o, *at, to.as_str(), *by, actor_id.clone(), reason.clone());
            }
            OrderEvent::PaymentReceived { amount, by, at, .. } => {
                o.payment.status = PaymentStatus::Paid;
                o.payment.paid_at = Some(*at);
                o.escrow = EscrowStatus::Held;
                o.payment_deadline = None;
                note(
                    o,
                    *at,
                    "payment_received",
                    *by,
                    None,
                    Some(format!("{amount} {}", o.currency)),
                );
            }
            OrderEvent::CashCollected { at } => {
                o.payment.status = PaymentStatus::Collected;
                o.payment.paid_at = Some(*at);
                note(o, *at, "cash_collected", Party::System, None, None);
            }
            OrderEvent::StockReleased { at } => {
                o.stock = StockStatus::Released;
                note(o, *at, "stock_released", Party::System, None, None);
            }
            OrderEvent::StockConsumed { at } => {
                o.stock = StockStatus::Consumed;
                o.updated_at = *at;
            }
            OrderEvent::CouponReleased => o.coupon_released = true,
            OrderEvent::EscrowReleased { at } => {
                o.escrow = EscrowStatus::Released;
                note(o, *at, "escrow_released", Party::System, None, None);
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
                    "shipper_offered",
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
                    "shipper_assigned",
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
                note(o, *at, "arriving", Party::Shipper, shipper, None);
            }
            OrderEvent::RefundMarkedDue { at } => {
                o.payment.status = PaymentStatus::RefundDue;
                let reason = format!(
                    "{} cannot refund; the merchant refunds by hand",
                    o.payment.provider
                );
                note(o, *at, "refund_due", Party::System, None, Some(reason));
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
                note(o, *at, "payment_refunded", Party::System, None, None);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn order_with(events: &[&str]) -> Order {
        let now = Utc::now();
        let entry = |e: &str| TimelineEntry {
            at: now,
            event: e.into(),
            status: OrderStatus::Paid,
            by: Party::System,
            actor_id: None,
            reason: None,
        };
        Order {
            id: "0192a2b3-0000-7000-8000-00000000abcd".into(),
            customer_id: "cust".into(),
            shop_id: "shop".into(),
            merchant_id: "merch".into(),
            lines: vec![],
            coupon: None,
            currency: "VND".into(),
            totals: Totals {
                total: 1000,
                ..Totals::default()
            },
            address: Address {
                id: "a".into(),
                label: "l".into(),
                line1: "1".into(),
                city: "c".into(),
                lat: 0.0,
                lng: 0.0,
                is_default: true,
            },
            distance_km: 1.0,
            status: OrderStatus::Paid,
            payment: Payment {
                id: "p".into(),
                provider: "sandbox".into(),
                status: PaymentStatus::Paid,
                amount: 1000,
                currency: "VND".into(),
                checkout_url: None,
                reference: "p".into(),
                paid_at: None,
                refund_reference: None,
            },
            escrow: EscrowStatus::Held,
            stock: StockStatus::Held,
            coupon_released: false,
            payment_deadline: None,
            delivered_at: None,
            return_deadline: None,
            return_window_secs: 0,
            timeline: events.iter().map(|e| entry(e)).collect(),
            notified: 0,
            delivery: Delivery::default(),
            claim: None,
            digital: false,
            claim_released: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn who_is_told_what() {
        let o = order_with(&[
            "placed",
            "payment_received",
            "confirmed",
            "return_requested",
            "escrow_released",
            "stock_released",
        ]);
        let told = |i: usize| -> Vec<(String, String)> {
            notifications_for(&o, i)
                .into_iter()
                .map(|(to, n)| (to, n.kind))
                .collect()
        };
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            told(0),
            vec![pair("cust", "order_placed"), pair("merch", "new_order")]
        );
        assert_eq!(
            told(1),
            vec![
                pair("cust", "payment_received"),
                pair("merch", "order_paid")
            ]
        );
        assert_eq!(told(2), vec![pair("cust", "order_confirmed")]);
        assert_eq!(told(3), vec![pair("merch", "return_requested")]);
        assert_eq!(told(4), vec![pair("merch", "payout_released")]);
        assert!(told(5).is_empty(), "internal bookkeeping tells nobody");
        assert!(told(99).is_empty());
        let ids: Vec<String> = (0..6)
            .flat_map(|i| notifications_for(&o, i))
            .map(|(_, n)| n.id)
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            ids.len(),
            unique.len(),
            "ids are unique, so redelivery keeps one"
        );
    }

    #[test]
    fn notifying_is_a_due_action_until_done() {
        let mut o = order_with(&["placed"]);
        o.status = OrderStatus::Delivering;
        o.escrow = EscrowStatus::None;
        assert_eq!(next_action(&o).map(|(_, a)| a), Some(Action::Notify));
        o.notified = 1;
        assert_eq!(next_action(&o), None);
    }
}
