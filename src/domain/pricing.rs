//! Pricing: subtotal, coupon discount, shipping fee (haversine distance and
//! weight against a fee table), tax, total. All money is integer minor
//! units; every sum is checked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DomainError, GeoPoint};

/// One priced line of a cart or order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Line {
    pub product_id: crate::domain::ids::ProductId,
    pub shop_id: crate::domain::ids::ShopId,
    pub name: String,
    pub unit_price: u64,
    pub currency: String,
    pub quantity: u32,
    pub weight_grams: u64,
    /// The list price while a sale price is charged (`unit_price`), to show
    /// struck through; none otherwise.
    #[serde(default)]
    pub list_price: Option<u64>,
}

fn overflow() -> DomainError {
    DomainError::invalid("quantity", "the amount is too large")
}

pub fn line_total(l: &Line) -> Result<u64, DomainError> {
    l.unit_price
        .checked_mul(u64::from(l.quantity))
        .ok_or_else(overflow)
}

pub fn subtotal(lines: &[Line]) -> Result<u64, DomainError> {
    lines.iter().try_fold(0u64, |acc, l| {
        acc.checked_add(line_total(l)?).ok_or_else(overflow)
    })
}

pub fn total_weight(lines: &[Line]) -> Result<u64, DomainError> {
    lines.iter().try_fold(0u64, |acc, l| {
        l.weight_grams
            .checked_mul(u64::from(l.quantity))
            .and_then(|w| acc.checked_add(w))
            .ok_or_else(overflow)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscountKind {
    /// `value` percent off (1–100).
    Percentage,
    /// `value` minor units off.
    Fixed,
    /// The shipping fee off, up to `value` minor units (platform vouchers
    /// only).
    FreeShipping,
}

/// The rule part of a coupon (its usage limits live in the coupon entity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CouponRule {
    pub kind: DiscountKind,
    pub value: u64,
    /// Minimum subtotal (of the coupon's shop's lines) to apply.
    pub min_spend: u64,
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn check_coupon_rule(rule: &CouponRule, now: DateTime<Utc>) -> Result<(), DomainError> {
    match rule.kind {
        DiscountKind::Percentage if !(1..=100).contains(&rule.value) => Err(DomainError::invalid(
            "value",
            "a percentage must be between 1 and 100",
        )),
        DiscountKind::Fixed | DiscountKind::FreeShipping
            if rule.value == 0 || rule.value > crate::domain::catalog::MAX_PRICE =>
        {
            Err(DomainError::invalid(
                "value",
                format!(
                    "a fixed discount or a free-shipping cap must be between 1 and {}",
                    crate::domain::catalog::MAX_PRICE
                ),
            ))
        }
        _ if rule.min_spend > crate::domain::catalog::MAX_PRICE => Err(DomainError::invalid(
            "min_spend",
            format!(
                "min_spend must be at most {}",
                crate::domain::catalog::MAX_PRICE
            ),
        )),
        _ if rule.expires_at.is_some_and(|e| e <= now) => Err(DomainError::invalid(
            "expires_at",
            "expires_at must be in the future",
        )),
        _ => Ok(()),
    }
}

/// What a coupon or voucher discounts: the items (after the discounts
/// applied before it) and the shipping fee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The items' subtotal it applies to; `min_spend` is checked on it.
    pub items: u64,
    /// The shipping fee (0 before an address is known).
    #[serde(default)]
    pub shipping: u64,
}

impl Base {
    pub fn items(items: u64) -> Base {
        Base { items, shipping: 0 }
    }
}

/// The discount `rule` gives on `base`, or why it does not apply. Never
/// more than what it discounts: the items, or the shipping fee for free
/// shipping.
pub fn discount(rule: &CouponRule, base: Base, now: DateTime<Utc>) -> Result<u64, DomainError> {
    if rule.expires_at.is_some_and(|e| e <= now) {
        return Err(DomainError::conflict(
            "coupon_expired",
            "this coupon has expired",
        ));
    }
    if base.items < rule.min_spend {
        return Err(DomainError::conflict(
            "coupon_min_spend",
            format!("this coupon needs a minimum spend of {}", rule.min_spend),
        ));
    }
    Ok(match rule.kind {
        // Rounded down: the customer never gets more than the percentage.
        DiscountKind::Percentage => (u128::from(base.items) * u128::from(rule.value) / 100) as u64,
        DiscountKind::Fixed => rule.value.min(base.items),
        DiscountKind::FreeShipping => rule.value.min(base.shipping),
    })
}

/// Great-circle distance in kilometres (mean Earth radius 6371.0088 km).
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    const R: f64 = 6371.0088;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlng = (b.lng - a.lng).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlng / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

/// The shipping fee table: a fee by distance bracket plus a surcharge by
/// weight bracket. Brackets are "up to and including"; beyond the last
/// distance bracket the address is out of the delivery area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeTable {
    /// `(max_km, fee)`, ascending by `max_km`.
    pub distance: Vec<(f64, u64)>,
    /// `(max_grams, surcharge)`, ascending; heavier than the last bracket
    /// pays the last surcharge plus `per_extra_kg` for each started kilogram.
    pub weight: Vec<(u64, u64)>,
    pub per_extra_kg: u64,
}

impl Default for FeeTable {
    fn default() -> Self {
        FeeTable {
            distance: vec![
                (3.0, 15_000),
                (10.0, 25_000),
                (25.0, 40_000),
                (50.0, 60_000),
            ],
            weight: vec![(1_000, 0), (5_000, 10_000), (20_000, 30_000)],
            per_extra_kg: 2_000,
        }
    }
}

pub fn check_fee_table(t: &FeeTable) -> Result<(), String> {
    let asc_d = t.distance.windows(2).all(|w| w[0].0 < w[1].0);
    let asc_w = t.weight.windows(2).all(|w| w[0].0 < w[1].0);
    if t.distance.is_empty()
        || !asc_d
        || t.distance
            .iter()
            .any(|(km, _)| !km.is_finite() || *km <= 0.0)
    {
        return Err("shipping distance brackets must be positive and ascending".into());
    }
    if t.weight.is_empty() || !asc_w {
        return Err("shipping weight brackets must be ascending".into());
    }
    Ok(())
}

pub fn shipping_fee(table: &FeeTable, km: f64, grams: u64) -> Result<u64, DomainError> {
    let by_distance = table
        .distance
        .iter()
        .find(|(max, _)| km <= *max)
        .map(|(_, fee)| *fee)
        .ok_or_else(|| {
            DomainError::conflict(
                "out_of_delivery_area",
                format!(
                    "the address is {km:.1} km away; the delivery area ends at {} km",
                    table.distance.last().map(|d| d.0).unwrap_or(0.0)
                ),
            )
        })?;
    let by_weight = match table.weight.iter().find(|(max, _)| grams <= *max) {
        Some((_, fee)) => *fee,
        None => {
            let (max, fee) = *table.weight.last().expect("checked non-empty");
            let extra_kg = (grams - max).div_ceil(1000);
            fee.saturating_add(extra_kg.saturating_mul(table.per_extra_kg))
        }
    };
    by_distance.checked_add(by_weight).ok_or_else(overflow)
}

/// Tax in basis points of `amount`, rounded half up.
pub fn tax(amount: u64, rate_bps: u32) -> u64 {
    ((u128::from(amount) * u128::from(rate_bps) + 5_000) / 10_000) as u64
}

/// The money of one order (or of a whole cart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub subtotal: u64,
    /// What the shop's coupon or voucher takes off the items (the shop
    /// bears it).
    pub discount: u64,
    /// This order's part of the platform voucher on the items (the
    /// platform bears it).
    #[serde(default)]
    pub platform_discount: u64,
    pub shipping_fee: u64,
    /// What a free-shipping voucher takes off `shipping_fee` (the platform
    /// bears it).
    #[serde(default)]
    pub shipping_discount: u64,
    /// On (subtotal − discount − platform_discount); shipping is not taxed.
    pub tax: u64,
    /// `subtotal − discount − platform_discount + tax + shipping_fee −
    /// shipping_discount`.
    pub total: u64,
}

