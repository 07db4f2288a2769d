use super::*;
use crate::domain::Role;
use chrono::Utc;

/// A product of `stock` (id `p`) in shop `s` of merchant `m`.
pub(super) fn created(stock: u64) -> ProductState {
    let caller = Caller {
        user_id: "m".into(),
        role: Role::Merchant,
    };
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
    let input = ProductInput {
        name: "Mat".into(),
        category: "yoga".into(),
        price: 100,
        currency: "VND".into(),
        stock,
        weight_grams: 1,
        stock_buckets: 1,
        low_stock_threshold: None,
        category_id: None,
        sale: None,
        description: None,
        brand: None,
        attributes: Default::default(),
    };
    run(
        &ProductState::default(),
        ProductCommand::Create {
            caller,
            shop,
            input,
        },
    )
    .unwrap()
}

/// A product of `stock` split over `k` buckets.
fn split(stock: u64, k: u32) -> ProductState {
    let mut s = created(stock);
    s.product.as_mut().unwrap().stock_buckets = k;
    s
}

mod model {
    use super::*;
    use crate::actors::stock_bucket::{BucketCommand, BucketState, StockBucketEntity};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Order `order` holds `quantity` in bucket `bucket`, by the
        /// service's protocol; `lose` drops the step after the allotment
        /// (a crash between the product's event and the bucket's).
        Hold {
            order: u8,
            bucket: u32,
            quantity: u64,
            lose: bool,
        },
        Release(u8),
        Consume(u8),
        /// A bucket gives back what it has free; `lose` drops the
        /// product's recovery.
        Drain {
            bucket: u32,
            lose: bool,
        },
        /// A bucket refilled ahead of need; `lose` drops its grant.
        RefillAhead {
            bucket: u32,
            lose: bool,
        },
        /// Order `order` holds on the product itself (the end of the
        /// stock).
        HoldOnProduct {
            order: u8,
            quantity: u64,
        },
    }

    fn op(k: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 0..k, 1u64..4, proptest::bool::weighted(0.2)).prop_map(
                |(order, bucket, quantity, lose)| Op::Hold { order, bucket, quantity, lose }
            ),
            1 => (0u8..24).prop_map(Op::Release),
            1 => (0u8..24).prop_map(Op::Consume),
            1 => (0..k, proptest::bool::weighted(0.2))
                .prop_map(|(bucket, lose)| Op::Drain { bucket, lose }),
            1 => (0..k, proptest::bool::weighted(0.2))
                .prop_map(|(bucket, lose)| Op::RefillAhead { bucket, lose }),
            1 => (0u8..24, 1u64..4)
                .prop_map(|(order, quantity)| Op::HoldOnProduct { order, quantity }),
        ]
    }

    fn bucket(
        b: &BucketState,
        cmd: BucketCommand,
    ) -> (BucketState, crate::actors::stock_bucket::BucketView) {
        let ctx = Ctx {
            id: "p~0",
            now: Utc::now(),
        };
        let (events, view) = StockBucketEntity::decide(b, cmd, &ctx).unwrap();
        (StockBucketEntity::evolve(b, &events), view)
    }

    fn product(p: &ProductState, cmd: ProductCommand) -> (ProductState, u64) {
        let ctx = Ctx {
            id: "p",
            now: Utc::now(),
        };
        let (events, reply) = ProductEntity::decide(p, cmd, &ctx).unwrap();
        (ProductEntity::evolve(p, &events), reply.allotted)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the order of holds, releases, sales and drains, and
        /// whichever second steps are lost: no unit is held or sold
        /// twice, the pool never goes below zero, and every unit is
        /// somewhere (pool, in flight, or a bucket).
        #[test]
        fn split_stock_never_oversells(
            stock in 0u64..40,
            k in 2u32..5,
            ops in proptest::collection::vec(op(4), 1..80),
        ) {
            let mut p = split(stock, k);
            let mut buckets = vec![BucketState::default(); k as usize];
            let mut at: std::collections::HashMap<u8, usize> = Default::default();
            // Orders held on the product, and units it sold.
            let mut on_product = std::collections::HashSet::new();
            let mut sold_on_product = 0;
            for op in ops {
                match op {
                    Op::Hold { order, bucket: b, quantity, lose } => {
                        let b = (b % k) as usize;
                        let id = format!("o{order}");
                        if at.get(&order).is_some_and(|&h| h != b) || on_product.contains(&order) {
                            continue; // an order's hold lives in one place
                        }
                        let hold = |grant| BucketCommand::Hold { order_id: id.clone(), quantity, grant };
                        let (next, seen) = bucket(&buckets[b], hold(None));
                        buckets[b] = next;
                        if !seen.holds {
                            let allot = ProductCommand::Allot {
                                bucket: b as u32,
                                need: quantity.saturating_sub(seen.free),
                                free: seen.free,
                                changes: seen.changes,
                            };
                            let (next, allotted) = product(&p, allot);
                            p = next;
                            if !lose {
                                let (next, _) = bucket(&buckets[b], hold(Some(allotted)));
                                buckets[b] = next;
                            }
                        }
                        if buckets[b].held.contains_key(&id) {
                            at.insert(order, b);
                        }
                    }
                    Op::HoldOnProduct { order, quantity } => {
                        if at.contains_key(&order) {
                            continue;
                        }
                        let hold = ProductCommand::Hold { order_id: format!("o{order}"), quantity };
                        let ctx = Ctx { id: "p", now: Utc::now() };
                        if let Ok((events, _)) = ProductEntity::decide(&p, hold, &ctx) {
                            p = ProductEntity::evolve(&p, &events);
                            on_product.insert(order);
                        }
                    }
                    Op::RefillAhead { bucket: b, lose } => {
                        let b = (b % k) as usize;
                        let seen = buckets[b].clone();
                        let allot = ProductCommand::Allot {
                            bucket: b as u32,
                            need: 0,
                            free: seen.free(),
                            changes: seen.changes,
                        };
                        let (next, allotted) = product(&p, allot);
                        p = next;
                        if !lose {
                            buckets[b] = bucket(&buckets[b], BucketCommand::Grant { total: allotted }).0;
                        }
                    }
                    Op::Release(order) | Op::Consume(order) if on_product.contains(&order) => {
                        let id = format!("o{order}");
                        if matches!(op, Op::Release(_)) {
                            p = product(&p, ProductCommand::Release { order_id: id }).0;
                        } else {
                            sold_on_product += p.held.get(&id).copied().unwrap_or(0);
                            p = product(&p, ProductCommand::Consume { order_id: id }).0;
                        }
                        on_product.remove(&order);
                    }
                    Op::Release(order) | Op::Consume(order) => {
                        let Some(&b) = at.get(&order) else { continue };
                        let id = format!("o{order}");
                        let cmd = if matches!(op, Op::Release(_)) {
                            at.remove(&order);
                            BucketCommand::Release { order_id: id }
                        } else {
                            BucketCommand::Consume { order_id: id }
                        };
                        buckets[b] = bucket(&buckets[b], cmd).0;
                    }
                    Op::Drain { bucket: b, lose } => {
                        let b = (b % k) as usize;
                        let (next, back) = bucket(&buckets[b], BucketCommand::GiveBack);
                        buckets[b] = next;
                        if !lose {
                            let recover = ProductCommand::Recover {
                                bucket: b as u32,
                                returned: back.returned,
                                free: back.free,
                                changes: back.changes,
                            };
                            p = product(&p, recover).0;
                        }
                    }
                }
                let pool = p.product.as_ref().unwrap().stock;
                let mut out = 0;
                for (i, s) in buckets.iter().enumerate() {
                    let allotted = p.allotted.get(i).copied().unwrap_or(0);
                    let recovered = p.recovered.get(i).copied().unwrap_or(0);
                    prop_assert!(s.received <= allotted, "granted only what was allotted");
                    prop_assert!(recovered <= s.returned, "recovered only what was given back");
                    prop_assert_eq!(s.held_units + s.sold + s.free() + s.returned, s.received);
                    prop_assert_eq!(s.held.values().sum::<u64>(), s.held_units);
                    out += allotted - recovered;
                }
                let on_p: u64 = p.held.values().sum();
                prop_assert_eq!(
                    pool + out + on_p + sold_on_product,
                    stock,
                    "every unit in the pool, out in a bucket, or held or sold on the product"
                );
                let taken: u64 = buckets.iter().map(|s| s.held_units + s.sold).sum::<u64>()
                    + on_p
                    + sold_on_product;
                prop_assert!(taken <= stock, "never more held and sold than there is");
            }
        }
    }
}

