//! The order state machine.
//!
//! ```text
//! pending_payment ──pay──▶ paid ──confirm──▶ confirmed ──ready──▶ ready_for_pickup
//!       │  (cod: confirm directly)              │                      │
//!       ├──────────cancel (customer, merchant, before pickup)─────────┤
//!       └─cancel (system: payment timeout)                             ▼
//!                                   picked_up ──▶ delivering ──▶ delivered
//!                                                                   │ return (customer, within window)
//!                                                                   ▼  ▲ refuse (merchant)
//!                                      refunded ◀── returned ◀── return_requested
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

mod model;
mod next;
pub mod returns;

pub use model::*;
pub use next::{next_action, Action};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Confirmed,
    ReadyForPickup,
    PickedUp,
    Delivering,
    Delivered,
    Cancelled,
    ReturnRequested,
    Returned,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::ReadyForPickup => "ready_for_pickup",
            OrderStatus::PickedUp => "picked_up",
            OrderStatus::Delivering => "delivering",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::Returned => "returned",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Still before the shipper has the parcel.
    pub fn before_pickup(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingPayment
                | OrderStatus::Paid
                | OrderStatus::Confirmed
                | OrderStatus::ReadyForPickup
        )
    }
}

/// Who causes a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    Merchant,
    Shipper,
    Admin,
    /// Surge itself (timers, checkout failures).
    System,
    /// A payment provider (verified webhook or status query).
    Gateway,
}

/// What is asked of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Pay,
    Confirm,
    ReadyForPickup,
    PickUp,
    StartDelivery,
    Deliver,
    Cancel,
    RequestReturn,
    ReceiveReturn,
    /// The merchant refuses a requested return (with a reason).
    RefuseReturn,
    Refund,
    /// A digital order (a course place) is fulfilled once paid.
    Complete,
}

impl Step {
    /// A step of carrying the parcel: the shipper's, or the merchant's when
    /// they deliver it themselves.
    pub fn carries(self) -> bool {
        matches!(self, Step::PickUp | Step::StartDelivery | Step::Deliver)
    }

    fn verb(self) -> &'static str {
        match self {
            Step::Pay => "pay",
            Step::Confirm => "confirm",
            Step::ReadyForPickup => "mark ready for pickup",
            Step::PickUp => "pick up",
            Step::StartDelivery => "start delivering",
            Step::Deliver => "deliver",
            Step::Cancel => "cancel",
            Step::RequestReturn => "return",
            Step::ReceiveReturn => "receive the return of",
            Step::RefuseReturn => "refuse the return of",
            Step::Refund => "refund",
            Step::Complete => "complete",
        }
    }
}

/// The status after `step` by `by`, or why not. `cod`: cash on delivery
/// (no online payment before confirmation).
pub fn transition(
    from: OrderStatus,
    step: Step,
    by: Party,
    cod: bool,
) -> Result<OrderStatus, DomainError> {
    use OrderStatus as S;
    use Party as P;
    let staff = matches!(by, P::Merchant | P::Admin);
    let carrier = matches!(by, P::Shipper | P::Merchant | P::Admin);
    let (allowed_party, next) = match (step, from) {
        (Step::Pay, S::PendingPayment) if !cod => (matches!(by, P::Gateway | P::Admin), S::Paid),
        (Step::Confirm, S::Paid) => (staff, S::Confirmed),
        (Step::Confirm, S::PendingPayment) if cod => (staff, S::Confirmed),
        (Step::ReadyForPickup, S::Confirmed) => (staff, S::ReadyForPickup),
        (Step::PickUp, S::ReadyForPickup) => (carrier, S::PickedUp),
        (Step::StartDelivery, S::PickedUp) => (carrier, S::Delivering),
        (Step::Deliver, S::Delivering) => (carrier, S::Delivered),
        (Step::Cancel, S::PendingPayment) => (
            matches!(by, P::Customer | P::Merchant | P::Admin | P::System),
            S::Cancelled,
        ),
        (Step::Cancel, s) if s.before_pickup() => (
            matches!(by, P::Customer | P::Merchant | P::Admin),
            S::Cancelled,
        ),
        (Step::RequestReturn, S::Delivered) => {
            (matches!(by, P::Customer | P::Admin), S::ReturnRequested)
        }
        (Step::ReceiveReturn, S::ReturnRequested) => (staff, S::Returned),
        (Step::RefuseReturn, S::ReturnRequested) => (staff, S::Delivered),
        (Step::Refund, S::Returned) => (matches!(by, P::System | P::Admin), S::Refunded),
        (Step::Complete, S::Paid) => (by == P::System, S::Delivered),
        _ => {
            return Err(DomainError::conflict(
                "illegal_transition",
                format!("cannot {} an order that is {}", step.verb(), from.as_str()),
            ))
        }
    };
    if !allowed_party {
        return Err(DomainError::Forbidden(format!(
            "you may not {} this order",
            step.verb()
        )));
    }
    Ok(next)
}

