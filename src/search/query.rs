//! Asking the index: full-text search with filters, sorts and facets, and
//! suggestions as you type.
//!
//! A query's words must each match (AND), each exactly, or within an edit
//! distance of 1 (words of 4–7 letters) or 2 (8 and more), and the last
//! word also as the start of a word (it may still be being typed); exact
//! matches score higher. Filters (kind, category, price, rating, a
//! bounding box around `near`) are index queries; the circle around `near`
//! is then checked exactly. Every match is read once from the fast fields
//! (for the facets and the sorts), then the page is taken.

use std::collections::HashMap;
use std::ops::Bound;

use serde::Serialize;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, Term};
use utoipa::ToSchema;

use super::index::{err, Hit, IndexError, Kind, SearchIndex};
use super::text;
use crate::domain::pricing::haversine_km;
use crate::domain::GeoPoint;

/// Words of a query that are used (the rest are ignored).
pub const MAX_QUERY_TERMS: usize = 8;
/// Upper bounds of the price facet's buckets (minor units); the last
/// bucket is open.
pub const PRICE_BUCKETS: [u64; 5] = [10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first (newest first without words).
    #[default]
    Relevance,
    /// Cheapest first.
    Price,
    /// Best rated first (then most rated).
    Rating,
    Newest,
    /// Nearest first (needs `near`).
    Distance,
}

/// Prefixes this short (in letters), with no complete word before them,
/// have their suggestions kept.
const SHORT_PREFIX: usize = 2;
/// A search, checked.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub q: String,
    pub kind: Option<Kind>,
    pub category: Option<String>,
    /// Any of these categories (a tree category's subtree, as slugs).
    pub categories: Option<Vec<String>>,
    /// Shops selling something of this category.
    pub sells: Option<String>,
    /// Products of this shop.
    pub shop: Option<String>,
    /// Products of this brand (as the brand facet names it).
    pub brand: Option<String>,
    /// Products with every one of these `name:value` attribute values.
    pub attributes: Vec<String>,
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    pub min_rating: Option<f64>,
    /// A centre and a radius in km.
    pub near: Option<(GeoPoint, f64)>,
    pub sort: Sort,
    pub offset: usize,
    pub limit: usize,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub total: u64,
    pub hits: Vec<Hit>,
    pub facets: Facets,
}

/// One match, as read from the fast fields.
#[derive(Debug, Clone, Copy)]
struct Row {
    seg: SegmentOrdinal,
    doc: DocId,
    score: Score,
    price: Option<u64>,
    rating: f64,
    popularity: u64,
    created: i64,
    distance_km: Option<f64>,
    category: Option<u64>,
}

/// Collects every match with what the facets and sorts need.
struct Matches {
    near: Option<(GeoPoint, f64)>,
}

struct SegmentMatches {
    seg: SegmentOrdinal,
    near: Option<(GeoPoint, f64)>,
    price: Column<u64>,
    rating: Column<f64>,
    popularity: Column<u64>,
    created: Column<i64>,
    lat: Column<f64>,
    lng: Column<f64>,
    category: Option<StrColumn>,
    rows: Vec<Row>,
}

impl Collector for Matches {
    type Fruit = Vec<Row>;
    type Child = SegmentMatches;

    fn for_segment(
        &self,
        seg: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentMatches> {
        let ff = reader.fast_fields();
        Ok(SegmentMatches {
            seg,
            near: self.near,
            price: ff.u64("price")?,
            rating: ff.f64("rating")?,
            popularity: ff.u64("popularity")?,
            created: ff.i64("created")?,
            lat: ff.f64("lat")?,
            lng: ff.f64("lng")?,
            category: ff.str("category")?,
            rows: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Row>>) -> tantivy::Result<Vec<Row>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Vec<Row>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let at = match (self.lat.first(doc), self.lng.first(doc)) {
            (Some(lat), Some(lng)) => Some(GeoPoint { lat, lng }),
            _ => None,
        };
        let distance_km = match (self.near, at) {
            (Some((centre, radius)), Some(at)) => {
                let km = haversine_km(centre, at);
                if km > radius {
                    return;
                }
                Some(km)
            }
            (Some(_), None) => return,
            (None, _) => None,
        };
        self.rows.push(Row {
            seg: self.seg,
            doc,
            score,
            price: self.price.first(doc),
            rating: self.rating.first(doc).unwrap_or(0.0),
            popularity: self.popularity.first(doc).unwrap_or(0),
            created: self.created.first(doc).unwrap_or(0),
            distance_km,
            category: self.category.as_ref().and_then(|c| c.term_ords(doc).next()),
        });
    }

    fn harvest(self) -> Vec<Row> {
        self.rows
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
}

fn words_query(index: &SearchIndex, words: &[String]) -> Box<dyn Query> {
    let text = index.fields.text;
    let last = words.len().saturating_sub(1);
    let each: Vec<(Occur, Box<dyn Query>)> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let term = Term::from_field_text(text, w);
            let mut any: Vec<(Occur, Box<dyn Query>)> = vec![(
                Occur::Should,
                Box::new(BoostQuery::new(term_query(term.clone()), 3.0)),
            )];
            let len = w.chars().count();
            let distance = match len {
                0..=3 => 0,
                4..=7 => 1,
                _ => 2,
            };
            if distance > 0 {
                any.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term.clone(), distance, true)),
                ));
            }
            if i == last {
                let prefix = Term::from_field_text(index.fields.prefixes, w);
                any.push((Occur::Should, term_query(prefix)));
            }
            (
                Occur::Must,
                Box::new(BooleanQuery::new(any)) as Box<dyn Query>,
            )
        })
        .collect();
    Box::new(BooleanQuery::new(each))
}