/// What one order's discounts take off: the shop's coupon or voucher and
/// its part of the platform voucher (the items), and of a free-shipping
/// voucher (the shipping fee). Each is capped by what it discounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discounts {
    pub shop: u64,
    pub platform: u64,
    pub shipping: u64,
}

fn totals(
    subtotal: u64,
    d: Discounts,
    shipping_fee: u64,
    tax_bps: u32,
) -> Result<Totals, DomainError> {
    let discount = d.shop.min(subtotal);
    let platform_discount = d.platform.min(subtotal - discount);
    let taxable = subtotal - discount - platform_discount;
    let shipping_discount = d.shipping.min(shipping_fee);
    let tax = tax(taxable, tax_bps);
    let total = taxable
        .checked_add(shipping_fee - shipping_discount)
        .and_then(|t| t.checked_add(tax))
        .ok_or_else(overflow)?;
    Ok(Totals {
        subtotal,
        discount,
        platform_discount,
        shipping_fee,
        shipping_discount,
        tax,
        total,
    })
}

/// One line's money in an order: what it lists at, what its sale price
/// takes off, its part of the order's discount and tax, what it costs. The
/// lines' totals and the order's shipping fee add up to the order's total
/// exactly; a line's share is what a refund of that line gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinePrice {
    pub product_id: crate::domain::ids::ProductId,
    pub quantity: u32,
    /// The list price × the quantity.
    pub list_total: u64,
    /// What the sale price takes off `list_total` (0 when not on sale).
    pub sale_saving: u64,
    /// The price charged (the sale price while on sale) × the quantity.
    pub subtotal: u64,
    /// The line's part of the order's discount, in proportion to its
    /// subtotal (the remainder to the largest fractions): never more than
    /// its subtotal.
    pub discount: u64,
    /// The line's part of the order's platform voucher, shared the same
    /// way over what is left after `discount`.
    #[serde(default)]
    pub platform_discount: u64,
    /// The line's part of the order's tax, shared the same way.
    pub tax: u64,
    /// `subtotal − discount − platform_discount + tax` (shipping is the
    /// order's).
    pub total: u64,
}

