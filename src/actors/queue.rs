//! The enrollment queue: one actor per free or paid course and per flash
//! sale, deciding every claim in memory. A claim is `confirmed` while
//! capacity remains, then `waitlisted` (FIFO, bounded) and then refused
//! `sold_out`; nobody holds more than the per-user limit; a retried claim
//! (same user, same `Idempotency-Key`) answers its first decision. The
//! generic entity actor pipelines the decisions into the journal, so a
//! burst is group-committed, and replies only once each is durable.
//!
//! Freeing a confirmed seat (a cancellation, an unpaid claim's order timing
//! out) promotes the head of the waitlist while it fits. Claims that need
//! an order (flash sales, paid courses) have one placed by the queue's next
//! action, under the claim's id, so it is created exactly once even across
//! crashes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Entity};
use crate::domain::DomainError;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{CLAIMS_BY_QUEUE, CLAIMS_BY_USER, QUEUE_TIMERS};
use crate::store::{codec, IndexOp};

pub struct QueueEntity;

/// Claims a queue keeps beyond its capacity and waitlist (cancelled and
/// expired ones).
pub const MAX_CLAIM_HISTORY: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Course,
    FlashSale,
}

/// Fixed when the queue opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueConfig {
    pub kind: QueueKind,
    /// The trainer or merchant.
    pub owner_id: String,
    /// The course, or the flash sale's product.
    pub subject_id: String,
    /// The flash sale's shop.
    pub shop_id: Option<String>,
    pub title: String,
    pub capacity: u32,
    pub per_user_limit: u32,
    /// Per unit, minor units; 0 needs no order.
    pub price: u64,
    pub currency: String,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub max_waitlist: u32,
}

