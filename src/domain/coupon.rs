//! A coupon as its merchant and the API see it: what creates or changes
//! one, where it stands, and what it has given. The coupon entity
//! (`actors::coupon`) keeps and decides them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::catalog::present;
use super::pricing::DiscountKind;

pub const MAX_GLOBAL_LIMIT: u32 = 1_000_000;

/// Whose discount it is: a shop's (on that shop's lines, one per shop in a
/// checkout) or the platform's (an admin's, on the whole checkout after
/// the shops' discounts, one per checkout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponScope {
    #[default]
    Shop,
    Platform,
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
    /// A voucher customers collect before they use it (default: a code
    /// anyone may enter). Platform vouchers always are.
    #[serde(default)]
    pub voucher: bool,
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

/// A day of a coupon's uses (in `report_time_zone`), net of cancelled
/// orders.
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
