//! Search use cases: queries and suggestions over this node's index, and
//! the indexer that keeps the index equal to the catalog: it tails the
//! catalog feed (every product, shop and course change, and their rating
//! changes, written in the same commit as their events), re-reading each
//! changed thing from its read table, and rebuilds the index from the read
//! tables when it is missing, of another schema, or further behind than
//! the feed keeps.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::actors::course::COURSES_TABLE;
use crate::actors::product::PRODUCTS_TABLE;
use crate::actors::rating::{RatingEntity, RATINGS};
use crate::actors::shop::SHOPS_TABLE;
use crate::actors::Entity;
use crate::domain::catalog::{Course, Product, Shop};
use crate::domain::review::RatingSummary;
use crate::search::{Entry, Hit, Kind, Params, Results, SearchIndex};
use crate::service::platform::feed::{self, Limits, Tail};
use crate::service::ServiceError;
use crate::store::tables::CATALOG_FEED;
use crate::store::{codec, Store};

/// Feed rows are kept this long; an index further behind is rebuilt.
pub const FEED_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Each round re-reads the feed from this long before its checkpoint: a
/// change committed late (its row dated when it was decided) is still seen.
/// The checkpoint never passes this node's clock, so a row dated by a
/// node whose clock runs ahead does not hide the others' (clocks within
/// this of each other lose nothing; cluster leases need them close too).
pub const FEED_OVERLAP_MS: i64 = 2_000;
/// A round applies at most 5,000 changes (more wait for the next) and
/// reads at most 100,000 feed rows, counting the overlap's read again.
const FEED_ROUND: Limits = Limits {
    overlap_ms: FEED_OVERLAP_MS,
    rows: 5_000,
    read: 100_000,
};
const PAGE: usize = 1_000;

/// Where the index lives.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub dir: PathBuf,
}

pub struct Search {
    pub(in crate::service) index: Arc<SearchIndex>,
    pub(in crate::service) store: Arc<dyn Store>,
    /// How far the feed has been applied; no checkpoint until the first
    /// rebuild or catch-up.
    tail: tokio::sync::Mutex<Tail>,
    pub(in crate::service) duty: crate::cluster::Duty,
    metrics: Arc<crate::metrics::Metrics>,
}

fn unavailable(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

/// Runs blocking index work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::search::IndexError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}

fn product_entry(p: &Product, shop: Option<&Shop>, rating: Option<&RatingSummary>) -> Entry {
    Entry {
        kind: Kind::Product,
        id: p.id.to_string(),
        name: p.name.clone(),
        extra: format!(
            "{} {}",
            p.category,
            shop.map(|s| s.name.as_str()).unwrap_or("")
        ),
        category: p.category.clone(),
        price: Some(p.price),
        currency: Some(p.currency.clone()),
        rating: rating.map_or(0.0, |r| r.average),
        rating_count: rating.map_or(0, |r| r.count),
        created_ms: p.created_at.timestamp_millis(),
        location: shop.map(|s| s.location),
        shop_id: Some(p.shop_id.to_string()),
        sells: Vec::new(),
        brand: p.brand.clone(),
        attributes: p
            .attributes
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| format!("{name}:{v}")))
            .collect(),
        body: p
            .description
            .as_ref()
            .map(|d| d.plain_text())
            .unwrap_or_default(),
    }
}

fn shop_entry(s: &Shop, rating: Option<&RatingSummary>, sells: BTreeSet<String>) -> Entry {
    Entry {
        kind: Kind::Shop,
        id: s.id.to_string(),
        name: s.name.clone(),
        extra: s.address.clone(),
        category: String::new(),
        price: None,
        currency: None,
        rating: rating.map_or(0.0, |r| r.average),
        rating_count: rating.map_or(0, |r| r.count),
        created_ms: s.created_at.timestamp_millis(),
        location: Some(s.location),
        shop_id: Some(s.id.to_string()),
        sells: sells.into_iter().collect(),
        brand: None,
        attributes: Vec::new(),
        body: String::new(),
    }
}

