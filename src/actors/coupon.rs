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

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Entity};
use crate::domain::catalog::{present, Shop};
use crate::domain::ids::{OrderId, UserId};
use crate::domain::pricing::{check_coupon_rule, discount, CouponRule, DiscountKind};
use crate::domain::{Caller, DomainError};
use crate::store::tables::COUPONS_BY_SHOP;
use crate::store::IndexOp;

pub const MAX_GLOBAL_LIMIT: u32 = 1_000_000;

pub struct CouponEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Coupon {
    pub code: String,
    pub shop_id: crate::domain::ids::ShopId,
    pub owner_id: UserId,
    pub kind: DiscountKind,
    /// Percent (1–100) or minor units, by `kind`.
    pub value: u64,
    pub min_spend: u64,
    pub expires_at: Option<DateTime<Utc>>,
    pub per_user_limit: u32,
    pub global_limit: Option<u32>,
    /// Redemptions so far (by orders that were not cancelled).
    pub used: u32,
    /// Paused by its merchant: refused until resumed.
    #[serde(default)]
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    /// The last edit, pause or resume.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Where a coupon stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    Active,
    Paused,
    Expired,
    /// Every use of its `global_limit` is made.
    Exhausted,
}

impl Coupon {
    /// Paused first, then expired, then used up.
    pub fn status(&self, now: DateTime<Utc>) -> CouponStatus {
        if self.paused {
            CouponStatus::Paused
        } else if self.expires_at.is_some_and(|e| e <= now) {
            CouponStatus::Expired
        } else if self.global_limit.is_some_and(|g| self.used >= g) {
            CouponStatus::Exhausted
        } else {
            CouponStatus::Active
        }
    }

    pub fn rule(&self) -> CouponRule {
        CouponRule {
            kind: self.kind,
            value: self.value,
            min_spend: self.min_spend,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponInput {
    pub code: String,
    pub kind: DiscountKind,
    pub value: u64,
    #[serde(default)]
    pub min_spend: u64,
    pub expires_at: Option<DateTime<Utc>>,
    /// Uses per customer (default 1).
    pub per_user_limit: Option<u32>,
    /// Uses in total (default: unlimited).
    pub global_limit: Option<u32>,
}

/// A merchant's change to a coupon: absent fields stay. Its code and kind
/// are fixed (a different kind is a new coupon).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponPatch {
    pub value: Option<u64>,
    pub min_spend: Option<u64>,
    /// A time sets the expiry (in the future); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Never below what one customer has used already.
    pub per_user_limit: Option<u32>,
    /// Never below the uses made; `null`: unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub global_limit: Option<Option<u32>>,
}

/// One use, for the usage report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Use {
    pub discount: u64,
    pub at: DateTime<Utc>,
}

/// A day of a coupon's uses (UTC), net of cancelled orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayUse {
    pub day: NaiveDate,
    pub uses: u32,
    /// Minor units.
    pub discount: u64,
}

/// `GET /coupons/{code}/usage`: what the coupon has given, by orders that
/// were not cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CouponUsage {
    pub code: String,
    pub status: CouponStatus,
    pub used: u32,
    pub global_limit: Option<u32>,
    /// Uses left (`null`: unlimited).
    pub remaining: Option<u32>,
    /// Distinct customers who used it.
    pub customers: u32,
    /// Discount given, minor units.
    pub discount_total: u64,
    /// The most recent days with uses, newest first (at most 366).
    pub days: Vec<DayUse>,
}

/// Days a usage report lists.
pub const USAGE_DAYS: usize = 366;

/// Upper-cases a code and checks its shape: 3–32 of A–Z, 0–9, `-`, `_`.
pub fn normalize_code(raw: &str) -> Result<String, DomainError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (3..=32).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(DomainError::invalid(
            "code",
            "a coupon code is 3 to 32 letters, digits, '-' or '_'",
        ))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CouponState {
    pub coupon: Option<Coupon>,
    /// order id → user id of live redemptions.
    pub redemptions: BTreeMap<OrderId, UserId>,
    pub per_user: BTreeMap<UserId, u32>,
    /// order id → the discount and time of its use (uses made before this
    /// was kept have none).
    #[serde(default)]
    pub uses: BTreeMap<OrderId, Use>,
    /// Deleted by its merchant: not found until a coupon is created again
    /// under its code.
    #[serde(default)]
    pub deleted: bool,
}

