//! The coupon entity: one actor per coupon code (codes are unique across
//! the platform). Every redemption goes through it, so a global usage limit
//! holds under any concurrency. Redemptions are keyed by order id: redeeming
//! twice for one order counts once; a cancelled order gives its use back.
//!
//! Its shop's merchant (or an admin) lists, edits, pauses, resumes and
//! deletes it and reads its usage: an edit never takes a limit below the
//! uses already made; a paused coupon is refused (409 `coupon_paused`)
//! and a deleted one is gone (404), while uses already made stay made and
//! a cancelled order still gives its use back.

mod model;
#[cfg(test)]
mod tests;

pub use model::*;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Entity};
use crate::domain::catalog::Shop;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::pricing::{check_coupon_rule, discount, CouponRule};
use crate::domain::{Caller, DomainError};
use crate::store::tables::COUPONS_BY_SHOP;
use crate::store::IndexOp;

pub struct CouponEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CouponEvent {
    Created {
        coupon: Coupon,
    },
    Redeemed {
        order_id: OrderId,
        user_id: UserId,
        /// The discount it gave (0 in events written before it was kept).
        #[serde(default)]
        discount: u64,
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    Released {
        order_id: OrderId,
    },
    Edited {
        patch: CouponPatch,
        at: DateTime<Utc>,
    },
    Paused {
        at: DateTime<Utc>,
    },
    Resumed {
        at: DateTime<Utc>,
    },
    Deleted {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CouponCommand {
    Create {
        caller: Caller,
        shop: Box<Shop>,
        input: CouponInput,
    },
    Get,
    /// The discount it would give `user_id` on `eligible`, without using it.
    Quote {
        user_id: UserId,
        eligible: u64,
    },
    /// Use it for `order_id`; answers the discount.
    Redeem {
        user_id: UserId,
        order_id: OrderId,
        eligible: u64,
    },
    Release {
        order_id: OrderId,
    },
    Edit {
        caller: Caller,
        patch: CouponPatch,
    },
    Pause {
        caller: Caller,
    },
    Resume {
        caller: Caller,
    },
    Delete {
        caller: Caller,
    },
    Usage {
        caller: Caller,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponReply {
    pub coupon: Coupon,
    pub discount: u64,
    /// Deleted (the coupon is what it was).
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub usage: Option<CouponUsage>,
}

fn coupon(state: &CouponState) -> Result<&Coupon, DomainError> {
    state.coupon.as_ref().ok_or(DomainError::NotFound("coupon"))
}

fn usable(
    state: &CouponState,
    user_id: &str,
    eligible: u64,
    now: DateTime<Utc>,
) -> Result<u64, DomainError> {
    let c = state.live()?;
    if c.paused {
        return Err(DomainError::conflict(
            "coupon_paused",
            "this coupon is paused by its shop",
        ));
    }
    if c.global_limit.is_some_and(|g| c.used >= g) {
        return Err(DomainError::conflict(
            "coupon_exhausted",
            "this coupon has been used up",
        ));
    }
    if state.per_user.get(user_id).copied().unwrap_or(0) >= c.per_user_limit {
        return Err(DomainError::conflict(
            "coupon_limit_reached",
            "you have already used this coupon as often as allowed",
        ));
    }
    discount(&c.rule(), eligible, now)
}

/// A merchant creates a coupon for their shop under the actor's id (its code).
fn create(
    state: &CouponState,
    caller: &Caller,
    shop: Shop,
    input: CouponInput,
    ctx: &Ctx<'_>,
) -> Result<Vec<CouponEvent>, DomainError> {
    if state.coupon.is_some() && !state.deleted {
        return Err(DomainError::conflict(
            "coupon_code_taken",
            "this coupon code is taken",
        ));
    }
    caller.ensure_owner(&shop.owner_id, "shop")?;
    let rule = CouponRule {
        kind: input.kind,
        value: input.value,
        min_spend: input.min_spend,
        expires_at: input.expires_at,
    };
    check_coupon_rule(&rule, ctx.now)?;
    let per_user_limit = input.per_user_limit.unwrap_or(1);
    check_limits(per_user_limit, input.global_limit)?;
    let coupon = Coupon {
        code: ctx.id.to_owned(),
        shop_id: shop.id,
        owner_id: shop.owner_id,
        kind: rule.kind,
        value: rule.value,
        min_spend: rule.min_spend,
        expires_at: rule.expires_at,
        per_user_limit,
        global_limit: input.global_limit,
        used: 0,
        paused: false,
        created_at: ctx.now,
        updated_at: None,
    };
    Ok(vec![CouponEvent::Created { coupon }])
}

fn check_limits(per_user: u32, global: Option<u32>) -> Result<(), DomainError> {
    if per_user == 0 || per_user > MAX_GLOBAL_LIMIT {
        return Err(DomainError::invalid(
            "per_user_limit",
            format!("per_user_limit must be between 1 and {MAX_GLOBAL_LIMIT}"),
        ));
    }
    if global.is_some_and(|g| g == 0 || g > MAX_GLOBAL_LIMIT) {
        return Err(DomainError::invalid(
            "global_limit",
            format!("global_limit must be between 1 and {MAX_GLOBAL_LIMIT}"),
        ));
    }
    Ok(())
}

/// The owner's edit, within the rules of a new coupon, and never below
/// the uses already made (409 `coupon_below_uses`). Nothing changed: no
/// event.
fn edit(
    state: &CouponState,
    caller: &Caller,
    patch: CouponPatch,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    let c = state.live()?;
    caller.ensure_owner(&c.owner_id, "coupon")?;
    let next = patched(c, &patch);
    if next == *c {
        return Ok(vec![]);
    }
    check_coupon_rule(&next.rule(), now)?;
    check_limits(next.per_user_limit, next.global_limit)?;
    if next.global_limit.is_some_and(|g| g < c.used) {
        return Err(DomainError::conflict(
            "coupon_below_uses",
            format!(
                "global_limit cannot go below the {} uses already made",
                c.used
            ),
        ));
    }
    let most = state.per_user.values().copied().max().unwrap_or(0);
    if next.per_user_limit < most {
        return Err(DomainError::conflict(
            "coupon_below_uses",
            format!("per_user_limit cannot go below the {most} uses one customer has made"),
        ));
    }
    Ok(vec![CouponEvent::Edited { patch, at: now }])
}

/// Pause, resume or delete, by the owner; a no-op when already so.
fn switch(
    state: &CouponState,
    caller: &Caller,
    event: CouponEvent,
) -> Result<Vec<CouponEvent>, DomainError> {
    let c = state.live()?;
    caller.ensure_owner(&c.owner_id, "coupon")?;
    let already = match event {
        CouponEvent::Paused { .. } => c.paused,
        CouponEvent::Resumed { .. } => !c.paused,
        _ => false,
    };
    Ok(if already { vec![] } else { vec![event] })
}

impl Entity for CouponEntity {
    const KIND: &'static str = "coupon";
    /// 2: edits, pauses, deletion and the discount of each use.
    const VERSION: u16 = 2;
    type State = CouponState;
    type Command = CouponCommand;
    type Event = CouponEvent;
    type Reply = CouponReply;
    type Rejection = DomainError;

    fn decide(
        state: &CouponState,
        cmd: CouponCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<CouponEvent>, CouponReply), DomainError> {
        let (events, discount) = match cmd {
            CouponCommand::Create {
                caller,
                shop,
                input,
            } => (create(state, &caller, *shop, input, ctx)?, 0),
            CouponCommand::Get => (vec![], 0),
            CouponCommand::Edit { caller, patch } => (edit(state, &caller, patch, ctx.now)?, 0),
            CouponCommand::Pause { caller } => (
                switch(state, &caller, CouponEvent::Paused { at: ctx.now })?,
                0,
            ),
            CouponCommand::Resume { caller } => (
                switch(state, &caller, CouponEvent::Resumed { at: ctx.now })?,
                0,
            ),
            CouponCommand::Delete { caller } => (
                switch(state, &caller, CouponEvent::Deleted { at: ctx.now })?,
                0,
            ),
            CouponCommand::Usage { caller } => {
                let c = state.live()?;
                caller.ensure_owner(&c.owner_id, "coupon")?;
                let usage = state.usage(ctx.now)?;
                let reply = CouponReply {
                    coupon: c.clone(),
                    discount: 0,
                    deleted: false,
                    usage: Some(usage),
                };
                return Ok((vec![], reply));
            }
            CouponCommand::Quote { user_id, eligible } => {
                (vec![], usable(state, &user_id, eligible, ctx.now)?)
            }
            CouponCommand::Redeem {
                user_id,
                order_id,
                eligible,
            } => {
                if state.redemptions.contains_key(&order_id) {
                    (
                        vec![],
                        discount(&coupon(state)?.rule(), eligible, ctx.now).unwrap_or(0),
                    )
                } else {
                    let off = usable(state, &user_id, eligible, ctx.now)?;
                    let redeemed = CouponEvent::Redeemed {
                        order_id,
                        user_id,
                        discount: off,
                        at: Some(ctx.now),
                    };
                    (vec![redeemed], off)
                }
            }
            CouponCommand::Release { order_id } => {
                coupon(state)?;
                if state.redemptions.contains_key(&order_id) {
                    (vec![CouponEvent::Released { order_id }], 0)
                } else {
                    (vec![], 0)
                }
            }
        };
        let next = Self::evolve(state, &events);
        let coupon = next.coupon.clone().ok_or(DomainError::NotFound("coupon"))?;
        let reply = CouponReply {
            coupon,
            discount,
            deleted: next.deleted,
            usage: None,
        };
        Ok((events, reply))
    }

    /// `coupons_by_shop` (`{shop_id}|{code}` → the coupon): its shop's
    /// list, kept with every change; a deleted coupon leaves it.
    fn index(
        id: &str,
        _before: &CouponState,
        after: &CouponState,
        events: &[CouponEvent],
    ) -> Vec<IndexOp> {
        let Some(c) = &after.coupon else {
            return Vec::new();
        };
        if events.is_empty() {
            return Vec::new();
        }
        let key = format!("{}|{id}", c.shop_id);
        if after.deleted {
            return vec![IndexOp::Delete {
                table: COUPONS_BY_SHOP,
                key,
            }];
        }
        let value = crate::store::codec::encode(Self::VERSION, c).expect("coupons encode");
        vec![IndexOp::Put {
            table: COUPONS_BY_SHOP,
            key,
            value,
        }]
    }

    fn apply(state: &mut CouponState, event: &CouponEvent) {
        match event {
            // A code deleted and created again starts afresh: the uses of
            // the coupon before are not this one's.
            CouponEvent::Created { coupon } => {
                *state = CouponState {
                    coupon: Some(coupon.clone()),
                    ..CouponState::default()
                }
            }
            CouponEvent::Redeemed {
                order_id,
                user_id,
                discount,
                at,
            } => {
                if let Some(at) = at {
                    let u = Use {
                        discount: *discount,
                        at: *at,
                    };
                    state.uses.insert(order_id.clone(), u);
                }
                state.redemptions.insert(order_id.clone(), user_id.clone());
                *state.per_user.entry(user_id.clone()).or_default() += 1;
                if let Some(c) = state.coupon.as_mut() {
                    c.used += 1;
                }
            }
            CouponEvent::Released { order_id } => {
                state.uses.remove(order_id);
                if let Some(user) = state.redemptions.remove(order_id) {
                    if let Some(n) = state.per_user.get_mut(&user) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            state.per_user.remove(&user);
                        }
                    }
                    if let Some(c) = state.coupon.as_mut() {
                        c.used = c.used.saturating_sub(1);
                    }
                }
            }
            CouponEvent::Edited { patch, at } => {
                if let Some(c) = state.coupon.as_mut() {
                    *c = patched(c, patch);
                    c.updated_at = Some(*at);
                }
            }
            CouponEvent::Paused { at } | CouponEvent::Resumed { at } => {
                let paused = matches!(event, CouponEvent::Paused { .. });
                if let Some(c) = state.coupon.as_mut() {
                    c.paused = paused;
                    c.updated_at = Some(*at);
                }
            }
            CouponEvent::Deleted { .. } => state.deleted = true,
        }
    }
}