fn course_entry(c: &Course) -> Entry {
    let kind = serde_json::to_value(c.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Entry {
        kind: Kind::Course,
        id: c.id.clone(),
        name: c.title.clone(),
        extra: kind.clone(),
        category: kind,
        price: Some(c.price),
        currency: Some(c.currency.clone()),
        rating: 0.0,
        rating_count: 0,
        created_ms: c.created_at.timestamp_millis(),
        location: None,
        shop_id: None,
        sells: Vec::new(),
        brand: None,
        attributes: Vec::new(),
        body: c
            .description
            .as_ref()
            .map(|d| d.plain_text())
            .into_iter()
            .chain(c.syllabus.iter().map(|p| p.title.clone()))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl Search {
    /// Opens the index in `cfg.dir`.
    pub fn open(
        cfg: &SearchConfig,
        store: Arc<dyn Store>,
        duty: crate::cluster::Duty,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Search, ServiceError> {
        let (index, checkpoint) = SearchIndex::open(&cfg.dir).map_err(unavailable)?;
        Ok(Search {
            index: Arc::new(index),
            store,
            tail: tokio::sync::Mutex::new(Tail::at(checkpoint.map(|c| c.feed_ms))),
            duty,
            metrics,
        })
    }

    pub async fn search(&self, p: Params) -> Result<Results, ServiceError> {
        let index = self.index.clone();
        blocking(move || index.search(&p)).await
    }

    pub async fn suggest(
        &self,
        q: String,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Hit>, ServiceError> {
        let index = self.index.clone();
        blocking(move || index.suggest(&q, kind, limit)).await
    }

    /// The entries under `keys`, in order, each with its score (keys not
    /// indexed are skipped).
    pub async fn hits(&self, keys: Vec<(String, f32)>) -> Result<Vec<Hit>, ServiceError> {
        let index = self.index.clone();
        blocking(move || index.hits(&keys)).await
    }

    /// Products like product `id` (none when it is not indexed).
    pub async fn similar(&self, id: String, limit: usize) -> Result<Vec<Hit>, ServiceError> {
        let index = self.index.clone();
        blocking(move || index.similar(&id, limit)).await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        version: u16,
    ) -> Result<Option<T>, ServiceError> {
        crate::service::read_row(&*self.store, table, key, version).await
    }

    async fn rating(&self, key: &str) -> Result<Option<RatingSummary>, ServiceError> {
        self.get(RATINGS, key, RatingEntity::VERSION).await
    }

    /// Every row of `table`, decoded.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        version: u16,
    ) -> Result<Vec<(String, T)>, ServiceError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan(table, "", after.as_deref(), PAGE).await?;
            let last = page.len() < PAGE;
            after = page.last().map(|(k, _)| k.clone());
            for (k, v) in page {
                out.push((k, codec::decode(version, &v)?));
            }
            if last {
                return Ok(out);
            }
        }
    }

    /// Builds the index again from the catalog's read tables; the feed is
    /// then applied from when the rebuild began. Returns the entries.
    pub async fn rebuild(&self) -> Result<u64, ServiceError> {
        let mut tail = self.tail.lock().await;
        let started = Utc::now().timestamp_millis();
        let ratings: HashMap<String, RatingSummary> = self
            .all::<RatingSummary>(RATINGS, RatingEntity::VERSION)
            .await?
            .into_iter()
            .collect();
        let shops: HashMap<String, Shop> = self
            .all::<Shop>(SHOPS_TABLE, crate::actors::shop::ShopEntity::VERSION)
            .await?
            .into_iter()
            .collect();
        let mut entries = Vec::new();
        let mut sells: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (_, p) in self
            .all::<Product>(
                PRODUCTS_TABLE,
                crate::actors::product::ProductEntity::VERSION,
            )
            .await?
        {
            if p.on_sale() {
                let rating = ratings.get(&format!("product:{}", p.id));
                entries.push(product_entry(&p, shops.get(p.shop_id.as_str()), rating));
                sells
                    .entry(p.shop_id.to_string())
                    .or_default()
                    .insert(p.category);
            }
        }
        for s in shops.values().filter(|s| s.hidden.is_none()) {
            let rating = ratings.get(&format!("shop:{}", s.id));
            entries.push(shop_entry(
                s,
                rating,
                sells.remove(s.id.as_str()).unwrap_or_default(),
            ));
        }
        for (_, c) in self
            .all::<Course>(COURSES_TABLE, crate::actors::course::CourseEntity::VERSION)
            .await?
        {
            entries.push(course_entry(&c));
        }
        let n = entries.len() as u64;
        let index = self.index.clone();
        blocking(move || {
            index.clear()?;
            index.apply(&entries, &[])?;
            index.commit(started)
        })
        .await?;
        tail.reset(started);
        Ok(n)
    }

    /// The entries `changed` (`{kind}:{id}` keys) now are, and the keys to
    /// remove (gone or inactive). A shop renamed or moved re-reads its
    /// products (they show its name and place); a product's change
    /// re-reads its shop (it shows what the shop sells).
    async fn hydrate(
        &self,
        changed: &BTreeSet<String>,
    ) -> Result<(Vec<Entry>, Vec<String>), ServiceError> {
        let shop_version = crate::actors::shop::ShopEntity::VERSION;
        let mut entries = Vec::new();
        let mut removed = Vec::new();
        let mut product_ids: BTreeSet<String> = BTreeSet::new();
        let mut shops: HashMap<String, Option<Shop>> = HashMap::new();
        for key in changed {
            match key.split_once(':') {
                Some(("product", id)) => {
                    product_ids.insert(id.to_owned());
                }
                Some(("shop", id)) => {
                    let shop: Option<Shop> = self.get(SHOPS_TABLE, id, shop_version).await?;
                    let before = self.indexed_entry(key).await?;
                    let moved = match (&shop, &before) {
                        (Some(s), Some(e)) => s.name != e.name || Some(s.location) != e.location,
                        _ => true,
                    };
                    if moved {
                        let of = self.products_in_index(id).await?;
                        product_ids.extend(of.into_iter().map(|e| e.id));
                    }
                    shops.insert(id.to_owned(), shop);
                }
                Some(("course", id)) => {
                    let version = crate::actors::course::CourseEntity::VERSION;
                    match self.get::<Course>(COURSES_TABLE, id, version).await? {
                        Some(c) => entries.push(course_entry(&c)),
                        None => removed.push(key.clone()),
                    }
                }
                _ => {}
            }
        }
        let mut shop_ids: BTreeSet<String> = shops.keys().cloned().collect();
        // What each changed product counted for in its shop's categories.
        let mut was: Vec<Entry> = Vec::new();
        let mut fresh: Vec<Entry> = Vec::new();
        for id in &product_ids {
            let key = format!("product:{id}");
            was.extend(self.indexed_entry(&key).await?);
            let version = crate::actors::product::ProductEntity::VERSION;
            let Some(p) = self.get::<Product>(PRODUCTS_TABLE, id, version).await? else {
                removed.push(key);
                continue;
            };
            shop_ids.insert(p.shop_id.to_string());
            if !p.on_sale() {
                removed.push(key);
                continue;
            }
            if !shops.contains_key(p.shop_id.as_str()) {
                let shop = self.get(SHOPS_TABLE, &p.shop_id, shop_version).await?;
                shops.insert(p.shop_id.to_string(), shop);
            }
            let shop = shops.get(p.shop_id.as_str()).and_then(Option::as_ref);
            fresh.push(product_entry(&p, shop, self.rating(&key).await?.as_ref()));
        }
        for id in shop_ids {
            let key = format!("shop:{id}");
            let shop = match shops.remove(&id) {
                Some(s) => s,
                None => self.get(SHOPS_TABLE, &id, shop_version).await?,
            };
            let Some(shop) = shop.filter(|s| s.hidden.is_none()) else {
                removed.push(key);
                continue;
            };
            let sells = self.sells(&id, &was, &fresh).await?;
            entries.push(shop_entry(&shop, self.rating(&key).await?.as_ref(), sells));
        }
        entries.extend(fresh);
        Ok((entries, removed))
    }

    async fn indexed_entry(&self, key: &str) -> Result<Option<Entry>, ServiceError> {
        let index = self.index.clone();
        let key = key.to_owned();
        blocking(move || index.entry(&key)).await
    }

    async fn products_in_index(&self, shop_id: &str) -> Result<Vec<Entry>, ServiceError> {
        let index = self.index.clone();
        let owned = shop_id.to_owned();
        blocking(move || index.products_of(&owned)).await
    }

    /// The categories shop `id` sells once products `was` are replaced by
    /// `fresh`: the index's category counts of its products (a facet, not
    /// a read of each), less what `was` counted, plus `fresh`.
    async fn sells(
        &self,
        id: &str,
        was: &[Entry],
        fresh: &[Entry],
    ) -> Result<BTreeSet<String>, ServiceError> {
        let of_shop = |e: &&Entry| e.shop_id.as_deref() == Some(id);
        let params = Params {
            kind: Some(Kind::Product),
            shop: Some(id.to_owned()),
            limit: 0,
            ..Params::default()
        };
        let mut counts: HashMap<String, i64> = self
            .search(params)
            .await?
            .facets
            .categories
            .into_iter()
            .map(|b| (b.value, b.count as i64))
            .collect();
        for e in was.iter().filter(of_shop) {
            *counts.entry(e.category.clone()).or_default() -= 1;
        }
        for e in fresh.iter().filter(of_shop) {
            *counts.entry(e.category.clone()).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, _)| c)
            .collect())
    }

    /// Applies the feed since the checkpoint (less the overlap); rebuilds
    /// instead when there is no checkpoint or it is older than the feed
    /// keeps. Returns the things re-indexed.
    pub async fn catch_up(&self) -> Result<usize, ServiceError> {
        let now = Utc::now().timestamp_millis();
        let mut tail = self.tail.lock().await;
        match tail.checkpoint {
            Some(cp) if cp > now - FEED_RETENTION_MS + FEED_OVERLAP_MS => {}
            _ => {
                drop(tail);
                return Ok(self.rebuild().await? as usize);
            }
        }
        let round = tail.read(&*self.store, CATALOG_FEED, FEED_ROUND).await?;
        let changed: BTreeSet<String> = round
            .rows
            .iter()
            .filter_map(|(k, _)| k.split_once('|').map(|(_, what)| what.to_owned()))
            .collect();
        let applied = round.rows.into_iter().map(|(k, _)| k);
        let cp = tail.next_checkpoint(round.newest, now);
        if !changed.is_empty() {
            let (entries, removed) = self.hydrate(&changed).await?;
            let index = self.index.clone();
            blocking(move || {
                index.apply(&entries, &removed)?;
                index.commit(cp)
            })
            .await?;
        }
        // With only rows applied before, the checkpoint still moves on
        // (the index's own copy of it does at its next commit).
        tail.advance(applied, cp, FEED_OVERLAP_MS);
        self.metrics
            .search_lag_seconds
            .set((now - cp).max(0) as f64 / 1000.0);
        Ok(changed.len())
    }

    /// Deletes feed rows older than the retention (one node's chore).
    pub async fn prune_feed(&self) -> Result<usize, ServiceError> {
        let before = Utc::now().timestamp_millis() - FEED_RETENTION_MS;
        Ok(feed::prune(&*self.store, CATALOG_FEED, before).await?)
    }

    /// Keeps the index caught up every `every` until `shutdown` flips.
    pub async fn run_indexer(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruning = feed::Pruning::new(CATALOG_FEED, FEED_RETENTION_MS);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|d| *d) => return,
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "search index not caught up; retrying");
            }
            pruning.when_due(&*self.store, &self.duty).await;
        }
    }
}
