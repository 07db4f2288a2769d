//! The queue's decisions that take more than a line: reads that answer at
//! once, claims (the burst's hot path), cancellations, and the reply every
//! other command gets. Pure: state and command in, events and reply out.

use super::{
    Claim, ClaimStatus, NewClaim, Pool, QueueConfig, QueueEntity, QueueEvent, QueueReply,
    QueueState, MAX_CLAIM_HISTORY,
};
use crate::actors::{Ctx, Entity};
use crate::domain::DomainError;
use chrono::{DateTime, Utc};

type Decided = Result<(Vec<QueueEvent>, QueueReply), DomainError>;

/// The queue's configuration, once it is open.
pub(super) fn open(state: &QueueState) -> Result<&QueueConfig, DomainError> {
    state.config.as_ref().ok_or(DomainError::NotFound("queue"))
}

/// `events`, answered with the claim they decided (if any) and the
/// counters after them.
pub(super) fn answered(state: &QueueState, events: Vec<QueueEvent>) -> Decided {
    // Bookkeeping events (the worker's, one per page of claims) change no
    // counter and answer no claim: the answer needs no copy of the state.
    if events.iter().all(|e| {
        matches!(
            e,
            QueueEvent::Notified { .. }
                | QueueEvent::OrderPlaced { .. }
                | QueueEvent::ClaimantErased { .. }
                | QueueEvent::Started { .. }
        )
    }) {
        let status = state.status().ok_or(DomainError::NotFound("queue"))?;
        return Ok((events, QueueReply::Status(status)));
    }
    let next = QueueEntity::evolve(state, &events);
    let decided = events.iter().find_map(|e| match e {
        QueueEvent::Claimed { claim } => Some(claim.id.clone()),
        QueueEvent::Cancelled { claim_id, .. } | QueueEvent::Expired { claim_id, .. } => {
            Some(claim_id.clone())
        }
        _ => None,
    });
    let status = next.status().ok_or(DomainError::NotFound("queue"))?;
    let reply = match decided {
        Some(id) => QueueReply::Claim {
            claim: next.with_position(&next.claims[&id]),
            replayed: false,
            status: Box::new(status),
        },
        None => QueueReply::Status(status),
    };
    Ok((events, reply))
}

pub(super) fn get_claim(state: &QueueState, claim_id: &str) -> Decided {
    let claim = state
        .claims
        .get(claim_id)
        .ok_or(DomainError::NotFound("claim"))?;
    let status = state.status().ok_or(DomainError::NotFound("queue"))?;
    let reply = QueueReply::Claim {
        claim: state.with_position(claim),
        replayed: true,
        status: Box::new(status),
    };
    Ok((vec![], reply))
}

/// Up to `limit` claims owing an order and up to `limit` owing a message.
pub(super) fn pending(state: &QueueState, limit: usize) -> Decided {
    let config = Box::new(open(state)?.clone());
    let reply = QueueReply::Pending {
        config,
        orders: state.orders_due().take(limit).cloned().collect(),
        notify: state
            .notifications_due()
            .take(limit)
            .map(|c| state.with_position(c))
            .collect(),
    };
    Ok((vec![], reply))
}

