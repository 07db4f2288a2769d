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

mod client;
mod decide;
mod protocol;
mod state;

pub use client::{ClaimDecision, NewClaim, PendingWork};

pub use protocol::*;
pub use state::*;

use chrono::{DateTime, Utc};

use crate::actors::{Ctx, Entity};
use crate::domain::DomainError;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{
    CLAIMS_BY_QUEUE, CLAIMS_BY_USER, QUEUE_TIMERS, SALES_BY_END, SALES_BY_OWNER,
};
use crate::store::IndexOp;

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

/// `totals[part] = max(totals[part], total)`.
fn raise(totals: &mut Vec<u32>, part: u32, total: u32) {
    let i = part as usize;
    if totals.len() <= i {
        totals.resize(i + 1, 0);
    }
    totals[i] = totals[i].max(total);
}

impl Entity for QueueEntity {
    const KIND: &'static str = "queue";
    /// 2: the state keeps `waitlisted_units` and `due`; 3: the units of
    /// split queues and their parts; 4: `started_at` (older snapshots are
    /// replayed instead).
    const VERSION: u16 = 4;
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
        use decide::{self as d, open};
        let now = ctx.now;
        let events = match cmd {
            QueueCommand::Open(config) => match &state.config {
                Some(_) => vec![],
                None => vec![QueueEvent::Opened { config }],
            },
            QueueCommand::Status => vec![],
            QueueCommand::Start => match &state.config {
                Some(c) if state.started_at.is_none() && c.opens_at.is_some_and(|t| t <= now) => {
                    vec![QueueEvent::Started { at: now }]
                }
                _ => vec![],
            },
            QueueCommand::EraseClaimant { user_id } => {
                let claim_ids: Vec<String> = state
                    .claims
                    .values()
                    .filter(|c| {
                        c.user_id == user_id
                            && c.order.as_ref().is_some_and(|o| o.address.is_some())
                    })
                    .map(|c| c.id.clone())
                    .collect();
                if claim_ids.is_empty() {
                    vec![]
                } else {
                    vec![QueueEvent::ClaimantErased { claim_ids }]
                }
            }
            QueueCommand::GetClaim { claim_id } => return d::get_claim(state, &claim_id),
            QueueCommand::Pending { limit } => return d::pending(state, limit),
            QueueCommand::Notified { claims } => d::notified(state, claims),
            QueueCommand::Claim {
                claim_id,
                user_id,
                quantity,
                idempotency_key,
                order,
                dry_first,
                grant,
            } => {
                let new = NewClaim {
                    claim_id,
                    user_id,
                    quantity,
                    idempotency_key,
                    order,
                    dry_first,
                    grant,
                };
                return d::claim(state, new, ctx);
            }
            QueueCommand::Grant { total } => return d::grant(state, total, now),
            QueueCommand::GiveBack { half } => return d::give_back(state, half),
            QueueCommand::Units => return d::part_answer(state, vec![]),
            QueueCommand::Allot { part, want } => return d::allot(state, part, want),
            QueueCommand::Recover { part, total } => return d::recover(state, part, total),
            QueueCommand::Cancel { user_id, claim_id } => {
                d::cancel(state, &user_id, &claim_id, now)?
            }
            QueueCommand::Expire { claim_id } => {
                open(state)?;
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
        d::answered(state, events)
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
            QueueEvent::ClaimantErased { .. } | QueueEvent::Started { .. } => {}
            QueueEvent::Granted { .. }
            | QueueEvent::GaveBack { .. }
            | QueueEvent::Allotted { .. }
            | QueueEvent::Recovered { .. } => {}
        }
    }
    // Nothing per event: `queue:{id}` carries the capacity counters,
    // coalesced by `service::queue::work`; each claimant hears of their own claim
    // through a notification on `user:{id}`.

    fn index(
        id: &str,
        before: &QueueState,
        after: &QueueState,
        events: &[QueueEvent],
    ) -> Vec<IndexOp> {
        Self::rows(id, before.work_due(), after, events)
    }

    /// In place: `index` needs only whether work was due before, and a
    /// copy of the state kept beside it would make every change to its
    /// collections copy their nodes (a burst's claims, waitlist and sets).
    fn advance(id: &str, state: &mut QueueState, events: &[QueueEvent]) -> Vec<IndexOp> {
        let was_due = state.work_due();
        for e in events {
            Self::apply(state, e);
        }
        Self::rows(id, was_due, state, events)
    }
}

/// The key of a queue's opening in `queue_timers`: due at `opens_at`
/// (work due now is keyed 0).
pub fn opening_key(id: &str, opens_at: DateTime<Utc>) -> String {
    format!("{:020}|{id}", opens_at.timestamp_millis().max(1))
}

/// The key of a flash sale in `sales_by_end`: by its end (none: last).
pub fn sale_end_key(id: &str, closes_at: Option<DateTime<Utc>>) -> String {
    let end = closes_at.map_or(u64::MAX, |t| t.timestamp_millis().max(0) as u64);
    format!("{end:020}|{id}")
}

