//! The queue actor's state and the data it keeps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::store::codec;

pub use crate::domain::claim::{Claim, ClaimOrder, ClaimStatus, QueueKind};

pub struct QueueEntity;

/// Claims a queue keeps beyond its capacity and waitlist (cancelled and
/// expired ones).
pub const MAX_CLAIM_HISTORY: usize = 10_000;

/// Fixed when the queue opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueConfig {
    pub kind: QueueKind,
    /// The trainer or merchant.
    pub owner_id: crate::domain::ids::UserId,
    /// The course, or the flash sale's product.
    pub subject_id: String,
    /// The flash sale's shop.
    pub shop_id: Option<crate::domain::ids::ShopId>,
    pub title: String,
    pub capacity: u32,
    pub per_user_limit: u32,
    /// Per unit, minor units; 0 needs no order.
    pub price: u64,
    pub currency: String,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub max_waitlist: u32,
    /// The parts (sub-queues) its capacity is split over, each its own
    /// actor and stream deciding the claims of its share of the users; 1:
    /// this queue decides every claim itself.
    #[serde(default = "one_part")]
    pub parts: u32,
    /// On a part: the queue it is a part of (its claims carry that id).
    /// Always written (never skipped when empty): commands and replies
    /// cross nodes positionally, where a skipped field shifts the rest.
    #[serde(default)]
    #[schema(ignore)]
    pub part_of: Option<crate::domain::ids::QueueId>,
}

fn one_part() -> u32 {
    1
}

impl QueueConfig {
    pub fn needs_order(&self) -> bool {
        self.price > 0
    }

    /// Split over parts, and this is the queue (not one of its parts).
    pub fn is_split(&self) -> bool {
        self.parts > 1 && self.part_of.is_none()
    }

    /// The configuration of part `i` of this split queue `id`: the same
    /// rules, its share of the waitlist, and no units until some are
    /// granted.
    pub fn part(&self, id: &str) -> QueueConfig {
        QueueConfig {
            max_waitlist: self.max_waitlist.div_ceil(self.parts.max(1)),
            part_of: Some(id.into()),
            ..self.clone()
        }
    }

    /// The part of this split queue `id` that decides `user_id`'s claims:
    /// a stable hash of the user (the same on every node and version), so a
    /// user's per-user limit and idempotency keys live in one part.
    pub fn part_for(&self, id: &str, user_id: &str) -> String {
        part_id(id, self.part_index(user_id))
    }

    /// The number of the part `part_for` names.
    pub fn part_index(&self, user_id: &str) -> u32 {
        part_of_user(user_id, self.parts)
    }
}

/// The part (of `parts`) that decides `user_id`'s claims: the first 8
/// bytes of SHA-256 of the user id, modulo `parts`.
pub fn part_of_user(user_id: &str, parts: u32) -> u32 {
    crate::domain::ids::spread(user_id, parts)
}

/// The actor id of part `i` of queue `id`.
pub fn part_id(id: &str, i: u32) -> String {
    format!("{id}~{i}")
}

impl QueueState {
    pub(super) fn needs_order(&self, c: &Claim) -> bool {
        self.config.as_ref().is_some_and(|q| q.needs_order())
            && c.status == ClaimStatus::Confirmed
            && !c.order_placed
    }
}

/// Persistent (structurally shared) collections: the actor derives the
/// next state from a clone of the current one for every decision, and a
/// queue in a burst holds thousands of claims, so cloning must be O(1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueState {
    pub config: Option<QueueConfig>,
    /// Units confirmed (never above capacity).
    pub confirmed: u32,
    // The persistent collections are decoded through their std
    // counterparts (`codec::via`): imbl preallocates whatever length the
    // bytes claim, so a corrupt snapshot could abort the process.
    /// Each claim behind an `Arc`: a decision applies its events to a copy
    /// of the state, and copying a tree node then bumps reference counts
    /// instead of cloning up to 64 claims (their ids, addresses, …).
    #[serde(serialize_with = "ser_claims", deserialize_with = "de_claims")]
    pub claims: imbl::OrdMap<String, std::sync::Arc<Claim>>,
    /// Waitlisted claim ids, first in first out.
    #[serde(deserialize_with = "codec::via::<_, Vec<String>, _>")]
    pub waitlist: imbl::Vector<String>,
    /// `{user}|{key}` → claim id.
    #[serde(deserialize_with = "codec::via::<_, std::collections::HashMap<String, String>, _>")]
    pub idempotency: imbl::HashMap<String, String>,
    /// Units a user holds (confirmed or waitlisted).
    #[serde(deserialize_with = "codec::via::<_, std::collections::HashMap<String, u32>, _>")]
    pub held: imbl::HashMap<String, u32>,
    /// Units waiting in the waitlist.
    #[serde(default)]
    pub waitlisted_units: u32,
    /// Claims with work due (an order to place, a status to tell), so that
    /// finding work never scans every claim.
    #[serde(
        default,
        deserialize_with = "codec::via::<_, std::collections::BTreeSet<String>, _>"
    )]
    pub due: imbl::OrdSet<String>,
    /// A part: units granted to it and given back, in total (it holds the
    /// difference).
    #[serde(default)]
    pub received: u32,
    #[serde(default)]
    pub returned: u32,
    /// A split queue: per part, units allotted and recovered, in total.
    #[serde(default)]
    pub allotted: Vec<u32>,
    #[serde(default)]
    pub recovered: Vec<u32>,
    /// When its window's opening was announced (`Started`): a queue with
    /// an `opens_at` is announced once, at that moment, on `queue:{id}`.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
}

