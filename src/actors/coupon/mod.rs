//! The coupon entity: one actor per coupon code (codes are unique across
//! the platform). Every redemption goes through it, so a global usage limit
//! holds under any concurrency. Redemptions are keyed by order id: redeeming
//! twice for one order counts once; a cancelled order gives its use back.
//!
//! A voucher is a coupon customers collect into their wallet before they
//! use it (`Collect`; the wallet is the `voucher_wallet` read table); a
//! platform voucher is an admin's, on a whole checkout. The stacking rules
//! (one shop discount per shop, one platform voucher per checkout) are the
//! cart's and checkout's; this entity answers one code's discount and
//! counts its uses.
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
use crate::domain::pricing::{check_coupon_rule, discount, Base, CouponRule, DiscountKind};
use crate::domain::{Caller, DomainError, Role};
use crate::store::tables::{COUPONS_BY_SHOP, VOUCHER_WALLET};
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
    /// A customer put the voucher in their wallet.
    Collected {
        user_id: UserId,
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
    /// An admin issues a platform voucher.
    CreatePlatform {
        caller: Caller,
        input: CouponInput,
    },
    Get,
    /// The discount it would give `user_id` on `base`, without using it.
    Quote {
        user_id: UserId,
        base: Base,
    },
    /// Use it for `order_id` (a platform voucher: for the checkout, under
    /// its first order's id); answers the discount.
    Redeem {
        user_id: UserId,
        order_id: OrderId,
        base: Base,
    },
    /// Put the voucher in `user_id`'s wallet (again: nothing changes).
    Collect {
        user_id: UserId,
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
        /// The zone its days are counted in.
        #[serde(default)]
        zone: crate::domain::zone::ReportZone,
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

/// Whether the coupon can be used or collected now: not paused, not used
/// up, not expired.
fn open(c: &Coupon, now: DateTime<Utc>) -> Result<(), DomainError> {
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
    if c.expires_at.is_some_and(|e| e <= now) {
        return Err(DomainError::conflict(
            "coupon_expired",
            "this coupon has expired",
        ));
    }
    Ok(())
}

fn usable(
    state: &CouponState,
    user_id: &str,
    base: Base,
    now: DateTime<Utc>,
) -> Result<u64, DomainError> {
    let c = state.live()?;
    open(c, now)?;
    if c.voucher && !state.collected.contains(user_id) {
        return Err(DomainError::conflict(
            "voucher_not_collected",
            "collect this voucher into your wallet before using it",
        ));
    }
    if state.per_user.get(user_id).copied().unwrap_or(0) >= c.per_user_limit {
        return Err(DomainError::conflict(
            "coupon_limit_reached",
            "you have already used this coupon as often as allowed",
        ));
    }
    discount(&c.rule(), base, now)
}

/// A customer collects a voucher that can be used now; a plain coupon is
/// not collected (409 `not_a_voucher`).
fn collect(
    state: &CouponState,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    let c = state.live()?;
    if !c.voucher {
        return Err(DomainError::conflict(
            "not_a_voucher",
            "this is a coupon code to enter at checkout, not a voucher to collect",
        ));
    }
    if state.collected.contains(&user_id) {
        return Ok(vec![]);
    }
    open(c, now)?;
    Ok(vec![CouponEvent::Collected { user_id, at: now }])
}

/// A merchant creates a coupon or voucher for their shop, or an admin a
/// platform voucher (`shop` none), under the actor's id (its code).
fn create(
    state: &CouponState,
    caller: &Caller,
    shop: Option<Shop>,
    input: CouponInput,
    ctx: &Ctx<'_>,
) -> Result<Vec<CouponEvent>, DomainError> {
    if state.coupon.is_some() && !state.deleted {
        return Err(DomainError::conflict(
            "coupon_code_taken",
            "this coupon code is taken",
        ));
    }
    let (shop_id, owner_id, scope) = match shop {
        Some(shop) => {
            caller.ensure_owner(&shop.owner_id, "shop")?;
            if input.kind == DiscountKind::FreeShipping {
                return Err(DomainError::invalid(
                    "kind",
                    "free shipping is a platform voucher; a shop gives percentage or fixed",
                ));
            }
            (shop.id, shop.owner_id, CouponScope::Shop)
        }
        None if caller.role == Role::Admin => (
            String::new().into(),
            caller.user_id.clone(),
            CouponScope::Platform,
        ),
        None => {
            return Err(DomainError::Forbidden(
                "only an admin issues platform vouchers".into(),
            ))
        }
    };
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
        shop_id,
        scope,
        voucher: input.voucher || scope == CouponScope::Platform,
        owner_id,
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
    /// 2: edits, pauses, deletion and the discount of each use; 3:
    /// vouchers (scope, collection).
    const VERSION: u16 = 3;
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
            } => (create(state, &caller, Some(*shop), input, ctx)?, 0),
            CouponCommand::CreatePlatform { caller, input } => {
                (create(state, &caller, None, input, ctx)?, 0)
            }
            CouponCommand::Collect { user_id } => (collect(state, user_id, ctx.now)?, 0),
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
            CouponCommand::Usage { caller, zone } => {
                let c = state.live()?;
                caller.ensure_owner(&c.owner_id, "coupon")?;
                let usage = state.usage(ctx.now, zone)?;
                let reply = CouponReply {
                    coupon: c.clone(),
                    discount: 0,
                    deleted: false,
                    usage: Some(usage),
                };
                return Ok((vec![], reply));
            }
            CouponCommand::Quote { user_id, base } => {
                (vec![], usable(state, &user_id, base, ctx.now)?)
            }
            CouponCommand::Redeem {
                user_id,
                order_id,
                base,
            } => {
                if let Some(u) = state.uses.get(&order_id) {
                    (vec![], u.discount)
                } else if state.redemptions.contains_key(&order_id) {
                    (
                        vec![],
                        discount(&coupon(state)?.rule(), base, ctx.now).unwrap_or(0),
                    )
                } else {
                    let off = usable(state, &user_id, base, ctx.now)?;
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

    /// `coupons_by_shop` (`{shop_id}|{code}` → the coupon; the platform's
    /// under `~platform`): its shop's list, kept with every change; a
    /// deleted coupon leaves it. `voucher_wallet` (`{user}|{code}`): a
    /// row per collection.
    fn index(
        _id: &str,
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
        let key = c.list_key();
        let mut ops: Vec<IndexOp> = events
            .iter()
            .filter_map(|e| match e {
                CouponEvent::Collected { user_id, .. } => Some(IndexOp::Put {
                    table: VOUCHER_WALLET,
                    key: format!("{user_id}|{}", c.code),
                    value: Vec::new(),
                }),
                _ => None,
            })
            .collect();
        if after.deleted {
            ops.push(IndexOp::Delete {
                table: COUPONS_BY_SHOP,
                key,
            });
            return ops;
        }
        let value = crate::store::codec::encode(Self::VERSION, c).expect("coupons encode");
        ops.push(IndexOp::Put {
            table: COUPONS_BY_SHOP,
            key,
            value,
        });
        ops
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
            CouponEvent::Collected { user_id, .. } => {
                state.collected.insert(user_id.clone());
            }
        }
    }
}