/// The rows a queue opening with `config` writes: a flash sale's in its
/// merchant's list and the storefront's (by end), and the timer that
/// announces its window's opening.
pub fn opened_rows(id: &str, config: &QueueConfig) -> Vec<IndexOp> {
    let mut ops = Vec::new();
    if config.part_of.is_some() {
        return ops;
    }
    if config.kind == QueueKind::FlashSale {
        let value = crate::store::codec::encode(1, config).expect("queue configs encode");
        ops.push(IndexOp::Put {
            table: SALES_BY_OWNER,
            key: format!("{}|{id}", config.owner_id),
            value: value.clone(),
        });
        ops.push(IndexOp::Put {
            table: SALES_BY_END,
            key: sale_end_key(id, config.closes_at),
            value,
        });
    }
    if let Some(t) = config.opens_at {
        ops.push(IndexOp::Put {
            table: QUEUE_TIMERS,
            key: opening_key(id, t),
            value: Vec::new(),
        });
    }
    ops
}

impl QueueEntity {
    /// The read-table rows of `events`, given the state after them and
    /// whether work was due before them.
    fn rows(id: &str, was_due: bool, after: &QueueState, events: &[QueueEvent]) -> Vec<IndexOp> {
        let mut ops = Vec::new();
        let flash_sale = after
            .config
            .as_ref()
            .is_some_and(|c| c.kind == QueueKind::FlashSale);
        for e in events {
            // A place confirmed, at once or from the waitlist: a sign-up.
            let confirmed = match e {
                QueueEvent::Claimed { claim } if claim.status == ClaimStatus::Confirmed => {
                    Some((claim.id.as_str(), claim.created_at))
                }
                QueueEvent::Promoted { claim_id, at } => Some((claim_id.as_str(), *at)),
                _ => None,
            };
            if let Some((claim, at)) = confirmed {
                let fact = crate::domain::stats::Fact::SignUp { flash_sale };
                let key = format!("claim:{claim}:confirmed");
                ops.push(super::entity::stats_fact(at, &key, &fact));
            }
            if let QueueEvent::Opened { config } = e {
                ops.extend(opened_rows(id, config));
            }
        }
        let mut touched: Vec<&String> = events
            .iter()
            .flat_map(|e| match e {
                QueueEvent::Claimed { claim } => vec![&claim.id],
                QueueEvent::Cancelled { claim_id, .. }
                | QueueEvent::Expired { claim_id, .. }
                | QueueEvent::Promoted { claim_id, .. }
                | QueueEvent::OrderPlaced { claim_id } => vec![claim_id],
                QueueEvent::ClaimantErased { claim_ids } => claim_ids.iter().collect(),
                QueueEvent::Opened { .. }
                | QueueEvent::Notified { .. }
                | QueueEvent::Granted { .. }
                | QueueEvent::GaveBack { .. }
                | QueueEvent::Allotted { .. }
                | QueueEvent::Recovered { .. }
                | QueueEvent::Started { .. } => vec![],
            })
            .collect();
        touched.dedup();
        for claim_id in touched {
            let Some(c) = after.claims.get(claim_id) else {
                continue;
            };
            let value = crate::store::codec::encode(1, c).expect("claims always encode");
            // Under the queue's id (a part's claims are its queue's).
            let queue = &c.queue_id;
            ops.push(IndexOp::Put {
                table: CLAIMS_BY_USER,
                key: format!("{}|{queue}|{}", c.user_id, c.id),
                value: value.clone(),
            });
            ops.push(IndexOp::Put {
                table: CLAIMS_BY_QUEUE,
                key: format!("{queue}|{}", c.id),
                value,
            });
        }
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
                *state.held.entry(claim.user_id.clone().into()).or_insert(0) += claim.quantity;
                match claim.status {
                    ClaimStatus::Confirmed => state.confirmed += claim.quantity,
                    ClaimStatus::Waitlisted => {
                        state.waitlist.push_back(claim.id.clone());
                        state.waitlisted_units += claim.quantity;
                    }
                    _ => {}
                }
                state
                    .claims
                    .insert(claim.id.clone(), std::sync::Arc::new(claim.clone()));
            }
            QueueEvent::Cancelled { claim_id, .. } | QueueEvent::Expired { claim_id, .. } => {
                let expired = matches!(event, QueueEvent::Expired { .. });
                if let Some(c) = state.claims.get_mut(claim_id).map(std::sync::Arc::make_mut) {
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
                        if let Some(h) = state.held.get_mut(c.user_id.as_str()) {
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
                if let Some(c) = state.claims.get_mut(claim_id).map(std::sync::Arc::make_mut) {
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
                if let Some(c) = state.claims.get_mut(claim_id).map(std::sync::Arc::make_mut) {
                    c.order_placed = true;
                }
            }
            QueueEvent::Notified { claims } => {
                for (id, st) in claims {
                    if let Some(c) = state.claims.get_mut(id).map(std::sync::Arc::make_mut) {
                        c.notified = Some(*st);
                    }
                }
            }
            QueueEvent::ClaimantErased { claim_ids } => {
                for id in claim_ids {
                    if let Some(order) = state
                        .claims
                        .get_mut(id)
                        .map(std::sync::Arc::make_mut)
                        .and_then(|c| c.order.as_mut())
                    {
                        order.address = None;
                    }
                }
            }
            QueueEvent::Granted { total } => state.received = state.received.max(*total),
            QueueEvent::GaveBack { total } => state.returned = state.returned.max(*total),
            QueueEvent::Allotted { part, total } => {
                raise(&mut state.allotted, *part, *total);
            }
            QueueEvent::Recovered { part, total } => {
                raise(&mut state.recovered, *part, *total);
            }
            QueueEvent::Started { at } => state.started_at = Some(*at),
        }
    }

    /// Events that free `claim` and promote whom that lets in.
    pub(super) fn free(
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
mod tests;