impl QueueConfig {
    pub fn needs_order(&self) -> bool {
        self.price > 0
    }
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
    pub queue_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub status: ClaimStatus,
    /// Position in the waitlist (1 = next), while waitlisted.
    pub position: Option<u32>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that first used `idempotency_key` (method,
    /// path, body): the same key with another request is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Persistent (structurally shared) collections: the actor derives the
/// next state from a clone of the current one for every decision, and a
/// queue in a burst holds thousands of claims, so cloning must be O(1).
/// What a claim's order needs, fixed when the claim is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimOrder {
    /// Where to deliver (flash sales; none for a course).
    pub address: Option<crate::domain::user::Address>,
    pub payment_method: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueState {
    pub config: Option<QueueConfig>,
    /// Units confirmed (never above capacity).
    pub confirmed: u32,
    // The persistent collections are decoded through their std
    // counterparts (`codec::via`): imbl preallocates whatever length the
    // bytes claim, so a corrupt snapshot could abort the process.
    #[serde(deserialize_with = "codec::via::<_, std::collections::BTreeMap<String, Claim>, _>")]
    pub claims: imbl::OrdMap<String, Claim>,
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
}

impl QueueState {
    pub fn remaining(&self) -> u32 {
        self.config
            .as_ref()
            .map_or(0, |c| c.capacity.saturating_sub(self.confirmed))
    }

    fn held_by(&self, user_id: &str) -> u32 {
        self.held.get(user_id).copied().unwrap_or(0)
    }

    fn needs_order(&self, c: &Claim) -> bool {
        self.config.as_ref().is_some_and(|q| q.needs_order())
            && c.status == ClaimStatus::Confirmed
            && !c.order_placed
    }

    /// Confirmed claims whose order is still to be placed.
    pub fn orders_due(&self) -> impl Iterator<Item = &Claim> {
        self.due
            .iter()
            .filter_map(|id| self.claims.get(id))
            .filter(|c| self.needs_order(c))
    }

    /// Claims whose user has not been told their current status.
    pub fn notifications_due(&self) -> impl Iterator<Item = &Claim> {
        self.due
            .iter()
            .filter_map(|id| self.claims.get(id))
            .filter(|c| c.notified != Some(c.status))
    }

    fn work_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// Keeps `due` true to `claim_id`'s state.
    fn refresh_due(&mut self, claim_id: &str) {
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

    fn with_position(&self, claim: &Claim) -> Claim {
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

pub enum QueueCommand {
    /// Open with `config` (a no-op when already open).
    Open(QueueConfig),
    Claim {
        claim_id: String,
        user_id: String,
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
        user_id: String,
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

#[derive(Debug, Clone)]
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

fn rejected(code: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::Conflict {
        code,
        message: message.into(),
    }
}

/// Promotions that freeing capacity allows, head of the waitlist first.
fn promotions(state: &QueueState, mut free: u32, now: DateTime<Utc>) -> Vec<QueueEvent> {
    let mut out = Vec::new();
    for id in &state.waitlist {
        let Some(c) = state.claims.get(id) else {
            continue;
        };
        if c.quantity > free {
            break;
        }
        free -= c.quantity;
        out.push(QueueEvent::Promoted {
            claim_id: id.clone(),
            at: now,
        });
    }
    out
}

impl Entity for QueueEntity {
    const KIND: &'static str = "queue";
    /// 2: the state keeps `waitlisted_units` and `due` (older snapshots are
    /// replayed instead).
    const VERSION: u16 = 2;
    type State = QueueState;
    type Command = QueueCommand;
    type Event = QueueEvent;
    type Reply = QueueReply;
    type Rejection = DomainError;

    fn decide(
        state: &QueueState,
        cmd: QueueCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<QueueEvent>, QueueReply), DomainError> {
        let now = ctx.now;
        let open = || state.config.as_ref().ok_or(DomainError::NotFound("queue"));
        let events = match cmd {
            QueueCommand::Open(config) => match &state.config {
                Some(_) => vec![],
                None => vec![QueueEvent::Opened { config }],
            },
            QueueCommand::Status => vec![],
            QueueCommand::GetClaim { claim_id } => {
                let claim = state
                    .claims
                    .get(&claim_id)
                    .ok_or(DomainError::NotFound("claim"))?;
                return Ok((
                    vec![],
                    QueueReply::Claim {
                        claim: state.with_position(claim),
                        replayed: true,
                        status: Box::new(state.status().ok_or(DomainError::NotFound("queue"))?),
                    },
                ));
            }
            QueueCommand::Pending { limit } => {
                let config = Box::new(open()?.clone());
                return Ok((
                    vec![],
                    QueueReply::Pending {
                        config,
                        orders: state.orders_due().take(limit).cloned().collect(),
                        notify: state
                            .notifications_due()
                            .take(limit)
                            .map(|c| state.with_position(c))
                            .collect(),
                    },
                ));
            }
            QueueCommand::Notified { claims } => {
                let fresh: Vec<_> = claims
                    .into_iter()
                    .filter(|(id, st)| {
                        state
                            .claims
                            .get(id)
                            .is_some_and(|c| c.notified != Some(*st))
                    })
                    .collect();
                if fresh.is_empty() {
                    vec![]
                } else {
                    vec![QueueEvent::Notified { claims: fresh }]
                }
            }
            QueueCommand::Claim {
                claim_id,
                user_id,
                quantity,
                idempotency_key,
                order,
            } => {
                let cfg = open()?;
                if let Some(key) = &idempotency_key {
                    if let Some(id) = state.idempotency.get(&format!("{user_id}|{}", key.key)) {
                        key.check(state.claims[id].idempotency_request.as_deref())?;
                        let claim = state.with_position(&state.claims[id]);
                        return Ok((
                            vec![],
                            QueueReply::Claim {
                                claim,
                                replayed: true,
                                status: Box::new(state.status().expect("open")),
                            },
                        ));
                    }
                }
                if cfg.needs_order() && order.is_none() {
                    return Err(DomainError::invalid(
                        "address_id",
                        "a delivery address is needed: add one to your profile",
                    ));
                }
                if quantity == 0 {
                    return Err(DomainError::invalid(
                        "quantity",
                        "quantity must be at least 1",
                    ));
                }
                if cfg.opens_at.is_some_and(|t| now < t) {
                    return Err(rejected("not_open", "this queue is not open yet"));
                }
                if cfg.closes_at.is_some_and(|t| now >= t) {
                    return Err(rejected("closed", "this queue is closed"));
                }
                if state.held_by(&user_id) + quantity > cfg.per_user_limit {
                    return Err(rejected(
                        "limit_reached",
                        format!("at most {} per person", cfg.per_user_limit),
                    ));
                }
                // Cancelled and expired claims stay (their retries must
                // answer), so a cancel-and-claim loop is bounded too.
                let room = cfg.capacity as usize + cfg.max_waitlist as usize + MAX_CLAIM_HISTORY;
                if state.claims.len() >= room {
                    return Err(rejected(
                        "queue_full",
                        "this queue has taken all the claims it can",
                    ));
                }
                if state.claims.contains_key(&claim_id) {
                    return Err(rejected("duplicate_claim", "this claim id is taken"));
                }
                let status = if quantity <= state.remaining() {
                    ClaimStatus::Confirmed
                } else if (state.waitlist.len() as u32) < cfg.max_waitlist {
                    ClaimStatus::Waitlisted
                } else {
                    return Err(rejected("sold_out", "sold out, and the waitlist is full"));
                };
                vec![QueueEvent::Claimed {
                    claim: Claim {
                        id: claim_id,
                        queue_id: ctx.id.to_owned(),
                        user_id,
                        quantity,
                        status,
                        position: None,
                        idempotency_request: idempotency_key.as_ref().map(|k| k.request.clone()),
                        idempotency_key: idempotency_key.map(|k| k.key),
                        order,
                        order_placed: false,
                        notified: None,
                        created_at: now,
                        confirmed_at: (status == ClaimStatus::Confirmed).then_some(now),
                    },
                }]
            }
            QueueCommand::Cancel { user_id, claim_id } => {
                open()?;
                let claim = state
                    .claims
                    .get(&claim_id)
                    .filter(|c| c.user_id == user_id)
                    .ok_or(DomainError::NotFound("claim"))?;
                if matches!(claim.status, ClaimStatus::Cancelled | ClaimStatus::Expired) {
                    return Err(DomainError::Conflict {
                        code: "claim_not_active",
                        message: format!(
                            "the claim is already {}",
                            if claim.status == ClaimStatus::Cancelled {
                                "cancelled"
                            } else {
                                "expired"
                            }
                        ),
                    });
                }
                Self::free(state, claim, false, now)
            }
            QueueCommand::Expire { claim_id } => {
                open()?;
                match state.claims.get(&claim_id) {
                    Some(claim) => Self::free(state, claim, true, now),
                    None => vec![],
                }
            }
            QueueCommand::OrderPlaced { claim_id } => match state.claims.get(&claim_id) {
                Some(c) if !c.order_placed => vec![QueueEvent::OrderPlaced { claim_id }],
                _ => vec![],
            },
        };
        let next = Self::evolve(state, &events);
        let reply = match events.iter().find_map(|e| match e {
            QueueEvent::Claimed { claim } => Some(claim.id.clone()),
            QueueEvent::Cancelled { claim_id, .. } | QueueEvent::Expired { claim_id, .. } => {
                Some(claim_id.clone())
            }
            _ => None,
        }) {
            Some(id) => QueueReply::Claim {
                claim: next.with_position(&next.claims[&id]),
                replayed: false,
                status: Box::new(next.status().ok_or(DomainError::NotFound("queue"))?),
            },
            None => QueueReply::Status(next.status().ok_or(DomainError::NotFound("queue"))?),
        };
        Ok((events, reply))
    }

    fn apply(state: &mut QueueState, event: &QueueEvent) {
        Self::apply_event(state, event);
        match event {
            QueueEvent::Opened { .. } => {}
            QueueEvent::Claimed { claim } => state.refresh_due(&claim.id),
            QueueEvent::Cancelled { claim_id, .. }
            | QueueEvent::Expired { claim_id, .. }
            | QueueEvent::Promoted { claim_id, .. }
            | QueueEvent::OrderPlaced { claim_id } => state.refresh_due(claim_id),
            QueueEvent::Notified { claims } => {
                for (id, _) in claims {
                    state.refresh_due(id);
                }
            }
        }
    }
    // Nothing per event: `queue:{id}` carries the capacity counters,
    // coalesced by `service::burst`; each claimant hears of their own claim
    // through a notification on `user:{id}`.

    fn index(
        id: &str,
        before: &QueueState,
        after: &QueueState,
        events: &[QueueEvent],
    ) -> Vec<IndexOp> {
        let mut ops = Vec::new();
        let mut touched: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                QueueEvent::Claimed { claim } => Some(&claim.id),
                QueueEvent::Cancelled { claim_id, .. }
                | QueueEvent::Expired { claim_id, .. }
                | QueueEvent::Promoted { claim_id, .. }
                | QueueEvent::OrderPlaced { claim_id } => Some(claim_id),
                QueueEvent::Opened { .. } | QueueEvent::Notified { .. } => None,
            })
            .collect();
        touched.dedup();
        for claim_id in touched {
            let Some(c) = after.claims.get(claim_id) else {
                continue;
            };
            let value = crate::store::codec::encode(1, c).expect("claims always encode");
            ops.push(IndexOp::Put {
                table: CLAIMS_BY_USER,
                key: format!("{}|{id}|{}", c.user_id, c.id),
                value: value.clone(),
            });
            ops.push(IndexOp::Put {
                table: CLAIMS_BY_QUEUE,
                key: format!("{id}|{}", c.id),
                value,
            });
        }
        let was_due = before.work_due();
        let due = after.work_due();
        if was_due != due {
            let key = format!("{:020}|{id}", 0);
            ops.push(if due {
                IndexOp::Put {
                    table: QUEUE_TIMERS,
                    key,
                    value: Vec::new(),
                }
            } else {
                IndexOp::Delete {
                    table: QUEUE_TIMERS,
                    key,
                }
            });
        }
        ops
    }
}

impl QueueEntity {
    /// The state change of one event (`apply` then refreshes `due`).
    fn apply_event(state: &mut QueueState, event: &QueueEvent) {
        match event {
            QueueEvent::Opened { config } => state.config = Some(config.clone()),
            QueueEvent::Claimed { claim } => {
                if let Some(key) = &claim.idempotency_key {
                    state
                        .idempotency
                        .insert(format!("{}|{key}", claim.user_id), claim.id.clone());
                }
                *state.held.entry(claim.user_id.clone()).or_insert(0) += claim.quantity;
                match claim.status {
                    ClaimStatus::Confirmed => state.confirmed += claim.quantity,
                    ClaimStatus::Waitlisted => {
                        state.waitlist.push_back(claim.id.clone());
                        state.waitlisted_units += claim.quantity;
                    }
                    _ => {}
                }
                state.claims.insert(claim.id.clone(), claim.clone());
            }
            QueueEvent::Cancelled { claim_id, .. } | QueueEvent::Expired { claim_id, .. } => {
                let expired = matches!(event, QueueEvent::Expired { .. });
                if let Some(c) = state.claims.get_mut(claim_id) {
                    match c.status {
                        ClaimStatus::Confirmed => {
                            state.confirmed = state.confirmed.saturating_sub(c.quantity)
                        }
                        ClaimStatus::Waitlisted => {
                            state.waitlist.retain(|id| id != claim_id);
                            state.waitlisted_units =
                                state.waitlisted_units.saturating_sub(c.quantity);
                        }
                        _ => {}
                    }
                    if matches!(c.status, ClaimStatus::Confirmed | ClaimStatus::Waitlisted) {
                        if let Some(h) = state.held.get_mut(&c.user_id) {
                            *h = h.saturating_sub(c.quantity);
                        }
                    }
                    c.status = if expired {
                        ClaimStatus::Expired
                    } else {
                        ClaimStatus::Cancelled
                    };
                }
            }
            QueueEvent::Promoted { claim_id, at } => {
                if let Some(c) = state.claims.get_mut(claim_id) {
                    if c.status == ClaimStatus::Waitlisted {
                        c.status = ClaimStatus::Confirmed;
                        c.confirmed_at = Some(*at);
                        state.confirmed += c.quantity;
                        state.waitlist.retain(|id| id != claim_id);
                        state.waitlisted_units = state.waitlisted_units.saturating_sub(c.quantity);
                    }
                }
            }
            QueueEvent::OrderPlaced { claim_id } => {
                if let Some(c) = state.claims.get_mut(claim_id) {
                    c.order_placed = true;
                }
            }
            QueueEvent::Notified { claims } => {
                for (id, st) in claims {
                    if let Some(c) = state.claims.get_mut(id) {
                        c.notified = Some(*st);
                    }
                }
            }
        }
    }

    /// Events that free `claim` and promote whom that lets in.
    fn free(
        state: &QueueState,
        claim: &Claim,
        expired: bool,
        now: DateTime<Utc>,
    ) -> Vec<QueueEvent> {
        let mut events = match (claim.status, expired) {
            (ClaimStatus::Cancelled | ClaimStatus::Expired, _) => return vec![],
            (_, true) => vec![QueueEvent::Expired {
                claim_id: claim.id.clone(),
                at: now,
            }],
            (_, false) => vec![QueueEvent::Cancelled {
                claim_id: claim.id.clone(),
                at: now,
            }],
        };
        if claim.status == ClaimStatus::Confirmed {
            let after = Self::evolve(state, &events);
            events.extend(promotions(&after, after.remaining(), now));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(capacity: u32, limit: u32, waitlist: u32) -> QueueState {
        let cfg = QueueConfig {
            kind: QueueKind::Course,
            owner_id: "t".into(),
            subject_id: "c".into(),
            shop_id: None,
            title: "Yoga".into(),
            capacity,
            per_user_limit: limit,
            price: 0,
            currency: "VND".into(),
            opens_at: None,
            closes_at: None,
            max_waitlist: waitlist,
        };
        QueueEntity::evolve(
            &QueueState::default(),
            &[QueueEvent::Opened { config: cfg }],
        )
    }

    fn claim(
        s: &QueueState,
        id: &str,
        user: &str,
        q: u32,
        key: Option<&str>,
    ) -> Result<(QueueState, Claim), DomainError> {
        let ctx = Ctx {
            id: "q",
            now: Utc::now(),
        };
        let cmd = QueueCommand::Claim {
            claim_id: id.into(),
            user_id: user.into(),
            quantity: q,
            idempotency_key: key.map(|k| crate::domain::IdempotencyKey {
                key: k.to_owned(),
                request: "the same request".into(),
            }),
            order: None,
        };
        let (events, reply) = QueueEntity::decide(s, cmd, &ctx)?;
        let QueueReply::Claim { claim, .. } = reply else {
            panic!("a claim reply")
        };
        Ok((QueueEntity::evolve(s, &events), claim))
    }

    /// The state after `user` cancels `claim_id`.
    fn cancel(s: &QueueState, user: &str, claim_id: &str) -> QueueState {
        let ctx = Ctx {
            id: "q",
            now: Utc::now(),
        };
        let cmd = QueueCommand::Cancel {
            user_id: user.into(),
            claim_id: claim_id.into(),
        };
        let (events, _) = QueueEntity::decide(s, cmd, &ctx).unwrap();
        QueueEntity::evolve(s, &events)
    }

    #[test]
    fn a_corrupt_snapshot_claiming_a_huge_collection_is_refused_not_allocated() {
        // Found by `fuzz/` (journal_codec): a waitlist claiming 3.5 billion
        // entries made imbl preallocate ~85 GB and abort the process.
        let bytes = include_bytes!("../../fuzz/regressions/journal_codec-imbl-preallocation");
        assert!(codec::decode::<QueueState>(QueueEntity::VERSION, bytes).is_err());
        // A real state still round-trips through the std collections.
        let mut s = opened(1, 1, 5);
        for user in ["a", "b", "c"] {
            s = claim(&s, &format!("c-{user}"), user, 1, Some("k"))
                .unwrap()
                .0;
        }
        assert_eq!(s.waitlist.len(), 2);
        let bytes = codec::encode(QueueEntity::VERSION, &s).unwrap();
        assert_eq!(
            codec::decode::<QueueState>(QueueEntity::VERSION, &bytes).unwrap(),
            s
        );
    }

    #[test]
    fn confirmed_then_waitlisted_then_sold_out() {
        let mut s = opened(2, 1, 1);
        for (i, want) in [
            ClaimStatus::Confirmed,
            ClaimStatus::Confirmed,
            ClaimStatus::Waitlisted,
        ]
        .into_iter()
        .enumerate()
        {
            let (next, c) = claim(&s, &format!("c{i}"), &format!("u{i}"), 1, None).unwrap();
            assert_eq!(c.status, want);
            s = next;
        }
        assert!(matches!(
            claim(&s, "c9", "u9", 1, None),
            Err(DomainError::Conflict {
                code: "sold_out",
                ..
            })
        ));
        assert_eq!(s.confirmed, 2);
    }

    #[test]
    fn per_user_limit_and_idempotency() {
        let s = opened(10, 2, 10);
        let (s, first) = claim(&s, "a", "u", 2, Some("k1")).unwrap();
        let (s2, again) = claim(&s, "b", "u", 2, Some("k1")).unwrap();
        assert_eq!(again, first, "a retry answers the first decision");
        assert_eq!(s2, s);
        assert!(matches!(
            claim(&s, "c", "u", 1, Some("k2")),
            Err(DomainError::Conflict {
                code: "limit_reached",
                ..
            })
        ));
    }

    #[test]
    fn cancelling_promotes_the_head_of_the_waitlist_in_order() {
        let mut s = opened(1, 1, 10);
        for (i, user) in ["a", "b", "c"].iter().enumerate() {
            s = claim(&s, &format!("c{i}"), user, 1, None).unwrap().0;
        }
        assert_eq!(s.claims["c2"].status, ClaimStatus::Waitlisted);
        let s = cancel(&s, "a", "c0");
        assert_eq!(s.claims["c1"].status, ClaimStatus::Confirmed, "b first");
        assert_eq!(s.claims["c2"].status, ClaimStatus::Waitlisted);
        assert_eq!(s.with_position(&s.claims["c2"]).position, Some(1));
        assert_eq!(s.confirmed, 1);
        assert_derived_fields_match_a_full_scan(&s);
        // Everyone told: nothing is due any more.
        let told: Vec<_> = s
            .claims
            .values()
            .map(|c| (c.id.clone(), c.status))
            .collect();
        let s = QueueEntity::evolve(&s, &[QueueEvent::Notified { claims: told }]);
        assert_derived_fields_match_a_full_scan(&s);
        assert!(!s.work_due());
    }

    /// `waitlisted_units` and `due` are kept by `apply`; they must equal
    /// what scanning every claim gives.
    fn assert_derived_fields_match_a_full_scan(s: &QueueState) {
        let units: u32 = s
            .waitlist
            .iter()
            .filter_map(|id| s.claims.get(id))
            .map(|c| c.quantity)
            .sum();
        assert_eq!(s.waitlisted_units, units);
        let due: imbl::OrdSet<String> = s
            .claims
            .values()
            .filter(|c| s.needs_order(c) || c.notified != Some(c.status))
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(s.due, due);
    }

    #[test]
    fn derived_fields_follow_claims_cancellations_and_promotions() {
        let mut s = opened(2, 2, 10);
        for (i, q) in [2, 1, 2, 1].into_iter().enumerate() {
            s = claim(&s, &format!("c{i}"), &format!("u{i}"), q, None)
                .unwrap()
                .0;
            assert_derived_fields_match_a_full_scan(&s);
        }
        assert_eq!(s.waitlisted_units, 4);
        let (s2, c) = claim(&s, "c9", "u9", 1, None).unwrap();
        assert_eq!(c.position, Some(4), "a new claim is last in the waitlist");
        assert_derived_fields_match_a_full_scan(&s2);
        let s = cancel(&s, "u0", "c0");
        assert_derived_fields_match_a_full_scan(&s);
        // Strict FIFO: the head (1 unit) fits, the next (2 units) does not.
        assert_eq!(s.confirmed, 1);
        assert_eq!(s.waitlisted_units, 3);
    }
}