fn range<T>(
    field: tantivy::schema::Field,
    from: Option<T>,
    to: Option<T>,
    term: fn(tantivy::schema::Field, T) -> Term,
) -> Box<dyn Query> {
    let bound = |v: Option<T>| v.map_or(Bound::Unbounded, |v| Bound::Included(term(field, v)));
    Box::new(RangeQuery::new(bound(from), bound(to)))
}

/// The degrees of latitude and longitude `km` spans around `at`.
fn box_around(at: GeoPoint, km: f64) -> ((f64, f64), (f64, f64)) {
    let dlat = km / 111.195;
    let dlng = km / (111.195 * at.lat.to_radians().cos().max(0.01));
    (
        (at.lat - dlat, at.lat + dlat),
        (at.lng - dlng, at.lng + dlng),
    )
}

impl SearchIndex {
    fn query(&self, p: &Params) -> Box<dyn Query> {
        let f = self.fields;
        let words: Vec<String> = text::terms(&p.q)
            .into_iter()
            .take(MAX_QUERY_TERMS)
            .collect();
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        parts.push(match words.is_empty() {
            true => (Occur::Must, Box::new(AllQuery)),
            false => (Occur::Must, words_query(self, &words)),
        });
        let filter = |q: Box<dyn Query>| (Occur::Must, q);
        if let Some(k) = p.kind {
            parts.push(filter(term_query(Term::from_field_u64(f.kind, k.code()))));
        }
        if let Some(c) = &p.category {
            parts.push(filter(term_query(Term::from_field_text(f.category, c))));
        }
        if let Some(set) = &p.categories {
            let any: Vec<(Occur, Box<dyn Query>)> = set
                .iter()
                .map(|c| {
                    (
                        Occur::Should,
                        term_query(Term::from_field_text(f.category, c)),
                    )
                })
                .collect();
            parts.push(filter(Box::new(BooleanQuery::new(any))));
        }
        if let Some(id) = &p.shop {
            parts.push(filter(term_query(Term::from_field_text(f.shop, id))));
        }
        if let Some(c) = &p.sells {
            parts.push(filter(term_query(Term::from_field_text(f.sells, c))));
        }
        if let Some(b) = &p.brand {
            parts.push(filter(term_query(Term::from_field_text(f.brand, b))));
        }
        for a in &p.attributes {
            parts.push(filter(term_query(Term::from_field_text(f.attr, a))));
        }
        if p.min_price.is_some() || p.max_price.is_some() {
            parts.push(filter(range(
                f.price,
                p.min_price,
                p.max_price,
                Term::from_field_u64,
            )));
        }
        if let Some(r) = p.min_rating {
            parts.push(filter(range(f.rating, Some(r), None, Term::from_field_f64)));
        }
        if let Some((at, km)) = p.near {
            let ((lat0, lat1), (lng0, lng1)) = box_around(at, km);
            parts.push(filter(range(
                f.lat,
                Some(lat0),
                Some(lat1),
                Term::from_field_f64,
            )));
            parts.push(filter(range(
                f.lng,
                Some(lng0),
                Some(lng1),
                Term::from_field_f64,
            )));
        }
        Box::new(BooleanQuery::new(parts))
    }

