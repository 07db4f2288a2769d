//! The order's decisions, one function per command: what each command
//! records, or why it is refused. Pure: state and command in, events out.

use chrono::{DateTime, Utc};

use super::{OrderEvent, OrderReply, OrderState, PaymentReport};
use crate::actors::Entity;
use crate::domain::order::returns::{self, ReturnInput};
use crate::domain::order::{
    may_carry, transition, EscrowStatus, Order, OrderStatus, Party, PaymentStatus, Step,
    StockStatus,
};
use crate::domain::{Caller, DomainError};

type Decided = Result<(Vec<OrderEvent>, OrderReply), DomainError>;

/// `events`, answered with the order after them.
pub(super) fn answered(state: &OrderState, events: Vec<OrderEvent>) -> Decided {
    let next = super::OrderEntity::evolve(state, &events);
    let o = next.order.ok_or(DomainError::NotFound("order"))?;
    Ok((events, OrderReply::Order(Box::new(o))))
}

/// Records the customer's review of `subject` as `review_id`, unless
/// one is recorded: the first is kept, whoever asks again.
pub(super) fn attach_review(
    state: &OrderState,
    caller: &Caller,
    subject: String,
    review_id: String,
) -> Decided {
    let o = order(state)?;
    if o.customer_id != caller.user_id {
        return Err(DomainError::Forbidden(
            "only the order's customer reviews it".into(),
        ));
    }
    if state.reviews.iter().any(|r| r.subject == subject) {
        return Ok((vec![], OrderReply::Reviews(state.reviews.clone())));
    }
    if state.reviews.len() >= super::MAX_REVIEWS {
        return Err(DomainError::conflict(
            "too_many_reviews",
            "this order has all the reviews it can have",
        ));
    }
    let events = vec![OrderEvent::ReviewAttached { subject, review_id }];
    let next = super::OrderEntity::evolve(state, &events);
    Ok((events, OrderReply::Reviews(next.reviews)))
}

pub(super) fn order(state: &OrderState) -> Result<&Order, DomainError> {
    state.order.as_ref().ok_or(DomainError::NotFound("order"))
}

/// The customer's return of lines of a delivered order, once per order:
/// the transition and the request's details, or why not (nothing
/// recorded).
pub(super) fn request_return(
    o: &Order,
    caller: Caller,
    input: ReturnInput,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let by = o.party_of(&caller).ok_or(DomainError::NotFound("order"))?;
    if o.return_request.is_some() && o.status == OrderStatus::Delivered {
        return Err(DomainError::conflict(
            "return_already_requested",
            "a return of this order was requested and refused; it cannot be asked again",
        ));
    }
    let request = returns::request(o, &input, now)?;
    let reason = request.reason.clone();
    let mut events = step_events(
        o,
        Step::RequestReturn,
        by,
        Some(caller.user_id.into()),
        reason,
        now,
    )?;
    events.push(OrderEvent::ReturnDetailed { request });
    Ok(events)
}

