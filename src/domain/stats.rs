//! Platform statistics: the facts entities record as they happen (an order
//! placed, paid, refunded, delivered; a sign-up; a burst place confirmed),
//! counted per hour. Pure: the worker that applies the facts and the
//! readers that sum hours into days live in `service::platform::stats`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Products and shops an hour's top lists keep (space-saving beyond).
pub const TOP_KEPT: usize = 500;
/// Distinct active shippers an hour remembers.
pub const MAX_SHIPPERS: usize = 10_000;

/// Something that happened, as the statistics count it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fact {
    OrderPlaced {
        shop_id: String,
        /// `(product id, units)` of its lines.
        lines: Vec<(String, u64)>,
    },
    /// Paid online or cash collected: its total counts as GMV.
    OrderPaid {
        shop_id: String,
        currency: String,
        total: u64,
        /// `(product id, units, amount)` of its lines.
        lines: Vec<(String, u64, u64)>,
    },
    OrderRefunded {
        currency: String,
        amount: u64,
    },
    Delivered {
        shipper_id: String,
    },
    UserRegistered,
    /// A place of a course or flash sale confirmed (at once or from the
    /// waitlist).
    SignUp {
        flash_sale: bool,
    },
}

/// A product's or shop's share of an hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    /// Units ordered (products) or orders placed (shops).
    pub count: u64,
    /// Paid amount, in the minor units of whatever currency it was paid
    /// in (a mix when the platform sells in several).
    pub gmv: u64,
}

/// One hour's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hour {
    pub orders: u64,
    pub paid_orders: u64,
    /// By currency.
    pub gmv: BTreeMap<String, u64>,
    pub refunds: u64,
    pub refunded: BTreeMap<String, u64>,
    pub deliveries: u64,
    pub new_users: u64,
    pub course_signups: u64,
    pub flash_sale_signups: u64,
    pub shippers: BTreeSet<String>,
    pub products: BTreeMap<String, Share>,
    pub shops: BTreeMap<String, Share>,
}

/// Adds `(count, gmv)` to `key` in a top list bounded by `TOP_KEPT`: a new
/// key beyond the bound takes the place of the smallest and inherits its
/// counts (space-saving: a key's counts are then an upper bound, and a key
/// with more than 1/`TOP_KEPT` of the hour is never lost).
fn add_share(top: &mut BTreeMap<String, Share>, key: &str, count: u64, gmv: u64) {
    if !top.contains_key(key) && top.len() >= TOP_KEPT {
        let smallest = top
            .iter()
            .min_by_key(|(k, s)| (s.gmv, s.count, (*k).clone()))
            .map(|(k, s)| (k.clone(), *s));
        if let Some((k, s)) = smallest {
            top.remove(&k);
            top.insert(key.to_owned(), s);
        }
    }
    let s = top.entry(key.to_owned()).or_default();
    s.count += count;
    s.gmv = s.gmv.saturating_add(gmv);
}

impl Hour {
    pub fn apply(&mut self, fact: &Fact) {
        match fact {
            Fact::OrderPlaced { shop_id, lines } => {
                self.orders += 1;
                add_share(&mut self.shops, shop_id, 1, 0);
                for (p, units) in lines {
                    add_share(&mut self.products, p, *units, 0);
                }
            }
            Fact::OrderPaid {
                shop_id,
                currency,
                total,
                lines,
            } => {
                self.paid_orders += 1;
                let g = self.gmv.entry(currency.clone()).or_default();
                *g = g.saturating_add(*total);
                add_share(&mut self.shops, shop_id, 0, *total);
                for (p, _, amount) in lines {
                    add_share(&mut self.products, p, 0, *amount);
                }
            }
            Fact::OrderRefunded { currency, amount } => {
                self.refunds += 1;
                let r = self.refunded.entry(currency.clone()).or_default();
                *r = r.saturating_add(*amount);
            }
            Fact::Delivered { shipper_id } => {
                self.deliveries += 1;
                if self.shippers.len() < MAX_SHIPPERS {
                    self.shippers.insert(shipper_id.clone());
                }
            }
            Fact::UserRegistered => self.new_users += 1,
            Fact::SignUp { flash_sale: true } => self.flash_sale_signups += 1,
            Fact::SignUp { flash_sale: false } => self.course_signups += 1,
        }
    }
}

/// The counters of a span (an hour, a day, a whole range), as served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Counters {
    /// Orders placed.
    pub orders: u64,
    /// Orders paid online or paid in cash on delivery.
    pub paid_orders: u64,
    /// What paid orders totalled, by currency (minor units).
    pub gmv: BTreeMap<String, u64>,
    pub refunds: u64,
    /// What was refunded, by currency.
    pub refunded: BTreeMap<String, u64>,
    pub deliveries: u64,
    /// Distinct shippers who delivered something in the span.
    pub active_shippers: u64,
    pub new_users: u64,
    /// Course places and flash-sale units confirmed.
    pub course_signups: u64,
    pub flash_sale_signups: u64,
}

