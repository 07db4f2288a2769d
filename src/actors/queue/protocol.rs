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

impl QueueStatus {
    /// The window's state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> crate::domain::window::WindowState {
        let c = &self.config;
        crate::domain::window::state(c.opens_at, c.closes_at, self.remaining, now)
    }
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
    /// The claimant erased their account: these claims keep no delivery
    /// address.
    ClaimantErased {
        claim_ids: Vec<String>,
    },
    /// A part of a split queue: units granted to it so far, in total.
    Granted {
        total: u32,
    },
    /// A part of a split queue: units it gave back so far, in total.
    GaveBack {
        total: u32,
    },
    /// A split queue: units allotted to `part` so far, in total.
    Allotted {
        part: u32,
        total: u32,
    },
    /// A split queue: units `part` is known to have given back, in total.
    Recovered {
        part: u32,
        total: u32,
    },
    /// Its window opened (`opens_at` passed) and was announced.
    Started {
        at: DateTime<Utc>,
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
        /// A part of a split queue answers `Dry` instead of waitlisting or
        /// refusing `sold_out` (the caller moves units to it first).
        #[serde(default)]
        dry_first: bool,
        /// A part: first raise the units granted to it to this total (as
        /// `Grant`), then decide the claim — one step, so the units a
        /// refill brought cannot go to another claim in between.
        #[serde(default)]
        grant: Option<u32>,
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
    /// `user_id` erased their account: their claims' delivery addresses go.
    EraseClaimant {
        user_id: crate::domain::ids::UserId,
    },
    /// One claim (its owner, or the queue's owner).
    GetClaim {
        claim_id: String,
    },
    /// A part: raise the units granted to it to `total` (a lower or equal
    /// total changes nothing); its waitlist moves up into them.
    Grant {
        total: u32,
    },
    /// A part: give back the units it holds and has not confirmed — all of
    /// them, or (`half`) half of them rounded up, so a part holding any
    /// gives at least one.
    GiveBack {
        #[serde(default)]
        half: bool,
    },
    /// A part: its units.
    Units,
    /// A split queue: allot up to `want` units from what no part holds to
    /// `part` (`want` 0 only reads).
    Allot {
        part: u32,
        want: u32,
    },
    /// A split queue: `part` has given back `total` units so far.
    Recover {
        part: u32,
        total: u32,
    },
    /// Its `opens_at` is due: record the opening once (answers the status).
    Start,
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
    /// A part has no units for the claim (it was asked `dry_first`).
    Dry,
    /// A part's units.
    Part(PartUnits),
    /// A split queue's allotment.
    Pool(Pool),
}

/// The units a part of a split queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUnits {
    /// Granted so far, in total.
    pub received: u32,
    /// Given back so far, in total.
    pub returned: u32,
    pub confirmed: u32,
    /// Held and not confirmed.
    pub unused: u32,
    pub waitlisted: u32,
    /// When the head of its waitlist claimed.
    pub waiting_since: Option<DateTime<Utc>>,
}

/// How a split queue's capacity is allotted to its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Per part: allotted so far, in total.
    pub allotted: Vec<u32>,
    /// Per part: given back so far, in total (as far as the pool knows).
    pub recovered: Vec<u32>,
    /// Allotted to no part.
    pub free: u32,
    /// Allotted by the command answered (`Allot`).
    pub allotted_now: u32,
}
