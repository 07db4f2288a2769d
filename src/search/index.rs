//! The index itself: its schema, the entries it holds (one per active
//! product, shop and course), writing them, and the checkpoint stored with
//! each commit (how far the catalog feed has been applied).

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::text;
use crate::domain::GeoPoint;

/// Bumped when the schema or what is indexed changes: an index of another
/// version is rebuilt.
pub const SCHEMA_VERSION: u32 = 2;
/// Memory the writer may use before it flushes a segment.
const WRITER_HEAP: usize = 32 * 1024 * 1024;

/// What is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Product,
    Shop,
    Course,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Product => "product",
            Kind::Shop => "shop",
            Kind::Course => "course",
        }
    }

    pub(super) fn code(self) -> u64 {
        match self {
            Kind::Product => 0,
            Kind::Shop => 1,
            Kind::Course => 2,
        }
    }
}

/// One searchable thing, as the index holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    /// More words it is found by (its category, its shop's name…).
    pub extra: String,
    /// Products: their category; courses: their kind; shops: empty.
    pub category: String,
    /// Products and courses: the price in minor units.
    pub price: Option<u64>,
    pub currency: Option<String>,
    pub rating: f64,
    pub rating_count: u64,
    pub created_ms: i64,
    /// Products: their shop's; shops: their own; courses: none.
    pub location: Option<GeoPoint>,
    pub shop_id: Option<String>,
    /// Shops: the categories of their active products.
    #[serde(default)]
    pub sells: Vec<String>,
    /// Products: their brand (a facet, and words it is found by).
    #[serde(default)]
    pub brand: Option<String>,
    /// Products: `name:value` of each attribute value (a facet).
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Words it is found by that are not kept with the entry (a
    /// description's text).
    #[serde(default, skip_serializing)]
    pub body: String,
}

impl Entry {
    /// `{kind}:{id}`: the entry's unique key.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// One hit: the entry, its score and (with `near`) its distance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub category: String,
    pub price: Option<u64>,
    pub currency: Option<String>,
    /// Mean stars of approved reviews (0 without any).
    pub rating: f64,
    pub rating_count: u64,
    pub shop_id: Option<String>,
    /// Products: their brand.
    pub brand: Option<String>,
    pub location: Option<GeoPoint>,
    /// From `near`, when given.
    pub distance_km: Option<f64>,
    pub score: f32,
}

impl Hit {
    pub(super) fn of(e: Entry, distance_km: Option<f64>, score: f32) -> Hit {
        Hit {
            kind: e.kind,
            id: e.id,
            name: e.name,
            category: e.category,
            price: e.price,
            currency: e.currency,
            rating: e.rating,
            rating_count: e.rating_count,
            shop_id: e.shop_id,
            brand: e.brand,
            location: e.location,
            distance_km: distance_km.map(|d| (d * 1000.0).round() / 1000.0),
            score,
        }
    }
}

/// Suggestion answers kept at most (short prefixes × types × limits); a
/// full cache is emptied.
const SHORT_PREFIXES_KEPT: usize = 4_096;

pub(super) type SuggestKey = (String, Option<u64>, usize);

/// Suggestions of short prefixes for one generation of the index's
/// searcher: any commit makes a new generation, which empties it.
#[derive(Default)]
pub struct ShortPrefixes {
    generation: u64,
    hits: std::collections::HashMap<SuggestKey, Vec<Hit>>,
}

impl ShortPrefixes {
    pub(super) fn get(&self, generation: u64, key: &SuggestKey) -> Option<Vec<Hit>> {
        (self.generation == generation)
            .then(|| self.hits.get(key).cloned())
            .flatten()
    }

    pub(super) fn put(&mut self, generation: u64, key: SuggestKey, hits: Vec<Hit>) {
        if generation < self.generation {
            // Answered from a searcher older than the cached one.
            return;
        }
        if self.generation != generation || self.hits.len() >= SHORT_PREFIXES_KEPT {
            self.hits.clear();
            self.generation = generation;
        }
        self.hits.insert(key, hits);
    }
}