pub(super) fn step_events(
    o: &Order,
    step: Step,
    by: Party,
    actor_id: Option<String>,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let to = transition(o.status, step, by, o.is_cod())?;
    may_carry(o, step, by)?;
    if step == Step::RefuseReturn && reason.is_none() {
        return Err(DomainError::invalid(
            "reason",
            "say why the return is refused",
        ));
    }
    if step == Step::RequestReturn && o.return_deadline.is_some_and(|d| now > d) {
        return Err(DomainError::conflict(
            "return_window_closed",
            "the return window for this order has closed",
        ));
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

/// Placing is idempotent by id: a second `Place` answers the order there.
pub(super) fn place(state: &OrderState, order: Box<Order>) -> Decided {
    match &state.order {
        Some(existing) => Ok((vec![], OrderReply::Order(Box::new(existing.clone())))),
        None => answered(state, vec![OrderEvent::Placed { order }]),
    }
}

/// A read: for `caller`, only if they are a party (or hold its offer).
pub(super) fn get(
    state: &OrderState,
    caller: Option<Caller>,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let o = order(state)?;
    if caller.is_some_and(|c| o.party_of(&c).is_none() && !o.offered_to(&c, now)) {
        return Err(DomainError::NotFound("order"));
    }
    Ok(vec![])
}

pub(super) fn offer(
    state: &OrderState,
    shipper_id: crate::domain::ids::UserId,
    expires_at: DateTime<Utc>,
    distance_m: f64,
    now: DateTime<Utc>,
) -> Decided {
    let o = order(state)?;
    // Two dispatchers racing for one order offer to the same shipper: the
    // second is a no-op.
    if o.awaits_shipper()
        && o.delivery
            .offer
            .as_ref()
            .is_some_and(|x| x.shipper_id == shipper_id)
    {
        return Ok((vec![], OrderReply::Order(Box::new(o.clone()))));
    }
    if !o.awaits_shipper() || o.delivery.offer.is_some() {
        return Err(DomainError::conflict(
            "not_dispatchable",
            "this order is not waiting for a shipper",
        ));
    }
    let offered = OrderEvent::ShipperOffered {
        shipper_id,
        expires_at,
        distance_m,
        at: now,
    };
    answered(state, vec![offered])
}

pub(super) fn expire_offer(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    match &o.delivery.offer {
        Some(offer) if offer.expires_at <= now => vec![OrderEvent::OfferEnded {
            shipper_id: offer.shipper_id.clone(),
            expired: true,
            at: now,
        }],
        _ => vec![],
    }
}

pub(super) fn defer_dispatch(o: &Order, until: DateTime<Utc>) -> Vec<OrderEvent> {
    if o.awaits_shipper() && o.delivery.offer.is_none() {
        vec![OrderEvent::DispatchDeferred { until }]
    } else {
        vec![]
    }
}

/// Why `caller` cannot answer an offer they do not hold.
fn no_offer(o: &Order, caller: &Caller) -> DomainError {
    if o.delivery.shipper_id.as_deref() == Some(caller.user_id.as_str()) {
        DomainError::conflict("already_assigned", "you already deliver this order")
    } else if o
        .delivery
        .offer
        .as_ref()
        .is_some_and(|x| x.shipper_id == caller.user_id)
        || o.delivery.declined.iter().any(|d| caller.user_id == *d)
    {
        DomainError::conflict(
            "offer_expired",
            "the offer expired and goes to another shipper",
        )
    } else {
        DomainError::NotFound("offer")
    }
}

pub(super) fn accept(
    o: &Order,
    caller: Caller,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    if !o.offered_to(&caller, now) {
        return Err(no_offer(o, &caller));
    }
    Ok(vec![OrderEvent::ShipperAssigned {
        shipper_id: caller.user_id,
        at: now,
    }])
}

pub(super) fn decline(
    o: &Order,
    caller: Caller,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    if !o.offered_to(&caller, now) {
        return Err(no_offer(o, &caller));
    }
    Ok(vec![OrderEvent::OfferEnded {
        shipper_id: caller.user_id,
        expired: false,
        at: now,
    }])
}

pub(super) fn shipper_bound(o: &Order) -> Vec<OrderEvent> {
    match &o.delivery {
        d if d.shipper_id.is_some() && !d.shipper_bound => vec![OrderEvent::ShipperBound],
        _ => vec![],
    }
}

pub(super) fn shipper_released(o: &Order) -> Vec<OrderEvent> {
    match &o.delivery {
        d if d.shipper_bound && !d.shipper_released => vec![OrderEvent::ShipperReleased],
        _ => vec![],
    }
}

pub(super) fn arriving(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    if o.delivery.shipper_id.is_some()
        && o.delivery.arriving_at.is_none()
        && matches!(o.status, OrderStatus::PickedUp | OrderStatus::Delivering)
    {
        vec![OrderEvent::Arriving { at: now }]
    } else {
        vec![]
    }
}

/// A person takes a lifecycle step, as whichever party they are.
pub(super) fn act(
    o: &Order,
    caller: Caller,
    step: Step,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let by = o.party_of(&caller).ok_or(DomainError::NotFound("order"))?;
    step_events(o, step, by, Some(caller.user_id.into()), reason, now)
}

/// A provider's report: deduplicated by event id; a paid amount must be
/// the total. A payment arriving after the order was cancelled unpaid is
/// recorded too (the next action then refunds it).
pub(super) fn payment(state: &OrderState, report: PaymentReport, now: DateTime<Utc>) -> Decided {
    let o = order(state)?;
    if let Some(id) = &report.event_id {
        if state.seen_events.contains(id) {
            return Ok((vec![], OrderReply::Duplicate(Box::new(o.clone()))));
        }
    }
    if report.paid && report.amount != o.totals.total {
        return Err(DomainError::conflict(
            "amount_mismatch",
            format!(
                "paid {} but the order total is {}",
                report.amount, o.totals.total
            ),
        ));
    }
    let mut events: Vec<OrderEvent> = report
        .event_id
        .iter()
        .map(|id| OrderEvent::WebhookSeen {
            event_id: id.clone(),
        })
        .collect();
    let payable = matches!(
        o.payment.status,
        PaymentStatus::Pending | PaymentStatus::Declined | PaymentStatus::Voided
    );
    if !report.paid && o.payment.status == PaymentStatus::Pending {
        // Declined: still payable again until the deadline.
        events.push(OrderEvent::PaymentDeclined { at: now });
    }
    if report.paid && payable {
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
    answered(state, events)
}

/// The checkout's payment asked again as attempt `attempt` (whose link
/// and reference the provider gave): only while the order awaits its
/// payment; an attempt recorded already is not recorded again.
pub(super) fn reopen(
    o: &Order,
    attempt: u32,
    reference: String,
    checkout_url: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, DomainError> {
    let Some(session) = &o.payment.session else {
        return Err(DomainError::conflict(
            "not_paid_online",
            "this order is not paid online by a checkout's payment",
        ));
    };
    if attempt <= session.attempt {
        return Ok(vec![]);
    }
    if o.payment.status == PaymentStatus::Paid || o.status != OrderStatus::PendingPayment {
        return Err(closed(o));
    }
    Ok(vec![OrderEvent::PaymentReopened {
        attempt,
        reference,
        checkout_url,
        at: now,
    }])
}

/// Why an order's payment can no longer be asked again: paid already, or
/// cancelled (its deadline passed, or the customer cancelled it).
pub fn closed(o: &Order) -> DomainError {
    if matches!(
        o.payment.status,
        PaymentStatus::Paid | PaymentStatus::Refunded | PaymentStatus::RefundDue
    ) {
        DomainError::conflict("already_paid", "this checkout is paid")
    } else {
        DomainError::conflict(
            "checkout_expired",
            "this checkout's deadline passed and its orders were cancelled; check out again",
        )
    }
}

/// Everything a cancelled order held went back: the claim, the stock,
/// the coupon use.
pub(super) fn stock_released(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    let mut events = vec![];
    if o.claim.is_some() && !o.claim_released {
        events.push(OrderEvent::ClaimReleased);
    }
    if o.stock == StockStatus::Held {
        events.push(OrderEvent::StockReleased { at: now });
    }
    if o.holds_codes() && !o.coupon_released {
        events.push(OrderEvent::CouponReleased);
    }
    events
}

pub(super) fn stock_consumed(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    match o.stock {
        StockStatus::Held => vec![OrderEvent::StockConsumed { at: now }],
        _ => vec![],
    }
}

pub(super) fn coupon_released(o: &Order) -> Vec<OrderEvent> {
    if o.holds_codes() && !o.coupon_released {
        vec![OrderEvent::CouponReleased]
    } else {
        vec![]
    }
}

/// Delivered, the return window over: the shop is paid.
pub(super) fn release_escrow(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    let due = o.return_deadline.is_some_and(|d| now >= d);
    if o.status == OrderStatus::Delivered && o.escrow == EscrowStatus::Held && due {
        vec![OrderEvent::EscrowReleased { at: now }]
    } else {
        vec![]
    }
}

pub(super) fn notifications_sent(o: &Order, upto: u32) -> Vec<OrderEvent> {
    if upto > o.notified && upto as usize <= o.timeline.len() {
        vec![OrderEvent::NotificationsSent { upto }]
    } else {
        vec![]
    }
}

pub(super) fn refund_due(o: &Order, now: DateTime<Utc>) -> Vec<OrderEvent> {
    match o.payment.status {
        PaymentStatus::Paid => vec![OrderEvent::RefundMarkedDue { at: now }],
        _ => vec![],
    }
}

/// The money went back. A returned order becomes refunded; a cancelled one
/// stays cancelled.
pub(super) fn refunded(
    o: &Order,
    refund_reference: String,
    amount: u64,
    now: DateTime<Utc>,
) -> Vec<OrderEvent> {
    if o.payment.status != PaymentStatus::Paid {
        return vec![];
    }
    let mut events = vec![OrderEvent::Refunded {
        refund_reference,
        at: now,
        amount: Some(amount),
    }];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::order::ReviewRef;
    use crate::domain::Role;

    fn reviews(reply: OrderReply) -> Vec<ReviewRef> {
        match reply {
            OrderReply::Reviews(r) => r,
            _ => panic!("not the order's reviews"),
        }
    }

    #[test]
    fn an_order_keeps_the_first_review_of_each_subject_and_only_its_customer_adds_one() {
        let o = crate::domain::notification::tests::order_with(&[]);
        let customer = Caller {
            user_id: o.customer_id.clone(),
            role: Role::Customer,
        };
        let state = OrderState {
            order: Some(o.clone()),
            ..OrderState::default()
        };
        let first = |review_id: &str| ReviewRef {
            subject: "product:p".into(),
            review_id: review_id.into(),
        };
        let (events, reply) =
            attach_review(&state, &customer, "product:p".into(), "r1".into()).unwrap();
        assert_eq!(reviews(reply), [first("r1")]);
        let state = super::super::OrderEntity::evolve(&state, &events);
        // Asked again (another node, a retry): the first one stays.
        let (events, reply) =
            attach_review(&state, &customer, "product:p".into(), "r2".into()).unwrap();
        assert!(events.is_empty());
        assert_eq!(reviews(reply), [first("r1")]);
        let (events, reply) =
            attach_review(&state, &customer, "shop:s".into(), "r3".into()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(reviews(reply).len(), 2);
        let merchant = Caller {
            user_id: o.merchant_id.clone(),
            role: Role::Merchant,
        };
        assert!(matches!(
            attach_review(&state, &merchant, "shop:s".into(), "r4".into()),
            Err(DomainError::Forbidden(_))
        ));
    }

    /// An order of a two-order checkout, awaiting its payment.
    fn awaiting() -> OrderState {
        let mut o = crate::domain::notification::tests::order_with(&[]);
        o.status = OrderStatus::PendingPayment;
        o.escrow = EscrowStatus::None;
        o.payment.status = PaymentStatus::Pending;
        o.payment.session = Some(crate::domain::order::PaymentSession {
            id: "pay_x".into(),
            total: 1500,
            orders: vec![o.id.clone(), "other".into()],
            attempt: 0,
        });
        OrderState {
            order: Some(o),
            ..OrderState::default()
        }
    }

    fn after(state: &OrderState, events: &[OrderEvent]) -> OrderState {
        super::super::OrderEntity::evolve(state, events)
    }

    #[test]
    fn a_declined_payment_waits_and_a_new_attempt_is_recorded_once_while_unpaid() {
        let now = Utc::now();
        let state = awaiting();
        let declined = PaymentReport {
            event_id: Some("e1".into()),
            amount: 1000,
            paid: false,
        };
        let (events, _) = payment(&state, declined, now).unwrap();
        let state = after(&state, &events);
        let o = state.order.as_ref().unwrap();
        assert_eq!(
            (o.status, o.payment.status),
            (OrderStatus::PendingPayment, PaymentStatus::Declined)
        );
        let events = reopen(o, 1, "pay_x.1".into(), Some("u1".into()), now).unwrap();
        let state = after(&state, &events);
        let o = state.order.as_ref().unwrap();
        assert_eq!(o.payment.status, PaymentStatus::Pending);
        assert_eq!(o.payment.reference, "pay_x.1");
        assert_eq!(o.payment.session.as_ref().unwrap().attempt, 1);
        // The same attempt again (the other node, a retry): nothing new.
        assert!(reopen(o, 1, "pay_x.1".into(), None, now)
            .unwrap()
            .is_empty());
        // Paid: a new attempt is refused as `already_paid`.
        let paid = PaymentReport {
            event_id: Some("e2".into()),
            amount: 1000,
            paid: true,
        };
        let (events, _) = payment(&state, paid, now).unwrap();
        let o = after(&state, &events).order.unwrap();
        assert_eq!(o.status, OrderStatus::Paid);
        let refused = reopen(&o, 2, "pay_x.2".into(), None, now).unwrap_err();
        assert_eq!(refused.code(), "already_paid");
    }

    #[test]
    fn a_cancelled_orders_payment_cannot_be_asked_again() {
        let now = Utc::now();
        let mut state = awaiting();
        let o = state.order.as_mut().unwrap();
        o.status = OrderStatus::Cancelled;
        o.payment.status = PaymentStatus::Voided;
        let refused = reopen(o, 1, "pay_x.1".into(), None, now).unwrap_err();
        assert_eq!(refused.code(), "checkout_expired");
        o.payment.session = None;
        let refused = reopen(o, 1, "pay_x.1".into(), None, now).unwrap_err();
        assert_eq!(refused.code(), "not_paid_online");
    }
}
