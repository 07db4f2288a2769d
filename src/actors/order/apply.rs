//! How an order's events change its state, by theme: the lifecycle, the
//! money (payment, stock, coupon, escrow, refund) and the delivery.

use chrono::{DateTime, Utc};

use super::{OrderEvent, OrderState, MAX_SEEN_EVENTS};
use crate::domain::order::{
    DeliveryOffer, EscrowStatus, Order, Party, PaymentStatus, Step, StockStatus, TimelineEntry,
    TimelineEvent, MAX_DECLINED,
};
use crate::domain::payment::Money;

pub(super) fn apply(state: &mut OrderState, event: &OrderEvent) {
    use OrderEvent as E;
    match event {
        E::Placed { order } => state.order = Some((**order).clone()),
        E::CustomerErased { .. } => {
            if let Some(o) = state.order.as_mut() {
                o.address.label = String::new();
                o.address.line1 = super::ERASED.into();
                o.address.lat = 0.0;
                o.address.lng = 0.0;
                // The return's words are the customer's; its lines and
                // amount are the shop's books.
                if let Some(r) = o.return_request.as_mut() {
                    r.reason = None;
                }
            }
        }
        E::ReviewAttached { subject, review_id } => state.reviews.push(super::ReviewRef {
            subject: subject.clone(),
            review_id: review_id.clone(),
        }),
        E::WebhookSeen { event_id } => {
            state.seen_events.push_back(event_id.clone());
            while state.seen_events.len() > MAX_SEEN_EVENTS {
                state.seen_events.pop_front();
            }
        }
        _ => {
            let Some(o) = state.order.as_mut() else {
                return;
            };
            // Exhaustive on purpose: a new event must be given a theme.
            match event {
                E::Placed { .. }
                | E::WebhookSeen { .. }
                | E::CustomerErased { .. }
                | E::ReviewAttached { .. } => {}
                E::Transitioned { .. } => lifecycle(o, event),
                E::PaymentReceived { .. }
                | E::PaymentDeclined { .. }
                | E::PaymentReopened { .. }
                | E::CashCollected { .. }
                | E::StockReleased { .. }
                | E::StockConsumed { .. }
                | E::CouponReleased
                | E::ClaimReleased
                | E::EscrowReleased { .. }
                | E::NotificationsSent { .. }
                | E::RefundMarkedDue { .. }
                | E::Refunded { .. } => money(o, event),
                E::ReturnDetailed { request } => o.return_request = Some(request.clone()),
                E::ReturnPhotoAdded { url } => o.return_photos.push(url.clone()),
                E::ShipperOffered { .. }
                | E::OfferEnded { .. }
                | E::DispatchDeferred { .. }
                | E::ShipperAssigned { .. }
                | E::ShipperBound
                | E::ShipperReleased
                | E::Arriving { .. } => delivery(o, event),
            }
        }
    }
}

/// Appends a timeline entry (with the status the order has now).
fn note(
    o: &mut Order,
    at: DateTime<Utc>,
    event: TimelineEvent,
    by: Party,
    actor_id: Option<String>,
    reason: Option<String>,
) {
    o.timeline.push(TimelineEntry {
        at,
        event,
        status: o.status,
        by,
        actor_id,
        reason,
    });
    o.updated_at = at;
}

fn lifecycle(o: &mut Order, event: &OrderEvent) {
    let OrderEvent::Transitioned {
        step,
        to,
        by,
        actor_id,
        reason,
        at,
    } = event
    else {
        return;
    };
    o.status = *to;
    match step {
        Step::Deliver | Step::Complete => {
            o.delivered_at = Some(*at);
            o.return_deadline = Some(*at + chrono::Duration::seconds(o.return_window_secs as i64));
        }
        Step::Cancel
            if matches!(
                o.payment.status,
                PaymentStatus::Pending | PaymentStatus::Declined | PaymentStatus::DueOnDelivery
            ) =>
        {
            o.payment.status = PaymentStatus::Voided;
        }
        _ => {}
    }
    // The deadline only matters while the order awaits payment.
    o.payment_deadline = None;
    let entry = match step {
        Step::RefuseReturn => {
            if let Some(r) = o.return_request.as_mut() {
                r.refused = reason.clone();
            }
            TimelineEvent::ReturnRefused
        }
        _ => (*to).into(),
    };
    note(o, *at, entry, *by, actor_id.clone(), reason.clone());
}