/// The index's fields.
#[derive(Clone, Copy)]
pub(super) struct Fields {
    pub key: Field,
    pub kind: Field,
    pub text: Field,
    pub prefixes: Field,
    pub category: Field,
    pub price: Field,
    pub rating: Field,
    pub popularity: Field,
    pub created: Field,
    pub lat: Field,
    pub lng: Field,
    pub shop: Field,
    pub sells: Field,
    pub brand: Field,
    /// `name:value` of each attribute value.
    pub attr: Field,
    /// The entry itself (JSON), handed back with each hit.
    pub entry: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let folded = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(text::FOLDED)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let spaced = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("whitespace")
            .set_index_option(IndexRecordOption::Basic),
    );
    let number = || NumericOptions::default().set_indexed().set_fast();
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        kind: b.add_u64_field("kind", INDEXED | FAST),
        text: b.add_text_field("text", folded),
        prefixes: b.add_text_field("prefixes", spaced),
        category: b.add_text_field("category", STRING | FAST),
        price: b.add_u64_field("price", number()),
        rating: b.add_f64_field("rating", number()),
        popularity: b.add_u64_field("popularity", FAST),
        created: b.add_i64_field("created", FAST),
        lat: b.add_f64_field("lat", number()),
        lng: b.add_f64_field("lng", number()),
        shop: b.add_text_field("shop", STRING),
        sells: b.add_text_field("sells", STRING),
        brand: b.add_text_field("brand", STRING | FAST),
        attr: b.add_text_field("attr", STRING | FAST),
        entry: b.add_text_field("entry", STORED),
    };
    (b.build(), fields)
}

/// What each commit records: the schema version, and the time (ms) up to
/// which the catalog feed has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub feed_ms: i64,
}

/// The index on disk (`data_dir/search`), its writer and reader.
pub struct SearchIndex {
    pub(super) reader: IndexReader,
    writer: Mutex<IndexWriter>,
    pub(super) fields: Fields,
    /// Suggestions for the shortest prefixes, until the index changes.
    pub(super) suggestions: Mutex<ShortPrefixes>,
}

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct IndexError(pub String);

pub(super) fn err(e: impl std::fmt::Display) -> IndexError {
    IndexError(e.to_string())
}

impl SearchIndex {
    /// Opens the index in `dir` (created if missing; wiped and created
    /// again if it is of another schema or unreadable), with the
    /// checkpoint of its last commit (`None`: it needs a full rebuild).
    pub fn open(dir: &Path) -> Result<(SearchIndex, Option<Checkpoint>), IndexError> {
        match Self::try_open(dir) {
            Ok((index, Some(cp))) if cp.version == SCHEMA_VERSION => Ok((index, Some(cp))),
            Ok((index, None)) => Ok((index, None)),
            other => {
                if let Err(e) = &other {
                    tracing::warn!(error = %e, "search index unreadable; rebuilding it");
                }
                drop(other);
                std::fs::remove_dir_all(dir).map_err(err)?;
                let (index, _) = Self::try_open(dir)?;
                Ok((index, None))
            }
        }
    }

    fn try_open(dir: &Path) -> Result<(SearchIndex, Option<Checkpoint>), IndexError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(err)?;
        let index = Index::open_or_create(directory, schema.clone()).map_err(err)?;
        if index.schema() != schema {
            return Err(IndexError("the index has another schema".into()));
        }
        index.tokenizers().register(text::FOLDED, text::analyzer());
        let checkpoint = index
            .load_metas()
            .map_err(err)?
            .payload
            .and_then(|p| serde_json::from_str::<Checkpoint>(&p).ok());
        let writer = index.writer_with_num_threads(1, WRITER_HEAP).map_err(err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        Ok((
            SearchIndex {
                reader,
                writer: Mutex::new(writer),
                fields,
                suggestions: Mutex::default(),
            },
            checkpoint,
        ))
    }

