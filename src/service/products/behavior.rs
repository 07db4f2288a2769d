//! What people do, turned into discovery: views and checkouts recorded by
//! this node, trending products and categories, a person's recently
//! viewed products, what was bought together, and similar products.
//!
//! These are signals, not commitments, so they are not journal events:
//! each node buffers what it saw (bounded) and every `flush` writes it as
//! read-table rows in one group commit — the users' recently viewed lists
//! and the products' bought-together partners in rows of its own
//! (`{user}|{node}`, `{product}|{node}`: one writer each, merged when
//! read), and the window's activity to the activity feed. Every node tails
//! that feed into its in-memory trending counts (exponential decay), and
//! rebuilds them from the feed's last day when it starts. A node killed
//! loses what it buffered since its last flush (a second by default); a
//! node stopped gracefully flushes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::product::{ProductEntity, PRODUCTS_TABLE};
use crate::actors::Entity;
use crate::domain::behavior::{
    basket, Activity, Partners, Ranked, RecentlyViewed, Trending, RECENT_MAX,
};
use crate::domain::catalog::Product;
use crate::domain::DomainError;
use crate::search::Hit;
use crate::service::platform::feed::{self, Limits, Tail};
use crate::service::products::search::Search;
use crate::service::ServiceError;
use crate::store::tables::{ACTIVITY_FEED, ALSO_BOUGHT, RECENTLY_VIEWED};
use crate::store::{codec, IndexOp, Store};

/// Version tag of the rows written here.
const ROW_VERSION: u16 = 1;
/// Activity older than this is not replayed into trending after a restart
/// (with the default half-life of 6 h it then weighs 1/16 of new activity)
/// and is pruned from the feed.
pub const ACTIVITY_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Users whose views one node buffers between flushes; views of further
/// users are not recorded until the next flush.
const MAX_PENDING_USERS: usize = 10_000;
/// Products whose activity one node buffers between flushes; activity of
/// further products waits for the next window.
const MAX_PENDING_PRODUCTS: usize = 5_000;
/// Products one node's trending counts at most (past it, the lowest are
/// forgotten).
pub const TRENDING_CAPACITY: usize = 20_000;
/// Checkouts of several products one node buffers between flushes for
/// "bought together"; further ones are not counted there.
const MAX_PENDING_BASKETS: usize = 2_000;
/// A person's views of one product count in trending once this long.
pub const VIEW_REPEAT_MS: i64 = 3_600_000;
/// Rows merged per user or product (one per node that recorded them).
const MAX_NODE_ROWS: usize = 64;
/// Reads and writes in flight at once during a flush.
const FLUSH_CONCURRENCY: usize = 16;
/// Rounds of the feed one tick runs at most while behind.
const CATCH_UP_ROUNDS: usize = 100;
/// The activity feed's round: overlap (late rows are still seen) and bounds.
const ACTIVITY_ROUND: Limits = Limits {
    overlap_ms: 5_000,
    rows: 2_000,
    read: 20_000,
};

#[derive(Debug, Clone)]
pub struct BehaviorConfig {
    /// Trending counts halve every this long.
    pub half_life_ms: i64,
    /// This node's name: the second half of its rows' keys.
    pub node: String,
}

/// What this node saw since its last flush.
#[derive(Default)]
struct Pending {
    /// A user's views, as a list of the same bound as the stored one.
    views: HashMap<String, RecentlyViewed>,
    /// The category of each product viewed.
    categories: HashMap<String, String>,
    /// Checkouts that held each product.
    orders: HashMap<String, u32>,
    /// Checkouts' distinct products (those of more than one).
    baskets: Vec<Vec<String>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.views.is_empty() && self.orders.is_empty()
    }
}

/// A recently viewed product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Viewed {
    #[serde(flatten)]
    pub product: Hit,
    pub viewed_at: chrono::DateTime<Utc>,
}

pub struct Behavior {
    store: Arc<dyn Store>,
    search: Arc<Search>,
    cfg: BehaviorConfig,
    pending: Mutex<Pending>,
    /// The views being written by a flush, shown to readers until then.
    in_flight: Mutex<Arc<HashMap<String, RecentlyViewed>>>,
    trending: RwLock<Trending>,
    tail: tokio::sync::Mutex<Tail>,
    duty: crate::cluster::Duty,
    metrics: Arc<crate::metrics::Metrics>,
    /// One flush at a time: each reads and rewrites this node's rows.
    flushing: tokio::sync::Mutex<()>,
}

/// A row's value; an unreadable row (of another version) is logged and
/// read as empty, so that it cannot stop every later flush or read.
fn decode<T: serde::de::DeserializeOwned + Default>(key: &str, v: &[u8]) -> T {
    codec::decode(ROW_VERSION, v).unwrap_or_else(|e| {
        tracing::warn!(%key, error = %e, "behaviour row unreadable; read as empty");
        T::default()
    })
}

