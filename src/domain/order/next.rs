//! The follow-up work an order owes, and when it is due.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EscrowStatus, Order, OrderStatus, PaymentStatus, StockStatus};

/// Work an order still owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Unpaid at the deadline: ask the provider, then mark paid or cancel.
    PaymentTimeout,
    /// Cancelled: give held stock and the coupon and voucher uses back.
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
            || (o.holds_codes() && !o.coupon_released)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::tests::order_with;
    use crate::domain::order::TimelineEvent;

    #[test]
    fn notifying_is_a_due_action_until_done() {
        let mut o = order_with(&[TimelineEvent::Placed]);
        o.status = OrderStatus::Delivering;
        o.escrow = EscrowStatus::None;
        assert_eq!(next_action(&o).map(|(_, a)| a), Some(Action::Notify));
        o.notified = 1;
        assert_eq!(next_action(&o), None);
    }
}
