//! The facets of a search: counts over every match (not only the page's)
//! by category, price, rating, brand and attribute value, read from the
//! index's fast columns.

use std::collections::HashMap;

use serde::Serialize;
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal};
use utoipa::ToSchema;

use super::index::{err, IndexError, SearchIndex};

/// Upper bounds of the price facet's buckets (minor units); the last
/// bucket is open.
pub const PRICE_BUCKETS: [u64; 5] = [10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    pub value: String,
    pub count: u64,
}

/// A range facet bucket: `from` ≤ value < `to` (`to` absent: no bound).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RangeBucket {
    pub from: f64,
    pub to: Option<f64>,
    pub count: u64,
}

/// An attribute's values among the matches.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttributeFacet {
    pub name: String,
    /// Most matches first; filter by one with `attribute=name:value`.
    pub values: Vec<Bucket>,
}

/// Most buckets a brand or attribute facet lists (most matches first),
/// and most attributes listed.
pub const FACET_BUCKETS: usize = 20;

/// Counts of the matches (all of them, not only the page's).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Facets {
    /// By category, largest first; `""` for what has none (shops).
    pub categories: Vec<Bucket>,
    /// By price, for what has one.
    pub price: Vec<RangeBucket>,
    /// By average rating: 4–5, 3–4, 2–3, 1–2 stars, and `from: 0, to: 1`
    /// for the unrated.
    pub rating: Vec<RangeBucket>,
    /// Products by brand (at most 20, most matches first).
    pub brands: Vec<Bucket>,
    /// Products by attribute value, per attribute (at most 20 attributes,
    /// those on most matches first; at most 20 values each).
    pub attributes: Vec<AttributeFacet>,
}

/// One match, as read from the fast fields (for the facets and the
/// sorts).
#[derive(Debug, Clone, Copy)]
pub(super) struct Row {
    pub(super) seg: SegmentOrdinal,
    pub(super) doc: DocId,
    pub(super) score: Score,
    pub(super) price: Option<u64>,
    pub(super) rating: f64,
    pub(super) popularity: u64,
    pub(super) created: i64,
    pub(super) distance_km: Option<f64>,
    pub(super) category: Option<u64>,
}

impl SearchIndex {
    pub(super) fn facets(
        &self,
        searcher: &tantivy::Searcher,
        rows: &[Row],
    ) -> Result<Facets, IndexError> {
        let mut by_ord: HashMap<(SegmentOrdinal, Option<u64>), u64> = HashMap::new();
        let mut price = vec![0u64; PRICE_BUCKETS.len() + 1];
        let mut rating = [0u64; 5];
        for r in rows {
            *by_ord.entry((r.seg, r.category)).or_default() += 1;
            if let Some(p) = r.price {
                price[PRICE_BUCKETS.iter().take_while(|b| p >= **b).count()] += 1;
            }
            let slot = match r.rating {
                x if x >= 4.0 => 0,
                x if x >= 3.0 => 1,
                x if x >= 2.0 => 2,
                x if x >= 1.0 => 3,
                _ => 4,
            };
            rating[slot] += 1;
        }
        let mut categories: HashMap<String, u64> = HashMap::new();
        for ((seg, ord), n) in by_ord {
            let mut name = String::new();
            if let Some(ord) = ord {
                let column = searcher
                    .segment_reader(seg)
                    .fast_fields()
                    .str("category")
                    .map_err(err)?;
                if let Some(c) = column {
                    c.ord_to_str(ord, &mut name).map_err(err)?;
                }
            }
            *categories.entry(name).or_default() += n;
        }
        let mut categories: Vec<Bucket> = categories
            .into_iter()
            .map(|(value, count)| Bucket { value, count })
            .collect();
        categories.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        let mut from = 0.0;
        let price = price
            .into_iter()
            .enumerate()
            .map(|(i, count)| {
                let to = PRICE_BUCKETS.get(i).map(|b| *b as f64);
                let b = RangeBucket { from, to, count };
                from = to.unwrap_or(from);
                b
            })
            .collect();
        let rating = [(4.0, 5.0), (3.0, 4.0), (2.0, 3.0), (1.0, 2.0), (0.0, 1.0)]
            .into_iter()
            .zip(rating)
            .map(|((from, to), count)| RangeBucket {
                from,
                to: Some(to),
                count,
            })
            .collect();
        let (brands, attributes) = self.labels(searcher, rows)?;
        Ok(Facets {
            categories,
            price,
            rating,
            brands,
            attributes,
        })
    }

    /// The brand and attribute facets of `rows`: each row's values read
    /// from the fast columns, counted per segment by term ordinal, then
    /// named.
    fn labels(
        &self,
        searcher: &tantivy::Searcher,
        rows: &[Row],
    ) -> Result<(Vec<Bucket>, Vec<AttributeFacet>), IndexError> {
        type Counts = HashMap<(SegmentOrdinal, u64), u64>;
        let (mut brand_ords, mut attr_ords): (Counts, Counts) = Default::default();
        let mut columns: HashMap<SegmentOrdinal, (Option<StrColumn>, Option<StrColumn>)> =
            HashMap::new();
        for r in rows {
            let (brand, attr) = match columns.entry(r.seg) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let ff = searcher.segment_reader(r.seg).fast_fields();
                    e.insert((ff.str("brand").map_err(err)?, ff.str("attr").map_err(err)?))
                }
            };
            if let Some(ord) = brand.as_ref().and_then(|c| c.term_ords(r.doc).next()) {
                *brand_ords.entry((r.seg, ord)).or_default() += 1;
            }
            if let Some(c) = attr {
                for ord in c.term_ords(r.doc) {
                    *attr_ords.entry((r.seg, ord)).or_default() += 1;
                }
            }
        }
        let name = |column: Option<&StrColumn>, ord: u64| -> Result<String, IndexError> {
            let mut s = String::new();
            if let Some(c) = column {
                c.ord_to_str(ord, &mut s).map_err(err)?;
            }
            Ok(s)
        };
        let mut brands: HashMap<String, u64> = HashMap::new();
        for ((seg, ord), n) in brand_ords {
            *brands
                .entry(name(columns[&seg].0.as_ref(), ord)?)
                .or_default() += n;
        }
        let mut values: HashMap<String, u64> = HashMap::new();
        for ((seg, ord), n) in attr_ords {
            *values
                .entry(name(columns[&seg].1.as_ref(), ord)?)
                .or_default() += n;
        }
        let top = |m: HashMap<String, u64>| -> Vec<Bucket> {
            let mut v: Vec<Bucket> = m
                .into_iter()
                .map(|(value, count)| Bucket { value, count })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            v.truncate(FACET_BUCKETS);
            v
        };
        let mut per_name: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for (pair, n) in values {
            if let Some((k, v)) = pair.split_once(':') {
                per_name
                    .entry(k.to_owned())
                    .or_default()
                    .insert(v.to_owned(), n);
            }
        }
        let mut attributes: Vec<(u64, AttributeFacet)> = per_name
            .into_iter()
            .map(|(name, m)| {
                let total = m.values().sum();
                (
                    total,
                    AttributeFacet {
                        name,
                        values: top(m),
                    },
                )
            })
            .collect();
        attributes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.name.cmp(&b.1.name)));
        attributes.truncate(FACET_BUCKETS);
        Ok((
            top(brands),
            attributes.into_iter().map(|(_, f)| f).collect(),
        ))
    }
}