/// Self-delivery: a merchant carries an order (picks it up, delivers it)
/// only while no shipper has accepted it; once one has, the carrying steps
/// are the shipper's (and admins'). A self-delivered order is never a
/// verified purchase (`review::verified_purchase`).
pub fn may_carry(o: &Order, step: Step, by: Party) -> Result<(), DomainError> {
    if by == Party::Merchant && step.carries() && o.delivery.shipper_id.is_some() {
        return Err(DomainError::Forbidden(format!(
            "a shipper carries this order: only they may {} it",
            step.verb()
        )));
    }
    Ok(())
}

/// What a timeline entry records: a status the order reached, or
/// something that happened to its money, stock or delivery. Encoded as its
/// snake_case name (the same string journals held before it had a type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineEvent {
    Placed,
    PendingPayment,
    Paid,
    Confirmed,
    ReadyForPickup,
    PickedUp,
    Delivering,
    Delivered,
    Cancelled,
    ReturnRequested,
    Returned,
    Refunded,
    /// The merchant refused the return: delivered again.
    ReturnRefused,
    PaymentReceived,
    CashCollected,
    StockReleased,
    EscrowReleased,
    ShipperOffered,
    ShipperAssigned,
    Arriving,
    RefundDue,
    PaymentRefunded,
}

impl TimelineEvent {
    /// The status this entry records the order reaching, if it is one.
    pub fn status(self) -> Option<OrderStatus> {
        use OrderStatus as S;
        use TimelineEvent as E;
        Some(match self {
            E::PendingPayment => S::PendingPayment,
            E::Paid => S::Paid,
            E::Confirmed => S::Confirmed,
            E::ReadyForPickup => S::ReadyForPickup,
            E::PickedUp => S::PickedUp,
            E::Delivering => S::Delivering,
            E::Delivered => S::Delivered,
            E::Cancelled => S::Cancelled,
            E::ReturnRequested => S::ReturnRequested,
            E::Returned => S::Returned,
            E::Refunded => S::Refunded,
            E::ReturnRefused => S::Delivered,
            E::Placed
            | E::PaymentReceived
            | E::CashCollected
            | E::StockReleased
            | E::EscrowReleased
            | E::ShipperOffered
            | E::ShipperAssigned
            | E::Arriving
            | E::RefundDue
            | E::PaymentRefunded => return None,
        })
    }
}

impl From<OrderStatus> for TimelineEvent {
    /// The entry of a transition to `status`.
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::PendingPayment => TimelineEvent::PendingPayment,
            OrderStatus::Paid => TimelineEvent::Paid,
            OrderStatus::Confirmed => TimelineEvent::Confirmed,
            OrderStatus::ReadyForPickup => TimelineEvent::ReadyForPickup,
            OrderStatus::PickedUp => TimelineEvent::PickedUp,
            OrderStatus::Delivering => TimelineEvent::Delivering,
            OrderStatus::Delivered => TimelineEvent::Delivered,
            OrderStatus::Cancelled => TimelineEvent::Cancelled,
            OrderStatus::ReturnRequested => TimelineEvent::ReturnRequested,
            OrderStatus::Returned => TimelineEvent::Returned,
            OrderStatus::Refunded => TimelineEvent::Refunded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus as S;
    use Party as P;