impl CouponState {
    /// The coupon unless it was deleted.
    fn live(&self) -> Result<&Coupon, DomainError> {
        match &self.coupon {
            Some(c) if !self.deleted => Ok(c),
            _ => Err(DomainError::NotFound("coupon")),
        }
    }

    pub fn usage(&self, now: DateTime<Utc>) -> Result<CouponUsage, DomainError> {
        let c = self.live()?;
        let mut days: BTreeMap<NaiveDate, DayUse> = BTreeMap::new();
        for u in self.uses.values() {
            let day = u.at.date_naive();
            let d = days.entry(day).or_insert(DayUse {
                day,
                uses: 0,
                discount: 0,
            });
            d.uses += 1;
            d.discount = d.discount.saturating_add(u.discount);
        }
        Ok(CouponUsage {
            code: c.code.clone(),
            status: c.status(now),
            used: c.used,
            global_limit: c.global_limit,
            remaining: c.global_limit.map(|g| g.saturating_sub(c.used)),
            customers: self.per_user.len() as u32,
            discount_total: self.uses.values().map(|u| u.discount).sum(),
            days: days.into_values().rev().take(USAGE_DAYS).collect(),
        })
    }
}

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

/// The coupon with `patch` applied.
fn patched(c: &Coupon, patch: &CouponPatch) -> Coupon {
    let mut c = c.clone();
    if let Some(v) = patch.value {
        c.value = v;
    }
    if let Some(m) = patch.min_spend {
        c.min_spend = m;
    }
    if let Some(e) = patch.expires_at {
        c.expires_at = e;
    }
    if let Some(p) = patch.per_user_limit {
        c.per_user_limit = p;
    }
    if let Some(g) = patch.global_limit {
        c.global_limit = g;
    }
    c
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn run(state: &CouponState, cmd: CouponCommand) -> Result<(CouponState, u64), DomainError> {
        let (events, reply) = CouponEntity::decide(
            state,
            cmd,
            &Ctx {
                id: "SAVE10",
                now: Utc::now(),
            },
        )?;
        Ok((CouponEntity::evolve(state, &events), reply.discount))
    }

    fn shop() -> Shop {
        let now = Utc::now();
        Shop {
            id: "s".into(),
            owner_id: "m".into(),
            name: "S".into(),
            location: crate::domain::GeoPoint { lat: 0.0, lng: 0.0 },
            address: "a".into(),
            hidden: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn input() -> CouponInput {
        CouponInput {
            code: "save10".into(),
            kind: DiscountKind::Percentage,
            value: 10,
            min_spend: 0,
            expires_at: None,
            per_user_limit: None,
            global_limit: None,
        }
    }

    fn created(global: Option<u32>, per_user: u32) -> CouponState {
        let input = CouponInput {
            per_user_limit: Some(per_user),
            global_limit: global,
            ..input()
        };
        let create = CouponCommand::Create {
            caller: owner(),
            shop: Box::new(shop()),
            input,
        };
        run(&CouponState::default(), create).unwrap().0
    }

    fn redeem(user: &str, order: &str) -> CouponCommand {
        CouponCommand::Redeem {
            user_id: user.into(),
            order_id: order.into(),
            eligible: 1000,
        }
    }

    #[test]
    fn limits_idempotency_and_release() {
        let s = created(Some(2), 1);
        let (s, off) = run(&s, redeem("u1", "o1")).unwrap();
        assert_eq!(off, 100);
        let (again, _) = run(&s, redeem("u1", "o1")).unwrap();
        assert_eq!(again, s, "the same order redeems once");
        assert!(matches!(
            run(&s, redeem("u1", "o2")),
            Err(DomainError::Conflict {
                code: "coupon_limit_reached",
                ..
            })
        ));
        let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
        assert!(matches!(
            run(&s, redeem("u3", "o4")),
            Err(DomainError::Conflict {
                code: "coupon_exhausted",
                ..
            })
        ));
        let (s, _) = run(
            &s,
            CouponCommand::Release {
                order_id: "o3".into(),
            },
        )
        .unwrap();
        assert_eq!(s.coupon.as_ref().unwrap().used, 1);
        assert!(
            run(&s, redeem("u3", "o4")).is_ok(),
            "a released use is available again"
        );
        assert!(normalize_code("ab").is_err());
        assert_eq!(normalize_code(" summer-25 ").unwrap(), "SUMMER-25");
    }

    fn owner() -> Caller {
        Caller {
            user_id: "m".into(),
            role: Role::Merchant,
        }
    }

    fn code(e: DomainError) -> &'static str {
        match e {
            DomainError::Conflict { code, .. } => code,
            DomainError::NotFound(_) => "not_found",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::Invalid { .. } => "invalid",
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_edit_never_goes_below_the_uses_made_and_only_the_owner_edits() {
        let s = created(Some(5), 2);
        let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
        let (s, _) = run(&s, redeem("u1", "o2")).unwrap();
        let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
        let edit = |patch: CouponPatch, caller: Caller| CouponCommand::Edit { caller, patch };
        let below_global = CouponPatch {
            global_limit: Some(Some(2)),
            ..CouponPatch::default()
        };
        assert_eq!(
            code(run(&s, edit(below_global, owner())).unwrap_err()),
            "coupon_below_uses"
        );
        let below_one_customer = CouponPatch {
            per_user_limit: Some(1),
            ..CouponPatch::default()
        };
        assert_eq!(
            code(run(&s, edit(below_one_customer, owner())).unwrap_err()),
            "coupon_below_uses"
        );
        let at_the_uses = CouponPatch {
            global_limit: Some(Some(3)),
            per_user_limit: Some(2),
            ..CouponPatch::default()
        };
        let stranger = Caller {
            user_id: "x".into(),
            role: Role::Merchant,
        };
        assert_eq!(
            code(run(&s, edit(at_the_uses.clone(), stranger)).unwrap_err()),
            "forbidden"
        );
        let (edited, _) = run(&s, edit(at_the_uses.clone(), owner())).unwrap();
        assert_eq!(edited.coupon.as_ref().unwrap().global_limit, Some(3));
        assert_eq!(
            edited.coupon.as_ref().unwrap().status(Utc::now()),
            CouponStatus::Exhausted
        );
        let (again, _) = run(&edited, edit(at_the_uses, owner())).unwrap();
        assert_eq!(
            again, edited,
            "an edit that changes nothing records nothing"
        );
    }

    #[test]
    fn paused_refuses_uses_deleted_is_gone_and_a_code_created_again_starts_afresh() {
        let s = created(None, 1);
        let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
        let (paused, _) = run(&s, CouponCommand::Pause { caller: owner() }).unwrap();
        assert_eq!(
            code(run(&paused, redeem("u2", "o2")).unwrap_err()),
            "coupon_paused"
        );
        let quote = CouponCommand::Quote {
            user_id: "u2".into(),
            eligible: 1000,
        };
        assert_eq!(code(run(&paused, quote).unwrap_err()), "coupon_paused");
        let (again, _) = run(&paused, CouponCommand::Pause { caller: owner() }).unwrap();
        assert_eq!(again, paused, "pausing a paused coupon records nothing");
        let (resumed, _) = run(&paused, CouponCommand::Resume { caller: owner() }).unwrap();
        assert!(run(&resumed, redeem("u2", "o2")).is_ok());

        let (deleted, _) = run(&s, CouponCommand::Delete { caller: owner() }).unwrap();
        assert_eq!(
            code(run(&deleted, redeem("u2", "o2")).unwrap_err()),
            "not_found"
        );
        let usage = CouponCommand::Usage { caller: owner() };
        assert_eq!(code(run(&deleted, usage).unwrap_err()), "not_found");
        // An order that used it, cancelled, still gives its use back.
        let (released, _) = run(
            &deleted,
            CouponCommand::Release {
                order_id: "o1".into(),
            },
        )
        .unwrap();
        assert!(released.redemptions.is_empty());
        let fresh = created(None, 1);
        let recreate = CouponCommand::Create {
            caller: owner(),
            shop: Box::new(shop()),
            input: input(),
        };
        let (back, _) = run(&deleted, recreate).unwrap();
        assert_eq!(back.coupon.as_ref().unwrap().used, 0);
        assert!(back.redemptions.is_empty() && !back.deleted);
        assert_eq!(
            back.coupon.as_ref().unwrap().code,
            fresh.coupon.unwrap().code
        );
    }

    #[test]
    fn the_usage_report_counts_uses_net_of_cancelled_orders() {
        let s = created(Some(10), 5);
        let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
        let (s, _) = run(&s, redeem("u1", "o2")).unwrap();
        let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
        let (s, _) = run(
            &s,
            CouponCommand::Release {
                order_id: "o2".into(),
            },
        )
        .unwrap();
        let u = s.usage(Utc::now()).unwrap();
        assert_eq!(
            (u.used, u.remaining, u.customers, u.discount_total),
            (2, Some(8), 2, 200)
        );
        assert_eq!(u.days.len(), 1);
        assert_eq!((u.days[0].uses, u.days[0].discount), (2, 200));
    }
}