fn money(o: &mut Order, event: &OrderEvent) {
    use TimelineEvent as T;
    let system = Party::System;
    match event {
        OrderEvent::PaymentReceived { amount, by, at, .. } => {
            o.payment.status = PaymentStatus::Paid;
            o.payment.paid_at = Some(*at);
            o.escrow = EscrowStatus::Held;
            o.payment_deadline = None;
            let reason = Some(Money::new(*amount, o.currency.clone()).to_string());
            note(o, *at, T::PaymentReceived, *by, None, reason);
        }
        OrderEvent::PaymentDeclined { at } => {
            o.payment.status = PaymentStatus::Declined;
            o.updated_at = *at;
        }
        OrderEvent::PaymentReopened {
            attempt,
            reference,
            checkout_url,
            at,
        } => {
            o.payment.status = PaymentStatus::Pending;
            o.payment.reference = reference.clone();
            o.payment.checkout_url = checkout_url.clone();
            if let Some(s) = o.payment.session.as_mut() {
                s.attempt = *attempt;
            }
            o.updated_at = *at;
        }
        OrderEvent::CashCollected { at } => {
            o.payment.status = PaymentStatus::Collected;
            o.payment.paid_at = Some(*at);
            note(o, *at, T::CashCollected, system, None, None);
        }
        OrderEvent::StockReleased { at } => {
            o.stock = StockStatus::Released;
            note(o, *at, T::StockReleased, system, None, None);
        }
        OrderEvent::StockConsumed { at } => {
            o.stock = StockStatus::Consumed;
            o.updated_at = *at;
        }
        OrderEvent::CouponReleased => o.coupon_released = true,
        OrderEvent::ClaimReleased => o.claim_released = true,
        OrderEvent::EscrowReleased { at } => {
            o.escrow = EscrowStatus::Released;
            note(o, *at, T::EscrowReleased, system, None, None);
        }
        OrderEvent::NotificationsSent { upto } => o.notified = *upto,
        OrderEvent::RefundMarkedDue { at } => {
            o.payment.status = PaymentStatus::RefundDue;
            let reason = format!(
                "{} cannot refund; the merchant refunds by hand",
                o.payment.provider
            );
            note(o, *at, T::RefundDue, system, None, Some(reason));
        }
        OrderEvent::Refunded {
            refund_reference,
            at,
            amount,
        } => {
            o.payment.status = PaymentStatus::Refunded;
            o.payment.refund_reference = Some(refund_reference.clone());
            o.refunded = amount.unwrap_or(o.payment.amount);
            // A partial return's refund: the rest is the shop's at once.
            if o.escrow == EscrowStatus::Held {
                o.escrow = if o.refunded < o.payment.amount {
                    EscrowStatus::Released
                } else {
                    EscrowStatus::Refunded
                };
            }
            note(o, *at, T::PaymentRefunded, system, None, None);
        }
        _ => {}
    }
}

fn delivery(o: &mut Order, event: &OrderEvent) {
    use TimelineEvent as T;
    match event {
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
            let shipper = Some(shipper_id.clone());
            note(
                o,
                *at,
                T::ShipperOffered,
                Party::System,
                shipper.map(Into::into),
                None,
            );
        }
        OrderEvent::OfferEnded { shipper_id, at, .. } => {
            o.delivery.offer = None;
            o.delivery.declined.push(shipper_id.clone().into());
            if o.delivery.declined.len() > MAX_DECLINED {
                o.delivery.declined.remove(0);
            }
            o.updated_at = *at;
        }
        OrderEvent::DispatchDeferred { until } => o.delivery.retry_at = Some(*until),
        OrderEvent::ShipperAssigned { shipper_id, at } => {
            o.delivery.offer = None;
            o.delivery.shipper_id = Some(shipper_id.clone());
            let shipper = Some(shipper_id.clone());
            note(
                o,
                *at,
                T::ShipperAssigned,
                Party::Shipper,
                shipper.map(Into::into),
                None,
            );
        }
        OrderEvent::ShipperBound => o.delivery.shipper_bound = true,
        OrderEvent::ShipperReleased => o.delivery.shipper_released = true,
        OrderEvent::Arriving { at } => {
            o.delivery.arriving_at = Some(*at);
            let shipper = o.delivery.shipper_id.clone();
            note(
                o,
                *at,
                T::Arriving,
                Party::Shipper,
                shipper.map(Into::into),
                None,
            );
        }
        _ => {}
    }
}
