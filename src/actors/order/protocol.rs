//! What the order actor is asked (commands), answers (replies) and records
//! (events): all serializable, so a command can travel to another node unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::order::{Order, OrderStatus, Party, Step};
use crate::domain::Caller;

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
    /// The gateway declined the payment's current attempt.
    PaymentDeclined {
        at: DateTime<Utc>,
    },
    /// The checkout's payment was asked again: attempt `attempt`, paid at
    /// `checkout_url` under the provider's `reference`.
    PaymentReopened {
        attempt: u32,
        reference: String,
        checkout_url: Option<String>,
        at: DateTime<Utc>,
    },
    /// The customer erased their account: the delivery address's personal
    /// part (label, street, position) is gone; the city stays.
    CustomerErased {
        at: DateTime<Utc>,
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
        /// What went back (absent in events written before partial
        /// returns: the whole payment).
        #[serde(default)]
        amount: Option<u64>,
    },
    /// A photo for the return to come.
    ReturnPhotoAdded {
        url: String,
    },
    /// The details of the return just requested (beside its transition).
    ReturnDetailed {
        request: crate::domain::order::returns::ReturnRequest,
    },
    RefundMarkedDue {
        at: DateTime<Utc>,
    },
    NotificationsSent {
        upto: u32,
    },
    ShipperOffered {
        shipper_id: crate::domain::ids::UserId,
        expires_at: DateTime<Utc>,
        distance_m: f64,
        at: DateTime<Utc>,
    },
    /// The offer was declined (or lapsed, `expired`).
    OfferEnded {
        shipper_id: crate::domain::ids::UserId,
        expired: bool,
        at: DateTime<Utc>,
    },
    DispatchDeferred {
        until: DateTime<Utc>,
    },
    ShipperAssigned {
        shipper_id: crate::domain::ids::UserId,
        at: DateTime<Utc>,
    },
    ShipperBound,
    ShipperReleased,
    Arriving {
        at: DateTime<Utc>,
    },
    ClaimReleased,
    /// The customer's review of `subject` is `review_id`.
    ReviewAttached {
        subject: String,
        review_id: String,
    },
}

/// What a payment provider reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReport {
    /// The provider's event id (webhooks); `None` for a status query.
    pub event_id: Option<String>,
    pub amount: u64,
    pub paid: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The checkout's payment is asked again (its earlier attempt closed
    /// at the provider): idempotent by `attempt`.
    Reopen {
        attempt: u32,
        reference: String,
        checkout_url: Option<String>,
    },
    StockReleased,
    StockConsumed,
    CouponReleased,
    ReleaseEscrow,
    Refunded {
        refund_reference: String,
        amount: u64,
    },
    /// The customer adds a photo of the goods for a return.
    AddReturnPhoto {
        caller: Caller,
        url: String,
    },
    /// The customer asks to return lines of a delivered order.
    RequestReturn {
        caller: Caller,
        input: crate::domain::order::returns::ReturnInput,
    },
    /// The provider cannot refund: the merchant must, by hand.
    RefundDue,
    /// The customer erased their account (a no-op once done).
    EraseCustomer,
    /// Timeline entries before `upto` have been notified.
    NotificationsSent {
        upto: u32,
    },
    /// The dispatcher offers the order to `shipper_id` (who holds the
    /// offer on its own actor already).
    Offer {
        shipper_id: crate::domain::ids::UserId,
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
    /// The customer reviews `subject` (`{kind}:{id}`) as `review_id`,
    /// unless a review of it is recorded already; answers the order's
    /// reviews (the one of `subject` is the one to use).
    AttachReview {
        caller: Caller,
        subject: String,
        review_id: String,
    },
    /// The order's reviews, for one of its parties.
    Reviews {
        caller: Caller,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OrderReply {
    Order(Box<Order>),
    /// A webhook event this order had already processed: no effect.
    Duplicate(Box<Order>),
    Reviews(Vec<super::ReviewRef>),
}
