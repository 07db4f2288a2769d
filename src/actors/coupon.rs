//! The coupon entity: one actor per coupon code (codes are unique across
//! the platform). Every redemption goes through it, so a global usage limit
//! holds under any concurrency. Redemptions are keyed by order id: redeeming
//! twice for one order counts once; a cancelled order gives its use back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Entity};
use crate::domain::catalog::Shop;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::pricing::{check_coupon_rule, discount, CouponRule, DiscountKind};
use crate::domain::{Caller, DomainError};

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
    pub created_at: DateTime<Utc>,
}

impl Coupon {
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CouponEvent {
    Created { coupon: Coupon },
    Redeemed { order_id: OrderId, user_id: UserId },
    Released { order_id: OrderId },
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponReply {
    pub coupon: Coupon,
    pub discount: u64,
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
    let c = coupon(state)?;
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
    if state.coupon.is_some() {
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
    if per_user_limit == 0 || per_user_limit > MAX_GLOBAL_LIMIT {
        return Err(DomainError::invalid(
            "per_user_limit",
            format!("per_user_limit must be between 1 and {MAX_GLOBAL_LIMIT}"),
        ));
    }
    if input
        .global_limit
        .is_some_and(|g| g == 0 || g > MAX_GLOBAL_LIMIT)
    {
        return Err(DomainError::invalid(
            "global_limit",
            format!("global_limit must be between 1 and {MAX_GLOBAL_LIMIT}"),
        ));
    }
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
        created_at: ctx.now,
    };
    Ok(vec![CouponEvent::Created { coupon }])
}

impl Entity for CouponEntity {
    const KIND: &'static str = "coupon";
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
                    (vec![CouponEvent::Redeemed { order_id, user_id }], off)
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
        Ok((events, CouponReply { coupon, discount }))
    }

    fn apply(state: &mut CouponState, event: &CouponEvent) {
        match event {
            CouponEvent::Created { coupon } => state.coupon = Some(coupon.clone()),
            CouponEvent::Redeemed { order_id, user_id } => {
                state.redemptions.insert(order_id.clone(), user_id.clone());
                *state.per_user.entry(user_id.clone()).or_default() += 1;
                if let Some(c) = state.coupon.as_mut() {
                    c.used += 1;
                }
            }
            CouponEvent::Released { order_id } => {
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

    fn created(global: Option<u32>, per_user: u32) -> CouponState {
        let now = Utc::now();
        let shop = Shop {
            id: "s".into(),
            owner_id: "m".into(),
            name: "S".into(),
            location: crate::domain::GeoPoint { lat: 0.0, lng: 0.0 },
            address: "a".into(),
            hidden: None,
            created_at: now,
            updated_at: now,
        };
        let input = CouponInput {
            code: "save10".into(),
            kind: DiscountKind::Percentage,
            value: 10,
            min_spend: 0,
            expires_at: None,
            per_user_limit: Some(per_user),
            global_limit: global,
        };
        run(
            &CouponState::default(),
            CouponCommand::Create {
                caller: Caller {
                    user_id: "m".into(),
                    role: Role::Merchant,
                },
                shop: Box::new(shop),
                input,
            },
        )
        .unwrap()
        .0
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
}