/// Sums `hours` into one span's counters (shippers counted once each).
pub fn sum<'a>(hours: impl IntoIterator<Item = &'a Hour>) -> Counters {
    let mut c = Counters::default();
    let mut shippers: BTreeSet<&str> = BTreeSet::new();
    for h in hours {
        c.orders += h.orders;
        c.paid_orders += h.paid_orders;
        for (cur, v) in &h.gmv {
            *c.gmv.entry(cur.clone()).or_default() += v;
        }
        c.refunds += h.refunds;
        for (cur, v) in &h.refunded {
            *c.refunded.entry(cur.clone()).or_default() += v;
        }
        c.deliveries += h.deliveries;
        shippers.extend(h.shippers.iter().map(String::as_str));
        c.new_users += h.new_users;
        c.course_signups += h.course_signups;
        c.flash_sale_signups += h.flash_sale_signups;
    }
    c.active_shippers = shippers.len() as u64;
    c
}

/// One entry of a top list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Top {
    pub id: String,
    #[serde(flatten)]
    pub share: Share,
}

/// The `limit` products (`shops: false`) or shops with the most GMV over
/// `hours` (then count, then id).
pub fn top<'a>(hours: impl IntoIterator<Item = &'a Hour>, shops: bool, limit: usize) -> Vec<Top> {
    let mut all: HashMap<&str, Share> = HashMap::new();
    for h in hours {
        for (k, s) in if shops { &h.shops } else { &h.products } {
            let e = all.entry(k).or_default();
            e.count += s.count;
            e.gmv = e.gmv.saturating_add(s.gmv);
        }
    }
    let mut out: Vec<Top> = all
        .into_iter()
        .map(|(id, share)| Top {
            id: id.to_owned(),
            share,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.share.gmv, b.share.count)
            .cmp(&(a.share.gmv, a.share.count))
            .then(a.id.cmp(&b.id))
    });
    out.truncate(limit);
    out
}

/// The hour key of `at`: `YYYYMMDDHH` (UTC).
pub fn hour_key(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fact() -> impl Strategy<Value = Fact> {
        let product = (0u8..6).prop_map(|p| format!("p{p}"));
        let shop = (0u8..3).prop_map(|s| format!("s{s}"));
        prop_oneof![
            (
                shop.clone(),
                proptest::collection::vec((product.clone(), 1u64..4), 1..3)
            )
                .prop_map(|(shop_id, lines)| Fact::OrderPlaced { shop_id, lines }),
            (
                shop,
                proptest::collection::vec((product, 1u64..4, 1u64..1000), 1..3)
            )
                .prop_map(|(shop_id, lines)| Fact::OrderPaid {
                    shop_id,
                    currency: "VND".into(),
                    total: lines.iter().map(|l| l.2).sum(),
                    lines,
                }),
            (1u64..500).prop_map(|amount| Fact::OrderRefunded {
                currency: "VND".into(),
                amount
            }),
            (0u8..4).prop_map(|s| Fact::Delivered {
                shipper_id: format!("sh{s}")
            }),
            Just(Fact::UserRegistered),
            any::<bool>().prop_map(|flash_sale| Fact::SignUp { flash_sale }),
        ]
    }

    proptest! {
        /// However the facts are spread over hours, summing the hours
        /// gives what counting the facts directly gives.
        #[test]
        fn hours_sum_to_a_direct_count(facts in proptest::collection::vec((0usize..5, fact()), 0..80)) {
            let mut hours = vec![Hour::default(); 5];
            for (h, f) in &facts {
                hours[*h].apply(f);
            }
            let total = sum(&hours);
            let count = |p: &dyn Fn(&Fact) -> bool| facts.iter().filter(|(_, f)| p(f)).count() as u64;
            prop_assert_eq!(total.orders, count(&|f| matches!(f, Fact::OrderPlaced { .. })));
            prop_assert_eq!(total.paid_orders, count(&|f| matches!(f, Fact::OrderPaid { .. })));
            let gmv: u64 = facts.iter().map(|(_, f)| match f { Fact::OrderPaid { total, .. } => *total, _ => 0 }).sum();
            prop_assert_eq!(total.gmv.get("VND").copied().unwrap_or(0), gmv);
            let refunded: u64 = facts.iter().map(|(_, f)| match f { Fact::OrderRefunded { amount, .. } => *amount, _ => 0 }).sum();
            prop_assert_eq!(total.refunded.get("VND").copied().unwrap_or(0), refunded);
            let shippers: BTreeSet<&str> = facts.iter().filter_map(|(_, f)| match f { Fact::Delivered { shipper_id } => Some(shipper_id.as_str()), _ => None }).collect();
            prop_assert_eq!(total.active_shippers, shippers.len() as u64);
            prop_assert_eq!(total.new_users, count(&|f| matches!(f, Fact::UserRegistered)));
            prop_assert_eq!(total.flash_sale_signups, count(&|f| matches!(f, Fact::SignUp { flash_sale: true })));
            // The top products' GMV is each product's paid amounts.
            for t in top(&hours, false, 10) {
                let want: u64 = facts.iter().map(|(_, f)| match f {
                    Fact::OrderPaid { lines, .. } => lines.iter().filter(|l| l.0 == t.id).map(|l| l.2).sum(),
                    _ => 0,
                }).sum();
                prop_assert_eq!(t.share.gmv, want);
            }
        }
    }

    #[test]
    fn a_top_list_keeps_its_bound_and_the_big_ones() {
        let mut h = Hour::default();
        for i in 0..(TOP_KEPT * 3) {
            add_share(&mut h.products, &format!("rare{i}"), 1, 1);
            add_share(&mut h.products, "big", 1, 100);
        }
        assert_eq!(h.products.len(), TOP_KEPT);
        assert_eq!(h.products["big"].gmv, 100 * (TOP_KEPT as u64 * 3));
    }
}
