//! A claim on a flash sale's or a course's places as the API sees it:
//! its status, and what its order needs. The queue entity
//! (`actors::queue`) decides them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Course,
    FlashSale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Confirmed,
    Waitlisted,
    /// Given up by the user.
    Cancelled,
    /// Its order was not paid in time (or was cancelled).
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claim {
    /// Also the id of its order, when it needs one.
    pub id: String,
    pub queue_id: crate::domain::ids::QueueId,
    pub user_id: crate::domain::ids::UserId,
    pub quantity: u32,
    pub status: ClaimStatus,
    /// Position in the waitlist (1 = next), while waitlisted.
    pub position: Option<u32>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that first used `idempotency_key` (method,
    /// path, body): the same key with another request is refused. Always
    /// written, like `QueueConfig::part_of`.
    #[serde(default)]
    pub idempotency_request: Option<String>,
    /// Where and how its order is paid and delivered (claims that need one).
    pub order: Option<ClaimOrder>,
    /// The order was placed (claims that need one).
    pub order_placed: bool,
    /// The last status the user was notified of.
    pub notified: Option<ClaimStatus>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// What a claim's order needs, fixed when the claim is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimOrder {
    /// Where to deliver (flash sales; none for a course).
    pub address: Option<crate::domain::user::Address>,
    pub payment_method: crate::domain::payment::PaymentMethod,
}