/// An order's (or one shop's part of a cart's) money: the totals and each
/// line's breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub totals: Totals,
    pub lines: Vec<LinePrice>,
}

/// `amount` shared among `weights` in proportion, the units left over by
/// rounding down going to the largest remainders (the first on a tie): the
/// shares add up to `amount` exactly, and none is above its weight's
/// proportional share rounded up. All zeros when the weights are. A
/// platform voucher is shared among a checkout's orders with it too.
pub fn share(amount: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(u64, u128)> = weights
        .iter()
        .map(|&w| {
            let n = u128::from(amount) * u128::from(w);
            ((n / sum) as u64, n % sum)
        })
        .collect();
    let mut shares: Vec<u64> = exact.iter().map(|&(q, _)| q).collect();
    let left = amount - shares.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
    for &i in order.iter().take(left as usize) {
        shares[i] += 1;
    }
    shares
}

/// The one pricing function: the money of `lines` (each charged its
/// `unit_price`, the sale price while on sale, with `list_price` beside)
/// less the shop's discount, then this order's part of the platform
/// voucher (each at most what is left), plus `shipping_fee` less the
/// free-shipping discount, and tax at `tax_bps` on the items after both
/// discounts. Every cart quote, checkout and flash-sale order is priced
/// here.
pub fn price(
    lines: &[Line],
    discounts: Discounts,
    shipping_fee: u64,
    tax_bps: u32,
) -> Result<Priced, DomainError> {
    let subtotals = lines
        .iter()
        .map(line_total)
        .collect::<Result<Vec<_>, _>>()?;
    let t = totals(subtotal(lines)?, discounts, shipping_fee, tax_bps)?;
    let shop = share(t.discount, &subtotals);
    let after_shop: Vec<u64> = subtotals.iter().zip(&shop).map(|(s, d)| s - d).collect();
    let platform = share(t.platform_discount, &after_shop);
    let taxable: Vec<u64> = after_shop
        .iter()
        .zip(&platform)
        .map(|(s, d)| s - d)
        .collect();
    let taxes = share(t.tax, &taxable);
    let lines = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let list_total = l
                .list_price
                .unwrap_or(l.unit_price)
                .checked_mul(u64::from(l.quantity))
                .ok_or_else(overflow)?;
            Ok(LinePrice {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
                list_total,
                sale_saving: list_total.saturating_sub(subtotals[i]),
                subtotal: subtotals[i],
                discount: shop[i],
                platform_discount: platform[i],
                tax: taxes[i],
                total: taxable[i] + taxes[i],
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    Ok(Priced { totals: t, lines })
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            subtotal: self.subtotal.saturating_add(o.subtotal),
            discount: self.discount.saturating_add(o.discount),
            platform_discount: self.platform_discount.saturating_add(o.platform_discount),
            shipping_fee: self.shipping_fee.saturating_add(o.shipping_fee),
            shipping_discount: self.shipping_discount.saturating_add(o.shipping_discount),
            tax: self.tax.saturating_add(o.tax),
            total: self.total.saturating_add(o.total),
        }
    }
}

#[cfg(test)]
mod tests;
