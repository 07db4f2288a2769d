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

use super::facets::{Facets, Row};
use super::index::{err, Hit, IndexError, Kind, SearchIndex};
use super::text;
use crate::domain::pricing::haversine_km;
use crate::domain::GeoPoint;

/// Words of a query that are used (the rest are ignored).
pub const MAX_QUERY_TERMS: usize = 8;

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

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub total: u64,
    pub hits: Vec<Hit>,
    pub facets: Facets,
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
