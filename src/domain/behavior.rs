//! What people do, as signals for discovery: trending (time-decayed
//! activity counts per product and per category), recently viewed (a
//! person's last views) and bought together (how often two products were
//! in one checkout). Pure and bounded: every structure here has a fixed
//! capacity and what happens at it is chosen below.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Weight of one view in trending.
pub const VIEW_WEIGHT: f64 = 1.0;
/// Weight of one checkout holding the product (whatever the quantity: a
/// bulk buyer counts once).
pub const ORDER_WEIGHT: f64 = 10.0;
/// A person's views kept, newest first.
pub const RECENT_MAX: usize = 50;
/// Partners kept per product for "bought together".
pub const PARTNERS_MAX: usize = 50;
/// Distinct products of one checkout that count as bought together (the
/// first ones, in cart order): one checkout adds at most this × (this − 1)
/// pair counts.
pub const BASKET_MAX: usize = 20;

/// A count that halves every `half_life_ms`: `value` as of `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Decayed {
    pub value: f64,
    pub at_ms: i64,
}

impl Decayed {
    /// The value at `now_ms` (a moment before `at_ms` — a clock behind
    /// another — sees the value unchanged, never grown).
    pub fn at(&self, now_ms: i64, half_life_ms: i64) -> f64 {
        let age = (now_ms - self.at_ms).max(0) as f64;
        self.value * (-age / half_life_ms.max(1) as f64).exp2()
    }

    /// Adds `weight` happening at `at_ms`; the order of additions does not
    /// matter (up to rounding).
    pub fn add(&mut self, weight: f64, at_ms: i64, half_life_ms: i64) {
        if at_ms >= self.at_ms {
            self.value = self.at(at_ms, half_life_ms) + weight;
            self.at_ms = at_ms;
        } else {
            let age = (self.at_ms - at_ms) as f64;
            self.value += weight * (-age / half_life_ms.max(1) as f64).exp2();
        }
    }
}

/// One product's activity in a window, as a node reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub product_id: String,
    pub category: String,
    /// Distinct people who viewed it in the window.
    pub views: u32,
    /// Checkouts that held it in the window.
    pub orders: u32,
}

impl Activity {
    pub fn weight(&self) -> f64 {
        f64::from(self.views) * VIEW_WEIGHT + f64::from(self.orders) * ORDER_WEIGHT
    }
}

/// A ranked thing and its decayed score now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ranked {
    pub id: String,
    pub score: f64,
}

/// Trending products and categories: the decayed activity of at most
/// `capacity` products (past it, the lowest-scoring now are forgotten) and
/// of their categories (at most `capacity` too).
#[derive(Debug, Clone)]
pub struct Trending {
    half_life_ms: i64,
    capacity: usize,
    products: HashMap<String, (String, Decayed)>,
    categories: HashMap<String, Decayed>,
}

impl Trending {
    pub fn new(half_life_ms: i64, capacity: usize) -> Trending {
        Trending {
            half_life_ms: half_life_ms.max(1),
            capacity: capacity.max(1),
            products: HashMap::new(),
            categories: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Counts `a`, which happened at `at_ms`. Constant work, except when a
    /// map has grown a quarter past its capacity: it is then cut back to
    /// it (so that cost is spread over the quarter's additions).
    pub fn record(&mut self, a: &Activity, at_ms: i64) {
        let w = a.weight();
        if w <= 0.0 {
            return;
        }
        let hl = self.half_life_ms;
        let entry = self
            .products
            .entry(a.product_id.clone())
            .or_insert_with(|| (a.category.clone(), Decayed::default()));
        entry.0.clone_from(&a.category);
        entry.1.add(w, at_ms, hl);
        self.categories
            .entry(a.category.clone())
            .or_default()
            .add(w, at_ms, hl);
        let slack = self.capacity + self.capacity / 4;
        if self.products.len() > slack {
            keep_top(&mut self.products, self.capacity, |(_, d)| d.at(at_ms, hl));
        }
        if self.categories.len() > slack {
            keep_top(&mut self.categories, self.capacity, |d| d.at(at_ms, hl));
        }
    }

    /// The `limit` products scoring highest at `now_ms` (of `category`
    /// only, when given), highest first.
    pub fn top(&self, category: Option<&str>, now_ms: i64, limit: usize) -> Vec<Ranked> {
        let hl = self.half_life_ms;
        rank(
            self.products
                .iter()
                .filter(|(_, (c, _))| category.is_none_or(|want| c == want))
                .map(|(id, (_, d))| (id, d.at(now_ms, hl))),
            limit,
        )
    }

    /// The `limit` categories scoring highest at `now_ms`.
    pub fn top_categories(&self, now_ms: i64, limit: usize) -> Vec<Ranked> {
        let hl = self.half_life_ms;
        rank(
            self.categories.iter().map(|(c, d)| (c, d.at(now_ms, hl))),
            limit,
        )
    }
}

/// The `limit` highest scores, highest first (ties by id).
fn rank<'a>(scores: impl Iterator<Item = (&'a String, f64)>, limit: usize) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = scores
        .filter(|(_, s)| *s > 0.0)
        .map(|(id, score)| Ranked {
            id: id.clone(),
            score,
        })
        .collect();
    let by_score = |a: &Ranked, b: &Ranked| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id));
    if all.len() > limit {
        all.select_nth_unstable_by(limit, by_score);
        all.truncate(limit);
    }
    all.sort_by(by_score);
    all
}