/// `read(key)` for each of `keys`, `FLUSH_CONCURRENCY` at a time, each
/// answer beside its key.
async fn read_each<T, F, Fut>(keys: Vec<String>, read: F) -> Result<Vec<(String, T)>, ServiceError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(FLUSH_CONCURRENCY) {
        let reads = chunk.iter().map(|k| read(k.clone()));
        for (k, row) in chunk
            .iter()
            .zip(futures_util::future::join_all(reads).await)
        {
            out.push((k.clone(), row?));
        }
    }
    Ok(out)
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(ROW_VERSION, v).expect("plain records always encode")
}

impl Behavior {
    pub fn new(
        store: Arc<dyn Store>,
        search: Arc<Search>,
        cfg: BehaviorConfig,
        duty: crate::cluster::Duty,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Behavior {
        let now = Utc::now().timestamp_millis();
        Behavior {
            trending: RwLock::new(Trending::new(cfg.half_life_ms, TRENDING_CAPACITY)),
            // Trending starts from the feed's last day.
            tail: tokio::sync::Mutex::new(Tail::at(Some(
                now - ACTIVITY_RETENTION_MS + ACTIVITY_ROUND.overlap_ms,
            ))),
            store,
            search,
            cfg,
            pending: Mutex::new(Pending::default()),
            in_flight: Mutex::default(),
            duty,
            metrics,
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn dropped(&self, kind: &'static str) {
        self.metrics
            .behavior_dropped
            .get_or_create(&crate::metrics::KindLabels { kind })
            .inc();
    }

    async fn product(&self, id: &str) -> Result<Option<Product>, ServiceError> {
        crate::service::read_row(&*self.store, PRODUCTS_TABLE, id, ProductEntity::VERSION).await
    }

    /// Records that `user_id` viewed `product_id` (an active product, else
    /// 422 on the body's `product_id`).
    pub async fn view(&self, user_id: &str, product_id: &str) -> Result<(), ServiceError> {
        let product = match uuid::Uuid::try_parse(product_id) {
            Ok(_) => self.product(product_id).await?,
            Err(_) => None,
        };
        let Some(product) = product.filter(|p| p.on_sale()) else {
            return Err(DomainError::invalid("product_id", "no such active product").into());
        };
        let now = Utc::now().timestamp_millis();
        let mut p = self.pending.lock().expect("pending");
        let known = p.categories.contains_key(product_id);
        if (!p.views.contains_key(user_id) && p.views.len() >= MAX_PENDING_USERS)
            || (!known && p.categories.len() >= MAX_PENDING_PRODUCTS)
        {
            self.dropped("view");
            return Ok(());
        }
        p.views
            .entry(user_id.to_owned())
            .or_default()
            .view(product_id, now);
        if !known {
            p.categories.insert(product_id.to_owned(), product.category);
        }
        Ok(())
    }

    /// Records a checkout of `products` (trending counts each once; the
    /// first distinct ones count as bought together).
    pub fn ordered<'a>(&self, products: impl IntoIterator<Item = &'a str>) {
        let b = basket(products);
        let mut p = self.pending.lock().expect("pending");
        for id in &b {
            let room = p.orders.len() < MAX_PENDING_PRODUCTS;
            match p.orders.get_mut(id.as_str()) {
                Some(n) => *n += 1,
                None if room => {
                    p.orders.insert(id.clone(), 1);
                }
                None => self.dropped("order"),
            }
        }
        if b.len() > 1 && p.baskets.len() < MAX_PENDING_BASKETS {
            p.baskets.push(b);
        } else if b.len() > 1 {
            self.dropped("basket");
        }
    }

    /// Drops what this node buffered of `user`'s views (an erasure), after
    /// any flush under way has written.
    pub async fn forget(&self, user: &str) {
        let _one = self.flushing.lock().await;
        self.pending.lock().expect("pending").views.remove(user);
    }

    /// Writes what was buffered: recently viewed and bought-together rows
    /// of this node, and the window's activity to the feed. A person's
    /// views of a product count in trending once an hour: a view is not
    /// counted when their stored lists (every node's) hold a view of it
    /// less than `VIEW_REPEAT_MS` older.
    pub async fn flush(&self) -> Result<(), ServiceError> {
        let _one = self.flushing.lock().await;
        let mut pending = std::mem::take(&mut *self.pending.lock().expect("pending"));
        if pending.is_empty() {
            return Ok(());
        }
        // Still shown to their readers until written.
        let views = Arc::new(std::mem::take(&mut pending.views));
        *self.in_flight.lock().expect("in flight") = views.clone();
        let written = self.write(&views, pending).await;
        *self.in_flight.lock().expect("in flight") = Arc::default();
        written
    }

    async fn write(
        &self,
        views: &HashMap<String, RecentlyViewed>,
        pending: Pending,
    ) -> Result<(), ServiceError> {
        let node = &self.cfg.node;
        let mut ops: Vec<IndexOp> = Vec::new();
        let mut viewers: HashMap<&str, u32> = HashMap::new();
        let users: Vec<&String> = views.keys().collect();
        let prefixes = users.iter().map(|u| format!("{u}|")).collect();
        let stored = read_each(prefixes, |prefix| {
            let store = self.store.clone();
            async move {
                store
                    .scan(RECENTLY_VIEWED, &prefix, None, MAX_NODE_ROWS)
                    .await
            }
        })
        .await?;
        for (user, (_, rows)) in users.into_iter().zip(stored) {
            let key = format!("{user}|{node}");
            let mut own = RecentlyViewed::default();
            let mut before: HashMap<String, i64> = HashMap::new();
            for (k, v) in rows {
                let list: RecentlyViewed = decode(&k, &v);
                for (p, at) in &list.items {
                    let t = before.entry(p.clone()).or_insert(*at);
                    *t = (*t).max(*at);
                }
                if k == key {
                    own = list;
                }
            }
            for (p, at) in &views[user].items {
                if before.get(p).is_none_or(|t| at - t >= VIEW_REPEAT_MS) {
                    *viewers.entry(p.as_str()).or_default() += 1;
                }
            }
            own.merge(views[user].items.iter().cloned());
            ops.push(IndexOp::Put {
                table: RECENTLY_VIEWED,
                key,
                value: encode(&own),
            });
        }
        // Pairs of each basket, summed per product.
        let mut pairs: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
        for b in &pending.baskets {
            for p in b {
                for q in b.iter().filter(|q| *q != p) {
                    *pairs.entry(p).or_default().entry(q).or_default() += 1;
                }
            }
        }
        let pairs: Vec<(&str, HashMap<&str, u64>)> = pairs.into_iter().collect();
        let keys = pairs.iter().map(|(p, _)| format!("{p}|{node}")).collect();
        let rows = read_each(keys, |key| {
            let store = self.store.clone();
            async move { store.get(ALSO_BOUGHT, &key).await }
        })
        .await?;
        for ((key, row), (_, adds)) in rows.into_iter().zip(pairs) {
            let mut partners: Partners =
                row.as_deref().map(|v| decode(&key, v)).unwrap_or_default();
            let mut adds: Vec<(&str, u64)> = adds.into_iter().collect();
            adds.sort_unstable();
            for (q, n) in adds {
                partners.add(q, n);
            }
            ops.push(IndexOp::Put {
                table: ALSO_BOUGHT,
                key,
                value: encode(&partners),
            });
        }
        let blank = |id: &str| Activity {
            product_id: id.to_owned(),
            category: pending.categories.get(id).cloned().unwrap_or_default(),
            views: 0,
            orders: 0,
        };
        let mut activity: HashMap<String, Activity> = HashMap::new();
        for (id, n) in viewers {
            activity
                .entry(id.to_owned())
                .or_insert_with(|| blank(id))
                .views += n;
        }
        for (id, n) in &pending.orders {
            activity
                .entry(id.clone())
                .or_insert_with(|| blank(id))
                .orders += n;
        }
        let mut activity: Vec<Activity> = activity.into_values().collect();
        if activity.len() > MAX_PENDING_PRODUCTS {
            activity.sort_by(|a, b| b.weight().total_cmp(&a.weight()));
            for _ in activity.drain(MAX_PENDING_PRODUCTS..) {
                self.dropped("activity");
            }
        }
        for a in activity.iter_mut().filter(|a| a.category.is_empty()) {
            if let Some(p) = self.product(&a.product_id).await? {
                a.category = p.category;
            }
        }
        if !activity.is_empty() {
            let at = Utc::now().timestamp_millis();
            ops.push(IndexOp::Put {
                table: ACTIVITY_FEED,
                key: format!("{at:020}|{node}"),
                value: encode(&activity),
            });
        }
        self.store.write_rows(ops).await?;
        Ok(())
    }

    /// Folds the activity feed's new rows (every node's) into trending.
    /// Returns the rows folded.
    pub async fn catch_up(&self) -> Result<usize, ServiceError> {
        let mut tail = self.tail.lock().await;
        let round = tail
            .read(&*self.store, ACTIVITY_FEED, ACTIVITY_ROUND)
            .await?;
        let mut keys = Vec::with_capacity(round.rows.len());
        {
            let mut trending = self.trending.write().expect("trending");
            for (key, v) in round.rows {
                let at: i64 = key
                    .split_once('|')
                    .and_then(|(ms, _)| ms.parse().ok())
                    .unwrap_or_default();
                for a in decode::<Vec<Activity>>(&key, &v) {
                    trending.record(&a, at);
                }
                keys.push(key);
            }
        }
        let n = keys.len();
        let cp = tail.next_checkpoint(round.newest, Utc::now().timestamp_millis());
        tail.advance(keys, cp, ACTIVITY_ROUND.overlap_ms);
        Ok(n)
    }

    /// Hits for ranked products, in rank order, skipping what is no longer
    /// listed (inactive, gone); at most `limit`.
    async fn hits(
        &self,
        ranked: Vec<(String, f32)>,
        limit: usize,
    ) -> Result<Vec<Hit>, ServiceError> {
        let keys = ranked
            .into_iter()
            .map(|(id, score)| (format!("product:{id}"), score))
            .collect();
        let mut hits = self.search.hits(keys).await?;
        hits.truncate(limit);
        Ok(hits)
    }

    /// The `limit` products trending now (of `category`, when given), each
    /// with its decayed score.
    pub async fn trending(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Hit>, ServiceError> {
        let now = Utc::now().timestamp_millis();
        // Twice as many, for those no longer listed.
        let top: Vec<Ranked> =
            self.trending
                .read()
                .expect("trending")
                .top(category, now, limit * 2);
        self.hits(
            top.into_iter().map(|r| (r.id, r.score as f32)).collect(),
            limit,
        )
        .await
    }

    /// The `limit` categories trending now.
    pub fn trending_categories(&self, limit: usize) -> Vec<Ranked> {
        let now = Utc::now().timestamp_millis();
        self.trending
            .read()
            .expect("trending")
            .top_categories(now, limit)
    }

    /// `user_id`'s last viewed products still listed, newest first (what
    /// this node has not flushed yet included).
    pub async fn recently_viewed(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Viewed>, ServiceError> {
        let rows = self
            .store
            .scan(RECENTLY_VIEWED, &format!("{user_id}|"), None, MAX_NODE_ROWS)
            .await?;
        let mut list = RecentlyViewed::default();
        for (k, v) in rows {
            list.merge(decode::<RecentlyViewed>(&k, &v).items);
        }
        if let Some(p) = self.in_flight.lock().expect("in flight").get(user_id) {
            list.merge(p.items.clone());
        }
        if let Some(p) = self.pending.lock().expect("pending").views.get(user_id) {
            list.merge(p.items.clone());
        }
        let at: HashMap<String, i64> = list.items.iter().cloned().collect();
        let hits = self
            .hits(
                list.items.into_iter().map(|(id, _)| (id, 0.0)).collect(),
                limit.min(RECENT_MAX),
            )
            .await?;
        Ok(hits
            .into_iter()
            .map(|h| Viewed {
                viewed_at: chrono::DateTime::from_timestamp_millis(at[&h.id]).unwrap_or_default(),
                product: h,
            })
            .collect())
    }

    /// Products bought together with `product_id` most often, each with
    /// its count as `score`.
    pub async fn also_bought(
        &self,
        product_id: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, ServiceError> {
        let rows = self
            .store
            .scan(ALSO_BOUGHT, &format!("{product_id}|"), None, MAX_NODE_ROWS)
            .await?;
        let lists: Vec<Partners> = rows.iter().map(|(k, v)| decode(k, v)).collect();
        let top = Partners::merged(&lists).top(limit * 2);
        self.hits(
            top.into_iter().map(|(id, n)| (id, n as f32)).collect(),
            limit,
        )
        .await
    }

    /// Products like `product_id` (words of its name, its category).
    pub async fn similar(&self, product_id: &str, limit: usize) -> Result<Vec<Hit>, ServiceError> {
        self.search.similar(product_id.to_owned(), limit).await
    }

    /// Flushes every `every` and folds the feed into trending, until
    /// `shutdown` flips; then flushes what is left.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruning = feed::Pruning::new(ACTIVITY_FEED, ACTIVITY_RETENTION_MS);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|d| *d) => break,
            }
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "behaviour not flushed; it is dropped");
            }
            // After a start the feed's last day may take several rounds:
            // they follow one another (at most `CATCH_UP_ROUNDS` a tick).
            for _ in 0..CATCH_UP_ROUNDS {
                match self.catch_up().await {
                    Ok(n) if n == ACTIVITY_ROUND.rows => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "trending not caught up; retrying");
                        break;
                    }
                }
            }
            pruning.when_due(&*self.store, &self.duty).await;
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "behaviour not flushed at shutdown");
        }
    }
}