    /// Runs a search (blocking: call it off the async runtime).
    pub fn search(&self, p: &Params) -> Result<Results, IndexError> {
        let searcher = self.reader.searcher();
        let mut rows = searcher
            .search(&*self.query(p), &Matches { near: p.near })
            .map_err(err)?;
        let facets = self.facets(&searcher, &rows)?;
        let by_relevance = !text::terms(&p.q).is_empty();
        let order = |a: &Row, b: &Row| {
            match p.sort {
                Sort::Relevance if by_relevance => b.score.total_cmp(&a.score),
                Sort::Relevance | Sort::Newest => b.created.cmp(&a.created),
                Sort::Price => a
                    .price
                    .unwrap_or(u64::MAX)
                    .cmp(&b.price.unwrap_or(u64::MAX)),
                Sort::Rating => b
                    .rating
                    .total_cmp(&a.rating)
                    .then(b.popularity.cmp(&a.popularity)),
                Sort::Distance => a
                    .distance_km
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.distance_km.unwrap_or(f64::MAX)),
            }
            .then(b.created.cmp(&a.created))
            .then((a.seg, a.doc).cmp(&(b.seg, b.doc)))
        };
        // Only the rows up to the page's end need their order: select
        // them (linear), then sort those.
        let end = (p.offset + p.limit).min(rows.len());
        if end > 0 && end < rows.len() {
            rows.select_nth_unstable_by(end - 1, order);
        }
        rows[..end].sort_unstable_by(order);
        let mut hits = Vec::with_capacity(p.limit);
        for r in rows.iter().skip(p.offset).take(p.limit) {
            if let Some(e) = self.stored(&searcher, DocAddress::new(r.seg, r.doc))? {
                hits.push(Hit::of(e, r.distance_km, r.score));
            }
        }
        Ok(Results {
            total: rows.len() as u64,
            hits,
            facets,
        })
    }

    fn facets(&self, searcher: &tantivy::Searcher, rows: &[Row]) -> Result<Facets, IndexError> {
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

    /// Up to `limit` names that the words typed so far could be: every
    /// word but the last complete, the last a prefix; most rated first.
    pub fn suggest(
        &self,
        q: &str,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        use tantivy::collector::TopDocs;
        let f = self.fields;
        let mut words: Vec<String> = text::terms(q).into_iter().take(MAX_QUERY_TERMS).collect();
        let Some(last) = words.pop() else {
            return Ok(Vec::new());
        };
        let prefix: String = last.chars().take(text::MAX_PREFIX).collect();
        let searcher = self.reader.searcher();
        // Nothing but a prefix of one or two letters: the longest posting
        // lists (every name with a word so begun), and what everyone
        // types first. Their answers are kept until the index changes.
        let short = words.is_empty() && prefix.chars().count() <= SHORT_PREFIX;
        let key = (prefix.clone(), kind.map(Kind::code), limit);
        let generation = searcher.generation().generation_id();
        if short {
            let cache = self.suggestions.lock().expect("suggestions");
            if let Some(hits) = cache.get(generation, &key) {
                return Ok(hits);
            }
        }
        let mut parts: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            term_query(Term::from_field_text(f.prefixes, &prefix)),
        )];
        for w in &words {
            parts.push((Occur::Must, term_query(Term::from_field_text(f.text, w))));
        }
        if let Some(k) = kind {
            parts.push((
                Occur::Must,
                term_query(Term::from_field_u64(f.kind, k.code())),
            ));
        }
        let top = searcher
            .search(
                &BooleanQuery::new(parts),
                &TopDocs::with_limit(limit * 3)
                    .order_by_u64_field("popularity", tantivy::Order::Desc),
            )
            .map_err(err)?;
        let mut out: Vec<Hit> = Vec::with_capacity(limit);
        for (_, addr) in top {
            let Some(e) = self.stored(&searcher, addr)? else {
                continue;
            };
            if out.iter().any(|h| h.name.eq_ignore_ascii_case(&e.name)) {
                continue;
            }
            out.push(Hit::of(e, None, 0.0));
            if out.len() == limit {
                break;
            }
        }
        if short {
            let mut cache = self.suggestions.lock().expect("suggestions");
            cache.put(generation, key, out.clone());
        }
        Ok(out)
    }

    /// The entries under `keys` (`{kind}:{id}`), in that order, each with
    /// its given score; keys not indexed (inactive, gone) are skipped.
    pub fn hits(&self, keys: &[(String, f32)]) -> Result<Vec<Hit>, IndexError> {
        let mut out = Vec::with_capacity(keys.len());
        for (key, score) in keys {
            if let Some(e) = self.entry(key)? {
                out.push(Hit::of(e, None, *score));
            }
        }
        Ok(out)
    }

    /// Up to `limit` other products like product `id`: sharing words of
    /// its name (each word, rarer ones scoring higher) or its category
    /// (which adds to the score); best first. Empty when `id` is not
    /// indexed.
    pub fn similar(&self, id: &str, limit: usize) -> Result<Vec<Hit>, IndexError> {
        use tantivy::collector::TopDocs;
        let f = self.fields;
        let key = format!("{}:{id}", Kind::Product.as_str());
        let Some(e) = self.entry(&key)? else {
            return Ok(Vec::new());
        };
        let mut like: Vec<(Occur, Box<dyn Query>)> = text::terms(&e.name)
            .into_iter()
            .take(MAX_QUERY_TERMS)
            .map(|w| (Occur::Should, term_query(Term::from_field_text(f.text, &w))))
            .collect();
        if !e.category.is_empty() {
            let category = term_query(Term::from_field_text(f.category, &e.category));
            like.push((Occur::Should, Box::new(BoostQuery::new(category, 2.0))));
        }
        let q = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(BooleanQuery::new(like)) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                term_query(Term::from_field_u64(f.kind, Kind::Product.code())),
            ),
            (
                Occur::MustNot,
                term_query(Term::from_field_text(f.key, &key)),
            ),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&q, &TopDocs::with_limit(limit))
            .map_err(err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            out.extend(
                self.stored(&searcher, addr)?
                    .map(|e| Hit::of(e, None, score)),
            );
        }
        Ok(out)
    }
}
