//! The pricing rules, one test each, and the property test of the one
//! pricing function.

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