/// Keeps the `n` entries of `map` scoring highest (ties: by key).
fn keep_top<V>(map: &mut HashMap<String, V>, n: usize, score: impl Fn(&V) -> f64) {
    if map.len() <= n {
        return;
    }
    let mut all: Vec<(f64, String)> = map.iter().map(|(k, v)| (score(v), k.clone())).collect();
    let cut = all.len() - n;
    all.select_nth_unstable_by(cut, |a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    for (_, k) in &all[..cut] {
        map.remove(k);
    }
}

/// A person's last views, newest first, each product once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentlyViewed {
    /// `(product id, viewed at ms)`, newest first, at most `RECENT_MAX`.
    pub items: Vec<(String, i64)>,
}

impl RecentlyViewed {
    /// Records a view: the product moves to the front; the oldest beyond
    /// `RECENT_MAX` is dropped.
    pub fn view(&mut self, product_id: &str, at_ms: i64) {
        self.items.retain(|(p, _)| p != product_id);
        self.items.insert(0, (product_id.to_owned(), at_ms));
        self.items.truncate(RECENT_MAX);
    }

    /// Merges views from elsewhere (this node's newer ones, another node's
    /// list): each product at its latest view, newest first — views of
    /// the same millisecond in the order given, `views` before these —
    /// at most `RECENT_MAX`.
    pub fn merge(&mut self, views: impl IntoIterator<Item = (String, i64)>) {
        let mut all: Vec<(String, i64)> = views.into_iter().collect();
        all.append(&mut self.items);
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for (p, at) in &all {
            let t = latest.entry(p).or_insert(*at);
            *t = (*t).max(*at);
        }
        let mut kept: Vec<(String, i64)> = Vec::with_capacity(RECENT_MAX.min(all.len()));
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (p, at) in &all {
            if latest[p.as_str()] == *at && seen.insert(p) {
                kept.push((p.clone(), *at));
            }
        }
        kept.sort_by_key(|v| std::cmp::Reverse(v.1));
        kept.truncate(RECENT_MAX);
        self.items = kept;
    }
}

/// How often other products were bought together with one product, kept
/// for its `PARTNERS_MAX` most frequent partners by the space-saving rule:
/// a new partner arriving when the list is full replaces the least counted
/// one and starts from that count. Counts are therefore upper bounds, and
/// any partner bought together with it more often than (all its pair
/// counts) / `PARTNERS_MAX` times is certain to be kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partners {
    pub counts: HashMap<String, u64>,
}

impl Partners {
    pub fn add(&mut self, partner: &str, n: u64) {
        if let Some(c) = self.counts.get_mut(partner) {
            *c += n;
            return;
        }
        if self.counts.len() < PARTNERS_MAX {
            self.counts.insert(partner.to_owned(), n);
            return;
        }
        let (least, min) = self
            .counts
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(k, v)| (k.clone(), *v))
            .expect("full, so not empty");
        self.counts.remove(&least);
        self.counts.insert(partner.to_owned(), min + n);
    }

    /// Sums several lists (one per node) into one, bounded the same way.
    pub fn merged<'a>(lists: impl IntoIterator<Item = &'a Partners>) -> Partners {
        let mut sum: HashMap<String, u64> = HashMap::new();
        for l in lists {
            for (k, v) in &l.counts {
                *sum.entry(k.clone()).or_default() += v;
            }
        }
        let mut all: Vec<(String, u64)> = sum.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(PARTNERS_MAX);
        Partners {
            counts: all.into_iter().collect(),
        }
    }

    /// The `limit` most counted partners, most first.
    pub fn top(&self, limit: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> =
            self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}

/// The distinct products of a checkout that count as bought together:
/// the first `BASKET_MAX` distinct ones, in order.
pub fn basket<'a>(products: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in products {
        if out.len() == BASKET_MAX {
            break;
        }
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
