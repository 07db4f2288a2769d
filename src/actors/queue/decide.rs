//! The queue's decisions that take more than a line: reads that answer at
//! once, claims (the burst's hot path), cancellations, and the reply every
//! other command gets. Pure: state and command in, events and reply out.

use super::{
    Claim, ClaimStatus, NewClaim, QueueConfig, QueueEntity, QueueEvent, QueueReply, QueueState,
    MAX_CLAIM_HISTORY,
};
use crate::actors::{Ctx, Entity};
use crate::domain::DomainError;

type Decided = Result<(Vec<QueueEvent>, QueueReply), DomainError>;

/// The queue's configuration, once it is open.
pub(super) fn open(state: &QueueState) -> Result<&QueueConfig, DomainError> {
    state.config.as_ref().ok_or(DomainError::NotFound("queue"))
}

/// `events`, answered with the claim they decided (if any) and the
/// counters after them.
pub(super) fn answered(state: &QueueState, events: Vec<QueueEvent>) -> Decided {
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
/// while capacity remains, then waitlisted, then refused `sold_out`.
pub(super) fn claim(state: &QueueState, new: NewClaim, ctx: &Ctx<'_>) -> Decided {
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
    let status = admit(state, cfg, &new, ctx)?;
    let now = ctx.now;
    let claim = Claim {
        id: new.claim_id,
        queue_id: ctx.id.into(),
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
    answered(state, vec![QueueEvent::Claimed { claim }])
}

/// Whether a new claim gets a place (and which), or why not.
fn admit(
    state: &QueueState,
    cfg: &QueueConfig,
    new: &NewClaim,
    ctx: &Ctx<'_>,
) -> Result<ClaimStatus, DomainError> {
    let (now, quantity) = (ctx.now, new.quantity);
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
    if cfg.opens_at.is_some_and(|t| now < t) {
        return Err(DomainError::conflict(
            "not_open",
            "this queue is not open yet",
        ));
    }
    if cfg.closes_at.is_some_and(|t| now >= t) {
        return Err(DomainError::conflict("closed", "this queue is closed"));
    }
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
        Ok(ClaimStatus::Confirmed)
    } else if (state.waitlist.len() as u32) < cfg.max_waitlist {
        Ok(ClaimStatus::Waitlisted)
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