/// The claims as a map of plain claims (the same bytes as before they
/// were shared).
fn ser_claims<S: serde::Serializer>(
    claims: &imbl::OrdMap<String, std::sync::Arc<Claim>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(claims.iter().map(|(k, v)| (k, v.as_ref())))
}

/// Decoded through a `BTreeMap` (see `codec::via`).
fn de_claims<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<imbl::OrdMap<String, std::sync::Arc<Claim>>, D::Error> {
    let plain: std::collections::BTreeMap<String, Claim> = Deserialize::deserialize(d)?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, std::sync::Arc::new(v)))
        .collect())
}

impl QueueState {
    /// The units this queue decides on: a part's are those it holds.
    pub fn capacity(&self) -> u32 {
        match &self.config {
            Some(c) if c.part_of.is_some() => self.received.saturating_sub(self.returned),
            Some(c) => c.capacity,
            None => 0,
        }
    }

    pub fn remaining(&self) -> u32 {
        self.capacity().saturating_sub(self.confirmed)
    }

    /// A split queue: units allotted to no part.
    pub fn pool_free(&self) -> u32 {
        let capacity = self.config.as_ref().map_or(0, |c| c.capacity);
        let out: u32 = self.allotted.iter().sum();
        let back: u32 = self.recovered.iter().sum();
        (capacity + back).saturating_sub(out)
    }

    pub fn pool(&self) -> Pool {
        let parts = self.config.as_ref().map_or(0, |c| c.parts as usize);
        let mut allotted = self.allotted.clone();
        let mut recovered = self.recovered.clone();
        allotted.resize(parts, 0);
        recovered.resize(parts, 0);
        Pool {
            allotted,
            recovered,
            free: self.pool_free(),
            allotted_now: 0,
        }
    }

    pub fn part_units(&self) -> PartUnits {
        PartUnits {
            received: self.received,
            returned: self.returned,
            confirmed: self.confirmed,
            unused: self.remaining(),
            waitlisted: self.waitlisted_units,
            waiting_since: self
                .waitlist
                .front()
                .and_then(|id| self.claims.get(id))
                .map(|c| c.created_at),
        }
    }

    pub(super) fn held_by(&self, user_id: &str) -> u32 {
        self.held.get(user_id).copied().unwrap_or(0)
    }

    /// Confirmed claims whose order is still to be placed.
    pub fn orders_due(&self) -> impl Iterator<Item = &Claim> {
        self.due
            .iter()
            .filter_map(|id| self.claims.get(id).map(|c| &**c))
            .filter(|c| self.needs_order(c))
    }

    /// Claims whose user has not been told their current status.
    pub fn notifications_due(&self) -> impl Iterator<Item = &Claim> {
        self.due
            .iter()
            .filter_map(|id| self.claims.get(id).map(|c| &**c))
            .filter(|c| c.notified != Some(c.status))
    }

    pub(super) fn work_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// Keeps `due` true to `claim_id`'s state.
    pub(super) fn refresh_due(&mut self, claim_id: &str) {
        let due = self
            .claims
            .get(claim_id)
            .is_some_and(|c| self.needs_order(c) || c.notified != Some(c.status));
        if due {
            self.due.insert(claim_id.to_owned());
        } else {
            self.due.remove(claim_id);
        }
    }

    pub(super) fn with_position(&self, claim: &Claim) -> Claim {
        let mut c = claim.clone();
        c.position = (c.status == ClaimStatus::Waitlisted)
            .then(|| {
                // A new claim is last: no need to search the waitlist.
                if self.waitlist.last() == Some(&c.id) {
                    Some(self.waitlist.len() as u32)
                } else {
                    self.waitlist.index_of(&c.id).map(|i| i as u32 + 1)
                }
            })
            .flatten();
        c
    }

    pub fn status(&self) -> Option<QueueStatus> {
        let c = self.config.as_ref()?;
        Some(QueueStatus {
            config: c.clone(),
            confirmed: self.confirmed,
            remaining: self.remaining(),
            waitlisted: self.waitlisted_units,
        })
    }
}