    #[test]
    fn the_happy_paths() {
        let online = [
            (S::PendingPayment, Step::Pay, P::Gateway, S::Paid),
            (S::Paid, Step::Confirm, P::Merchant, S::Confirmed),
            (
                S::Confirmed,
                Step::ReadyForPickup,
                P::Merchant,
                S::ReadyForPickup,
            ),
            (S::ReadyForPickup, Step::PickUp, P::Shipper, S::PickedUp),
            (S::PickedUp, Step::StartDelivery, P::Shipper, S::Delivering),
            (S::Delivering, Step::Deliver, P::Shipper, S::Delivered),
            (
                S::Delivered,
                Step::RequestReturn,
                P::Customer,
                S::ReturnRequested,
            ),
            (
                S::ReturnRequested,
                Step::ReceiveReturn,
                P::Merchant,
                S::Returned,
            ),
            (S::Returned, Step::Refund, P::System, S::Refunded),
        ];
        for (from, step, by, to) in online {
            assert_eq!(
                transition(from, step, by, false).unwrap(),
                to,
                "{from:?} {step:?} by {by:?}"
            );
        }
        assert_eq!(
            transition(S::PendingPayment, Step::Confirm, P::Merchant, true).unwrap(),
            S::Confirmed,
            "cod confirms without payment"
        );
    }

    #[test]
    fn cancellation_rules() {
        for from in [S::PendingPayment, S::Paid, S::Confirmed, S::ReadyForPickup] {
            for by in [P::Customer, P::Merchant, P::Admin] {
                assert_eq!(
                    transition(from, Step::Cancel, by, false).unwrap(),
                    S::Cancelled,
                    "{from:?} by {by:?}"
                );
            }
        }
        assert_eq!(
            transition(S::PendingPayment, Step::Cancel, P::System, false).unwrap(),
            S::Cancelled
        );
        assert!(matches!(
            transition(S::Paid, Step::Cancel, P::System, false),
            Err(DomainError::Forbidden(_))
        ));
        for from in [
            S::PickedUp,
            S::Delivering,
            S::Delivered,
            S::Cancelled,
            S::Refunded,
        ] {
            let err = transition(from, Step::Cancel, P::Customer, false).unwrap_err();
            assert!(
                matches!(&err, DomainError::Conflict { code: "illegal_transition", message } if message.contains(from.as_str())),
                "{from:?}: {err:?}"
            );
        }
    }

    #[test]
    fn illegal_transitions_and_wrong_parties() {
        // (from, step, by, cod, expected: Ok(next) | Err(conflict?))
        let conflicts = [
            (S::PendingPayment, Step::Confirm, P::Merchant, false),
            (S::PendingPayment, Step::Pay, P::Gateway, true),
            (S::Paid, Step::Pay, P::Gateway, false),
            (S::Confirmed, Step::Deliver, P::Shipper, false),
            (S::Delivered, Step::Refund, P::System, false),
            (S::Cancelled, Step::Confirm, P::Merchant, false),
            (S::Refunded, Step::RequestReturn, P::Customer, false),
        ];
        for (from, step, by, cod) in conflicts {
            assert!(
                matches!(
                    transition(from, step, by, cod),
                    Err(DomainError::Conflict { .. })
                ),
                "{from:?} {step:?}"
            );
        }
        let forbidden = [
            (S::PendingPayment, Step::Pay, P::Customer),
            (S::Paid, Step::Confirm, P::Customer),
            (S::Paid, Step::Confirm, P::Shipper),
            (S::ReadyForPickup, Step::PickUp, P::Customer),
            (S::Delivered, Step::RequestReturn, P::Merchant),
            (S::ReturnRequested, Step::ReceiveReturn, P::Customer),
            (S::Returned, Step::Refund, P::Customer),
        ];
        for (from, step, by) in forbidden {
            assert!(
                matches!(
                    transition(from, step, by, false),
                    Err(DomainError::Forbidden(_))
                ),
                "{from:?} {step:?} by {by:?}"
            );
        }
    }
}
