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
mod tests {
    use super::*;

    fn line(price: u64, qty: u32, grams: u64) -> Line {
        Line {
            product_id: "p".into(),
            shop_id: "s".into(),
            name: "n".into(),
            unit_price: price,
            currency: "VND".into(),
            quantity: qty,
            weight_grams: grams,
            list_price: None,
        }
    }

    #[test]
    fn subtotals_and_weights() {
        let lines = [line(1000, 2, 300), line(250, 4, 50)];
        assert_eq!(subtotal(&lines).unwrap(), 3000);
        assert_eq!(total_weight(&lines).unwrap(), 800);
        assert!(
            subtotal(&[line(u64::MAX, 2, 0)]).is_err(),
            "overflow is an error, not a wrap"
        );
    }

    #[test]
    fn discounts() {
        let now = Utc::now();
        let pct = |v, min| CouponRule {
            kind: DiscountKind::Percentage,
            value: v,
            min_spend: min,
            expires_at: None,
        };
        let fixed = |v, min| CouponRule {
            kind: DiscountKind::Fixed,
            value: v,
            min_spend: min,
            expires_at: None,
        };
        // (rule, eligible subtotal, expected discount or error code)
        let cases: Vec<(CouponRule, u64, Result<u64, &str>)> = vec![
            (pct(10, 0), 10_000, Ok(1_000)),
            (pct(15, 0), 999, Ok(149)),
            (pct(100, 0), 5_000, Ok(5_000)),
            (fixed(3_000, 0), 10_000, Ok(3_000)),
            (fixed(30_000, 0), 10_000, Ok(10_000)),
            (fixed(1_000, 5_000), 4_999, Err("coupon_min_spend")),
            (fixed(1_000, 5_000), 5_000, Ok(1_000)),
            (
                CouponRule {
                    expires_at: Some(now - chrono::Duration::seconds(1)),
                    ..pct(10, 0)
                },
                10_000,
                Err("coupon_expired"),
            ),
        ];
        for (rule, eligible, want) in cases {
            let got = discount(&rule, Base::items(eligible), now).map_err(|e| match e {
                DomainError::Conflict { code, .. } => code,
                _ => "other",
            });
            assert_eq!(got, want, "{rule:?} on {eligible}");
        }
        assert!(check_coupon_rule(&pct(0, 0), now).is_err());
        assert!(check_coupon_rule(&pct(101, 0), now).is_err());
        assert!(check_coupon_rule(&fixed(0, 0), now).is_err());
        assert!(check_coupon_rule(&pct(50, 0), now).is_ok());
        let free = |cap, min| CouponRule {
            kind: DiscountKind::FreeShipping,
            value: cap,
            min_spend: min,
            expires_at: None,
        };
        let on = |items, shipping| Base { items, shipping };
        assert_eq!(
            discount(&free(20_000, 0), on(5_000, 15_000), now).unwrap(),
            15_000,
            "the whole fee under the cap"
        );
        assert_eq!(
            discount(&free(10_000, 0), on(5_000, 15_000), now).unwrap(),
            10_000,
            "the cap"
        );
        assert_eq!(
            discount(&free(10_000, 0), on(5_000, 0), now).unwrap(),
            0,
            "no address: no fee yet"
        );
        assert!(
            discount(&free(10_000, 6_000), on(5_000, 15_000), now).is_err(),
            "min spend on the items"
        );
        assert!(check_coupon_rule(&free(0, 0), now).is_err());
    }

    #[test]
    fn haversine_matches_known_distances() {
        let hanoi = GeoPoint {
            lat: 21.0285,
            lng: 105.8542,
        };
        let hcmc = GeoPoint {
            lat: 10.8231,
            lng: 106.6297,
        };
        let d = haversine_km(hanoi, hcmc);
        assert!((d - 1138.0).abs() < 5.0, "{d}");
        assert_eq!(haversine_km(hanoi, hanoi), 0.0);
    }

    #[test]
    fn shipping_fees_by_distance_and_weight() {
        let t = FeeTable::default();
        // (km, grams, expected)
        let cases: Vec<(f64, u64, Result<u64, ()>)> = vec![
            (0.0, 0, Ok(15_000)),
            (3.0, 1_000, Ok(15_000)),
            (3.01, 1_000, Ok(25_000)),
            (9.0, 1_001, Ok(35_000)),
            (24.0, 20_000, Ok(70_000)),
            (24.0, 20_001, Ok(72_000)),
            (24.0, 22_500, Ok(76_000)),
            (50.0, 0, Ok(60_000)),
            (50.1, 0, Err(())),
        ];
        for (km, grams, want) in cases {
            assert_eq!(
                shipping_fee(&t, km, grams).map_err(|_| ()),
                want,
                "{km} km, {grams} g"
            );
        }
        assert!(check_fee_table(&t).is_ok());
        assert!(check_fee_table(&FeeTable {
            distance: vec![(5.0, 1), (3.0, 2)],
            ..t.clone()
        })
        .is_err());
    }