fn run(state: &ProductState, cmd: ProductCommand) -> Result<ProductState, DomainError> {
    let (events, _) = ProductEntity::decide(
        state,
        cmd,
        &Ctx {
            id: "p",
            now: Utc::now(),
        },
    )?;
    Ok(ProductEntity::evolve(state, &events))
}

fn hold(order: &str, q: u64) -> ProductCommand {
    ProductCommand::Hold {
        order_id: order.into(),
        quantity: q,
    }
}

#[test]
fn a_product_is_deleted_only_when_nothing_holds_it_and_is_then_gone_for_changes() {
    let owner = || Caller {
        user_id: "m".into(),
        role: Role::Merchant,
    };
    let delete = || ProductCommand::Delete { caller: owner() };
    let held = run(&created(3), hold("o1", 1)).unwrap();
    let refused = run(&held, delete()).unwrap_err();
    assert!(matches!(
        refused,
        DomainError::Conflict {
            code: "stock_held",
            ..
        }
    ));
    let stranger = Caller {
        user_id: "x".into(),
        role: Role::Merchant,
    };
    assert!(run(&created(3), ProductCommand::Delete { caller: stranger }).is_err());
    let released = run(
        &held,
        ProductCommand::Release {
            order_id: "o1".into(),
        },
    )
    .unwrap();
    let gone = run(&released, delete()).unwrap();
    assert!(gone.product.as_ref().unwrap().deleted_at.is_some());
    assert_eq!(run(&gone, delete()).unwrap(), gone, "again: nothing");
    assert!(run(&gone, hold("o2", 1)).is_err(), "not sold");
    let patch = ProductCommand::Update {
        caller: owner(),
        patch: crate::domain::catalog::ProductPatch::default(),
    };
    assert!(matches!(run(&gone, patch), Err(DomainError::NotFound(_))));
    let add = ProductCommand::Media {
        caller: owner(),
        change: crate::domain::media::MediaChange::Add(crate::domain::media::MediaRef::new(
            "i".into(),
            "image/jpeg",
            1,
            1,
        )),
    };
    assert!(matches!(run(&gone, add), Err(DomainError::NotFound(_))));
    // Its rows leave the listings and the inventory.
    let ops = ProductEntity::index("p", &released, &gone, &[]);
    let deleted: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            IndexOp::Delete { table, .. } => Some(*table),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![PRODUCTS_TABLE, INVENTORY, LOW_STOCK]);
}