/// The holders of `claims` were told these statuses (those not yet
/// recorded are).
pub(super) fn notified(state: &QueueState, claims: Vec<(String, ClaimStatus)>) -> Vec<QueueEvent> {
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

/// A claim: a retry answers its first decision; otherwise it is confirmed
/// while capacity remains, then waitlisted, then refused `sold_out`. With
/// `grant`, a part first takes the units granted to it (its waitlist
/// first), then decides.
pub(super) fn claim(state: &QueueState, mut new: NewClaim, ctx: &Ctx<'_>) -> Decided {
    let Some(total) = new.grant.take() else {
        return decide_claim(state, new, ctx);
    };
    let (mut events, _) = grant(state, total, ctx.now)?;
    // Decided on the state after the grant: its counters and positions
    // are the ones after every event.
    let granted = QueueEntity::evolve(state, &events);
    let (more, reply) = decide_claim(&granted, new, ctx)?;
    events.extend(more);
    Ok((events, reply))
}

fn decide_claim(state: &QueueState, new: NewClaim, ctx: &Ctx<'_>) -> Decided {
    let cfg = open(state)?;
    if let Some(key) = &new.idempotency_key {
        if let Some(id) = state
            .idempotency
            .get(&format!("{}|{}", new.user_id, key.key))
        {
            key.check(state.claims[id].idempotency_request.as_deref())?;
            let reply = QueueReply::Claim {
                claim: state.with_position(&state.claims[id]),
                replayed: true,
                status: Box::new(state.status().expect("open")),
            };
            return Ok((vec![], reply));
        }
    }
    let Some(status) = admit(state, cfg, &new, ctx)? else {
        return Ok((vec![], QueueReply::Dry));
    };
    let now = ctx.now;
    let claim = Claim {
        id: new.claim_id,
        // A part's claims are its queue's.
        queue_id: cfg.part_of.clone().unwrap_or_else(|| ctx.id.into()),
        user_id: new.user_id,
        quantity: new.quantity,
        status,
        position: None,
        idempotency_request: new.idempotency_key.as_ref().map(|k| k.request.clone()),
        idempotency_key: new.idempotency_key.map(|k| k.key),
        order: new.order,
        order_placed: false,
        notified: None,
        created_at: now,
        confirmed_at: (status == ClaimStatus::Confirmed).then_some(now),
    };
    claimed(state, claim)
}

/// A new claim, answered as `answered` would but without applying its
/// event to a copy of the state first (the entity applies it once, after):
/// the burst's hot path. `answers_a_new_claim_as_applying_it_would`
/// checks it against `answered`.
pub(super) fn claimed(state: &QueueState, claim: Claim) -> Decided {
    let mut status = state.status().ok_or(DomainError::NotFound("queue"))?;
    let mut answer = claim.clone();
    match claim.status {
        ClaimStatus::Confirmed => {
            status.confirmed = state.confirmed + claim.quantity;
            status.remaining = state.capacity().saturating_sub(status.confirmed);
        }
        ClaimStatus::Waitlisted => {
            status.waitlisted = state.waitlisted_units + claim.quantity;
            answer.position = Some(state.waitlist.len() as u32 + 1);
        }
        _ => {}
    }
    let reply = QueueReply::Claim {
        claim: answer,
        replayed: false,
        status: Box::new(status),
    };
    Ok((vec![QueueEvent::Claimed { claim }], reply))
}

/// Whether a new claim gets a place (and which), or why not; `None`: a
/// part asked `dry_first` has no units for it.
fn admit(
    state: &QueueState,
    cfg: &QueueConfig,
    new: &NewClaim,
    ctx: &Ctx<'_>,
) -> Result<Option<ClaimStatus>, DomainError> {
    let (now, quantity) = (ctx.now, new.quantity);
    if cfg.is_split() {
        // Its parts decide claims; this one only allots their units.
        return Err(DomainError::conflict(
            "queue_split",
            "this queue's claims are decided by its parts",
        ));
    }
    if cfg.needs_order() && new.order.is_none() {
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
    crate::domain::window::admits(cfg.opens_at, cfg.closes_at, now)?;
    if state.held_by(&new.user_id) + quantity > cfg.per_user_limit {
        return Err(DomainError::conflict(
            "limit_reached",
            format!("at most {} per person", cfg.per_user_limit),
        ));
    }
    // Cancelled and expired claims stay (their retries must answer), so a
    // cancel-and-claim loop is bounded too.
    let room = cfg.capacity as usize + cfg.max_waitlist as usize + MAX_CLAIM_HISTORY;
    if state.claims.len() >= room {
        return Err(DomainError::conflict(
            "queue_full",
            "this queue has taken all the claims it can",
        ));
    }
    if state.claims.contains_key(&new.claim_id) {
        return Err(DomainError::conflict(
            "duplicate_claim",
            "this claim id is taken",
        ));
    }
    if quantity <= state.remaining() {
        Ok(Some(ClaimStatus::Confirmed))
    } else if new.dry_first && cfg.part_of.is_some() {
        Ok(None)
    } else if (state.waitlist.len() as u32) < cfg.max_waitlist {
        Ok(Some(ClaimStatus::Waitlisted))
    } else {
        Err(DomainError::conflict(
            "sold_out",
            "sold out, and the waitlist is full",
        ))
    }
}

/// The holder gives an active claim up; the waitlist moves up.
pub(super) fn cancel(
    state: &QueueState,
    user_id: &str,
    claim_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<QueueEvent>, DomainError> {
    open(state)?;
    let claim = state
        .claims
        .get(claim_id)
        .filter(|c| c.user_id == user_id)
        .ok_or(DomainError::NotFound("claim"))?;
    if matches!(claim.status, ClaimStatus::Cancelled | ClaimStatus::Expired) {
        let was = if claim.status == ClaimStatus::Cancelled {
            "cancelled"
        } else {
            "expired"
        };
        return Err(DomainError::conflict(
            "claim_not_active",
            format!("the claim is already {was}"),
        ));
    }
    Ok(QueueEntity::free(state, claim, false, now))
}

/// A part's units, after `events`.
pub(super) fn part_answer(state: &QueueState, events: Vec<QueueEvent>) -> Decided {
    let cfg = open(state)?;
    if cfg.part_of.is_none() {
        return Err(DomainError::conflict(
            "not_a_part",
            "this queue is not a part",
        ));
    }
    let next = QueueEntity::evolve(state, &events);
    Ok((events, QueueReply::Part(next.part_units())))
}

/// A part's grant rises to `total`: the head of its waitlist moves up into
/// the new units while they fit.
pub(super) fn grant(state: &QueueState, total: u32, now: DateTime<Utc>) -> Decided {
    open(state)?;
    if total <= state.received {
        return part_answer(state, vec![]);
    }
    let mut events = vec![QueueEvent::Granted { total }];
    let after = QueueEntity::evolve(state, &events);
    events.extend(super::promotions(&after, after.remaining(), now));
    part_answer(state, events)
}

/// A part gives back the units it holds and has not confirmed (all, or
/// half rounded up).
pub(super) fn give_back(state: &QueueState, half: bool) -> Decided {
    open(state)?;
    let unused = if half {
        state.remaining().div_ceil(2)
    } else {
        state.remaining()
    };
    if unused == 0 {
        return part_answer(state, vec![]);
    }
    let total = state.returned + unused;
    part_answer(state, vec![QueueEvent::GaveBack { total }])
}

/// The split queue's allotment, after `events` (which allot `now`).
fn pool_answer(state: &QueueState, events: Vec<QueueEvent>, now: u32) -> Decided {
    let next = QueueEntity::evolve(state, &events);
    let pool = Pool {
        allotted_now: now,
        ..next.pool()
    };
    Ok((events, QueueReply::Pool(pool)))
}

/// The split queue whose part `part` is asked about.
fn split(state: &QueueState, part: u32) -> Result<&QueueConfig, DomainError> {
    let cfg = open(state)?;
    if !cfg.is_split() || part >= cfg.parts {
        return Err(DomainError::invalid("part", "no such part of this queue"));
    }
    Ok(cfg)
}

/// Up to `want` units no part holds go to `part`.
pub(super) fn allot(state: &QueueState, part: u32, want: u32) -> Decided {
    split(state, part)?;
    let n = want.min(state.pool_free());
    if n == 0 {
        return pool_answer(state, vec![], 0);
    }
    let before = state.allotted.get(part as usize).copied().unwrap_or(0);
    pool_answer(
        state,
        vec![QueueEvent::Allotted {
            part,
            total: before + n,
        }],
        n,
    )
}

/// `part` has given back `total` units so far: those not yet counted are
/// free again. Never more than it was allotted.
pub(super) fn recover(state: &QueueState, part: u32, total: u32) -> Decided {
    split(state, part)?;
    let allotted = state.allotted.get(part as usize).copied().unwrap_or(0);
    let known = state.recovered.get(part as usize).copied().unwrap_or(0);
    if total > allotted {
        return Err(DomainError::invalid(
            "total",
            "a part cannot give back more than it was allotted",
        ));
    }
    if total <= known {
        return pool_answer(state, vec![], 0);
    }
    pool_answer(state, vec![QueueEvent::Recovered { part, total }], 0)
}