    fn document(&self, e: &Entry) -> TantivyDocument {
        let f = &self.fields;
        let mut d = doc!(
            f.key => e.key(),
            f.kind => e.kind.code(),
            f.text => text::clean(&format!(
                "{} {} {} {} {}",
                e.name,
                e.extra,
                e.brand.as_deref().unwrap_or(""),
                e.attributes
                    .iter()
                    .filter_map(|a| a.split_once(':').map(|(_, v)| v))
                    .collect::<Vec<_>>()
                    .join(" "),
                e.body
            )),
            f.prefixes => text::prefixes(&e.name),
            f.category => e.category.clone(),
            f.rating => e.rating,
            f.popularity => e.rating_count,
            f.created => e.created_ms,
            f.entry => serde_json::to_string(e).expect("entries serialize"),
        );
        if let Some(p) = e.price {
            d.add_u64(f.price, p);
        }
        if let Some(at) = e.location {
            d.add_f64(f.lat, at.lat);
            d.add_f64(f.lng, at.lng);
        }
        if let Some(s) = &e.shop_id {
            d.add_text(f.shop, s);
        }
        for c in &e.sells {
            d.add_text(f.sells, c);
        }
        if let Some(b) = &e.brand {
            d.add_text(f.brand, b);
        }
        for a in &e.attributes {
            d.add_text(f.attr, a);
        }
        d
    }

    /// Replaces the entries with these keys by `entries` (and removes the
    /// other keys): not visible until `commit`.
    pub fn apply(&self, entries: &[Entry], removed: &[String]) -> Result<(), IndexError> {
        let writer = self.writer.lock().expect("search writer");
        for key in removed {
            writer.delete_term(Term::from_field_text(self.fields.key, key));
        }
        for e in entries {
            writer.delete_term(Term::from_field_text(self.fields.key, &e.key()));
            writer.add_document(self.document(e)).map_err(err)?;
        }
        Ok(())
    }

    /// Removes every entry (before a full rebuild): not visible until
    /// `commit`.
    pub fn clear(&self) -> Result<(), IndexError> {
        self.writer
            .lock()
            .expect("search writer")
            .delete_all_documents()
            .map_err(err)?;
        Ok(())
    }

    /// Makes what was applied durable and visible, recording `feed_ms`.
    pub fn commit(&self, feed_ms: i64) -> Result<(), IndexError> {
        let mut writer = self.writer.lock().expect("search writer");
        let mut prepared = writer.prepare_commit().map_err(err)?;
        let cp = Checkpoint {
            version: SCHEMA_VERSION,
            feed_ms,
        };
        prepared.set_payload(&serde_json::to_string(&cp).expect("checkpoints serialize"));
        prepared.commit().map_err(err)?;
        drop(writer);
        self.reader.reload().map_err(err)
    }

    /// The entry stored with document `addr`.
    pub(super) fn stored(
        &self,
        searcher: &tantivy::Searcher,
        addr: tantivy::DocAddress,
    ) -> Result<Option<Entry>, IndexError> {
        use tantivy::schema::Value;
        let d: TantivyDocument = searcher.doc(addr).map_err(err)?;
        Ok(d.get_first(self.fields.entry)
            .and_then(|v| v.as_str())
            .and_then(|j| serde_json::from_str(j).ok()))
    }

    /// The entry under `key` (`{kind}:{id}`), if indexed.
    pub fn entry(&self, key: &str) -> Result<Option<Entry>, IndexError> {
        use tantivy::collector::TopDocs;
        use tantivy::query::TermQuery;
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.key, key),
            IndexRecordOption::Basic,
        );
        let Some((_, addr)) = searcher
            .search(&q, &TopDocs::with_limit(1))
            .map_err(err)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        self.stored(&searcher, addr)
    }

    /// The entries of the products of shop `shop_id` (to re-index them
    /// when the shop moves or is renamed, and to know what it sells).
    pub fn products_of(&self, shop_id: &str) -> Result<Vec<Entry>, IndexError> {
        use tantivy::collector::DocSetCollector;
        use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
        let searcher = self.reader.searcher();
        let term =
            |t: Term| -> Box<dyn Query> { Box::new(TermQuery::new(t, IndexRecordOption::Basic)) };
        let q = BooleanQuery::new(vec![
            (
                Occur::Must,
                term(Term::from_field_text(self.fields.shop, shop_id)),
            ),
            (
                Occur::Must,
                term(Term::from_field_u64(self.fields.kind, Kind::Product.code())),
            ),
        ]);
        let docs = searcher.search(&q, &DocSetCollector).map_err(err)?;
        let mut out = Vec::with_capacity(docs.len());
        for addr in docs {
            out.extend(self.stored(&searcher, addr)?);
        }
        Ok(out)
    }
}
