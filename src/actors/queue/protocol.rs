//! What the queue actor is asked (commands), answers (replies) and records
//! (events): all serializable, so a command can travel to another node unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

/// `GET /flash-sales/{id}` and the queue part of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueStatus {
    #[serde(flatten)]
    pub config: QueueConfig,
    pub confirmed: u32,
    pub remaining: u32,
    pub waitlisted: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueEvent {
    Opened {
        config: QueueConfig,
    },
    Claimed {
        claim: Claim,
    },
    Cancelled {
        claim_id: String,
        at: DateTime<Utc>,
    },
    Expired {
        claim_id: String,
        at: DateTime<Utc>,
    },
    Promoted {
        claim_id: String,
        at: DateTime<Utc>,
    },
    OrderPlaced {
        claim_id: String,
    },
    /// The users were told these statuses.
    Notified {
        claims: Vec<(String, ClaimStatus)>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QueueCommand {
    /// Open with `config` (a no-op when already open).
    Open(QueueConfig),
    Claim {
        claim_id: String,
        user_id: crate::domain::ids::UserId,
        quantity: u32,
        idempotency_key: Option<crate::domain::IdempotencyKey>,
        order: Option<ClaimOrder>,
    },
    /// Work the queue owes: orders to place, users to notify (at most
    /// `limit` of each).
    Pending {
        limit: usize,
    },
    Notified {
        claims: Vec<(String, ClaimStatus)>,
    },
    /// The user gives a claim up.
    Cancel {
        user_id: crate::domain::ids::UserId,
        claim_id: String,
    },
    /// The claim's order was cancelled or not paid in time.
    Expire {
        claim_id: String,
    },
    OrderPlaced {
        claim_id: String,
    },
    Status,
    /// One claim (its owner, or the queue's owner).
    GetClaim {
        claim_id: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QueueReply {
    /// The decision on a claim; `replayed` when an idempotent retry.
    Claim {
        claim: Claim,
        replayed: bool,
        status: Box<QueueStatus>,
    },
    Status(QueueStatus),
    Pending {
        config: Box<QueueConfig>,
        orders: Vec<Claim>,
        notify: Vec<Claim>,
    },
}