#[test]
fn holds_answers_whether_an_order_holds_on_the_product() {
    let s = run(&created(3), hold("o1", 1)).unwrap();
    let holds = |order: &str| {
        let cmd = ProductCommand::Holds {
            order_id: order.into(),
        };
        let ctx = Ctx {
            id: "p",
            now: Utc::now(),
        };
        let (events, reply) = ProductEntity::decide(&s, cmd, &ctx).unwrap();
        assert!(events.is_empty(), "a read");
        reply.holds
    };
    assert!(holds("o1"));
    assert!(!holds("o2"));
}

#[test]
fn holds_never_exceed_stock_and_are_idempotent() {
    let s = created(3);
    let s = run(&s, hold("o1", 2)).unwrap();
    assert_eq!(s.product.as_ref().unwrap().stock, 1);
    let again = run(&s, hold("o1", 2)).unwrap();
    assert_eq!(again, s, "holding twice for one order counts once");
    assert!(matches!(
        run(&s, hold("o2", 2)),
        Err(DomainError::Conflict {
            code: "out_of_stock",
            ..
        })
    ));
    assert!(matches!(
        run(&s, hold("o2", 0)),
        Err(DomainError::Conflict {
            code: "out_of_stock",
            ..
        })
    ));
    let s = run(
        &s,
        ProductCommand::Release {
            order_id: "o1".into(),
        },
    )
    .unwrap();
    assert_eq!(s.product.as_ref().unwrap().stock, 3);
    assert_eq!(
        run(
            &s,
            ProductCommand::Release {
                order_id: "o1".into()
            }
        )
        .unwrap(),
        s,
        "release is idempotent"
    );
    let s = run(&s, hold("o3", 3)).unwrap();
    let s = run(
        &s,
        ProductCommand::Consume {
            order_id: "o3".into(),
        },
    )
    .unwrap();
    assert_eq!(
        (s.product.as_ref().unwrap().stock, s.held.len()),
        (0, 0),
        "consumed stock does not come back"
    );
}