    #[test]
    fn tax_and_totals() {
        assert_eq!(tax(10_000, 1_000), 1_000);
        assert_eq!(tax(15, 1_000), 2, "1.5 rounds half up");
        assert_eq!(tax(14, 1_000), 1);
        let shop = |shop| Discounts {
            shop,
            ..Discounts::default()
        };
        let t = totals(10_000, shop(2_000), 15_000, 1_000).unwrap();
        assert_eq!(
            t,
            Totals {
                subtotal: 10_000,
                discount: 2_000,
                platform_discount: 0,
                shipping_fee: 15_000,
                shipping_discount: 0,
                tax: 800,
                total: 23_800
            }
        );
        // The shop's discount first, then the platform's on what is left,
        // each capped; free shipping off the fee, capped by it.
        let all = Discounts {
            shop: 8_000,
            platform: 5_000,
            shipping: 20_000,
        };
        let t = totals(10_000, all, 15_000, 1_000).unwrap();
        assert_eq!(
            (
                t.discount,
                t.platform_discount,
                t.shipping_discount,
                t.tax,
                t.total
            ),
            (8_000, 2_000, 15_000, 0, 0)
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn lines() -> impl Strategy<Value = Vec<Line>> {
            proptest::collection::vec(
                (
                    0u64..2_000_000_000,
                    1u32..1_000,
                    proptest::option::of(0u64..1_000_000_000),
                ),
                0..12,
            )
            .prop_map(|ls| {
                ls.into_iter()
                    .enumerate()
                    .map(|(i, (unit, quantity, above))| Line {
                        product_id: format!("p{i}").into(),
                        shop_id: "s".into(),
                        name: "n".into(),
                        unit_price: unit,
                        currency: "VND".into(),
                        quantity,
                        weight_grams: 1,
                        list_price: above.map(|a| unit + a),
                    })
                    .collect()
            })
        }

        proptest! {
            /// A total is never negative (nothing underflows), a discount
            /// never exceeds what it discounts (the order's subtotal, each
            /// line's subtotal), and the lines add up to the order exactly.
            #[test]
            fn totals_never_go_negative_and_discounts_never_exceed_what_they_discount(
                lines in lines(),
                discount in 0u64..u64::MAX / 4,
                platform in 0u64..u64::MAX / 4,
                free_shipping in 0u64..20_000_000,
                shipping in 0u64..10_000_000,
                tax_bps in 0u32..=10_000,
            ) {
                let d = Discounts { shop: discount, platform, shipping: free_shipping };
                let p = price(&lines, d, shipping, tax_bps).unwrap();
                let t = p.totals;
                prop_assert!(t.discount + t.platform_discount <= t.subtotal);
                prop_assert!(t.shipping_discount <= t.shipping_fee);
                prop_assert_eq!(t.discount, discount.min(t.subtotal));
                prop_assert_eq!(t.platform_discount, platform.min(t.subtotal - t.discount));
                prop_assert_eq!(t.shipping_discount, free_shipping.min(shipping));
                prop_assert_eq!(
                    t.total,
                    t.subtotal - t.discount - t.platform_discount + t.shipping_fee
                        - t.shipping_discount + t.tax
                );
                prop_assert_eq!(p.lines.len(), lines.len());
                for (l, lp) in lines.iter().zip(&p.lines) {
                    prop_assert!(lp.discount + lp.platform_discount <= lp.subtotal, "{:?}", lp);
                    prop_assert!(lp.sale_saving <= lp.list_total);
                    prop_assert_eq!(lp.subtotal, l.unit_price * u64::from(l.quantity));
                    prop_assert_eq!(lp.list_total - lp.sale_saving, lp.subtotal);
                    prop_assert_eq!(lp.total, lp.subtotal - lp.discount - lp.platform_discount + lp.tax);
                }
                let sum = |f: fn(&LinePrice) -> u64| p.lines.iter().map(f).sum::<u64>();
                prop_assert_eq!(sum(|l| l.subtotal), t.subtotal);
                prop_assert_eq!(sum(|l| l.discount), t.discount);
                prop_assert_eq!(sum(|l| l.platform_discount), t.platform_discount);
                prop_assert_eq!(sum(|l| l.tax), t.tax);
                prop_assert_eq!(sum(|l| l.total) + t.shipping_fee - t.shipping_discount, t.total);
            }
        }

        #[test]
        fn a_discount_is_shared_in_proportion_and_its_remainder_to_the_largest_fractions() {
            assert_eq!(share(10, &[1, 1, 1]), [4, 3, 3]);
            assert_eq!(share(100, &[300, 100]), [75, 25]);
            assert_eq!(share(7, &[0, 0]), [0, 0]);
            assert_eq!(share(5, &[0, 2, 3]), [0, 2, 3]);
        }
    }
}
