//! The coupon's data: what a merchant creates and changes, where it
//! stands, the state its actor keeps and the usage report.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::ids::{OrderId, UserId};
use crate::domain::pricing::{CouponRule, DiscountKind};
use crate::domain::DomainError;

pub use crate::domain::coupon::{
    CouponInput, CouponPatch, CouponScope, CouponStatus, CouponUsage, DayUse, MAX_GLOBAL_LIMIT,
};

/// The `coupons_by_shop` key part that lists the platform's vouchers
/// (no shop id has this shape).
pub const PLATFORM_KEY: &str = "~platform";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Coupon {
    pub code: String,
    /// Its shop; empty for a platform voucher.
    pub shop_id: crate::domain::ids::ShopId,
    #[serde(default)]
    pub scope: CouponScope,
    /// A voucher: used only by customers who collected it into their
    /// wallet first (`POST /vouchers/{code}/collect`); a plain coupon is
    /// used by whoever knows its code.
    #[serde(default)]
    pub voucher: bool,
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

    /// Its shop, unless it is the platform's.
    pub fn shop(&self) -> Option<&crate::domain::ids::ShopId> {
        (self.scope == CouponScope::Shop).then_some(&self.shop_id)
    }

    /// Its `coupons_by_shop` key.
    pub fn list_key(&self) -> String {
        match self.scope {
            CouponScope::Shop => format!("{}|{}", self.shop_id, self.code),
            CouponScope::Platform => format!("{PLATFORM_KEY}|{}", self.code),
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

/// One use, for the usage report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Use {
    pub discount: u64,
    pub at: DateTime<Utc>,
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
    /// Who collected it (a voucher), so who may use it.
    #[serde(default)]
    pub collected: BTreeSet<UserId>,
}

impl CouponState {
    /// The coupon unless it was deleted.
    pub(super) fn live(&self) -> Result<&Coupon, DomainError> {
        match &self.coupon {
            Some(c) if !self.deleted => Ok(c),
            _ => Err(DomainError::NotFound("coupon")),
        }
    }

    /// Uses by day in `zone`.
    pub fn usage(
        &self,
        now: DateTime<Utc>,
        zone: crate::domain::zone::ReportZone,
    ) -> Result<CouponUsage, DomainError> {
        let c = self.live()?;
        let mut days: BTreeMap<NaiveDate, DayUse> = BTreeMap::new();
        for u in self.uses.values() {
            let day = zone.day_of(u.at);
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

/// The coupon with `patch` applied.
pub(super) fn patched(c: &Coupon, patch: &CouponPatch) -> Coupon {
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
