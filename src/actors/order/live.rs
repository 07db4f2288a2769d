//! What of the order's events live watchers see.

use super::*;
use crate::live::{LiveEvent, OrderLive, Topic};

/// Public on `order:{id}` (to its customer, its shop's merchant and
/// admins): status changes and what happened to the money.
pub(super) fn payload(id: &str, event: &OrderEvent) -> Option<(Topic, LiveEvent)> {
    let data = match event {
        OrderEvent::Placed { order } => OrderLive::Placed {
            status: order.status,
            at: order.created_at,
        },
        OrderEvent::Transitioned {
            step,
            to,
            by,
            reason,
            at,
            ..
        } => OrderLive::Status {
            status: *to,
            step: *step,
            by: *by,
            reason: reason.clone(),
            at: *at,
        },
        OrderEvent::PaymentReceived { amount, at, .. } => OrderLive::PaymentReceived {
            amount: *amount,
            at: *at,
        },
        OrderEvent::PaymentDeclined { at } => OrderLive::PaymentDeclined { at: *at },
        OrderEvent::PaymentReopened { attempt, at, .. } => OrderLive::PaymentReopened {
            attempt: *attempt,
            at: *at,
        },
        OrderEvent::CashCollected { at } => OrderLive::CashCollected { at: *at },
        OrderEvent::EscrowReleased { at } => OrderLive::EscrowReleased { at: *at },
        OrderEvent::Refunded { at, .. } => OrderLive::Refunded { at: *at },
        OrderEvent::RefundMarkedDue { at } => OrderLive::RefundDue { at: *at },
        OrderEvent::ShipperAssigned { shipper_id, at } => OrderLive::ShipperAssigned {
            shipper_id: shipper_id.clone(),
            at: *at,
        },
        OrderEvent::Arriving { at } => OrderLive::Arriving { at: *at },
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
        | OrderEvent::ClaimReleased
        | OrderEvent::CustomerErased { .. }
        | OrderEvent::ReviewAttached { .. }
        // A return is seen by its `return_requested` status frame.
        | OrderEvent::ReturnPhotoAdded { .. }
        | OrderEvent::ReturnDetailed { .. } => return None,
    };
    Some((Topic::order(id), LiveEvent::Order(data)))
}
