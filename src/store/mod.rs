//! Storage: the one narrow trait every backend implements.
//!
//! A backend keeps three things (the tables of `schema/scylla/` and
//! `schema/postgres/`):
//! - the **journal**: per stream, an append-only list of events numbered
//!   1, 2, 3…; an append names the sequence number it expects the stream to be
//!   at, and a conflicting append is rejected whole, never interleaved;
//! - **snapshots**: the latest encoded state of a stream at some sequence;
//! - **read tables**: query-first key → value rows (users by email, products,
//!   …) written atomically with the events that produced them.
//!
//! Nothing here names a backend type; `redb` is the embedded backend,
//! `postgres` the PostgreSQL one and `scylla` the ScyllaDB one.

pub mod backup;
pub mod codec;
pub mod lease;
pub mod migrations;
pub mod postgres;
mod queue;
pub mod redb;
pub mod scylla;
pub mod tables;

use async_trait::async_trait;

/// A position in a stream. The first event of a stream has sequence 1; an
/// empty stream is at 0.
pub type Seq = u64;

/// Failures of the storage layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The stream was not where the writer expected it: someone else wrote it.
    #[error("append to {stream} expected sequence {expected}, but the stream is at {actual}")]
    Conflict {
        stream: String,
        expected: Seq,
        actual: Seq,
    },
    /// The append was made under a shard epoch that is no longer current:
    /// another node took the shard over. Nothing was written.
    #[error("shard {shard} is now at epoch {current}; an append under epoch {epoch} is refused")]
    Fenced {
        shard: u32,
        epoch: u64,
        current: u64,
    },
    /// The store was closed (shutdown in progress).
    #[error("the store is closed")]
    Closed,
    /// The backend cannot be reached now (down, restarting, failing over,
    /// timed out): nothing was written, or what was is not acknowledged.
    /// The caller may retry later (HTTP 503 `unavailable`).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed (I/O, corruption, driver error).
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored record could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
}

impl StoreError {
    pub(crate) fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub seq: Seq,
    pub payload: Vec<u8>,
}

/// The encoded state of a stream after applying events up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: Seq,
    pub payload: Vec<u8>,
}

/// A write to a read table, committed atomically with the events beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOp {
    Put {
        table: &'static str,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        table: &'static str,
        key: String,
    },
}

/// Append `events` to `stream`, which must currently be at `expected`.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: Seq,
    pub events: Vec<Vec<u8>>,
    pub index: Vec<IndexOp>,
    /// Cluster mode: the shard lease the append is made under. The store
    /// refuses the append atomically (`StoreError::Fenced`) unless this is
    /// still the shard's current epoch. `None` in single-node mode.
    pub fence: Option<Fence>,
}

/// A shard and the lease epoch a node holds it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub shard: u32,
    pub epoch: u64,
}

/// What `scan_picking` does with one row.
pub enum Pick<T> {
    Take(T),
    Skip,
    /// This row and every later one are not wanted (past the due time).
    Stop,
}

/// Rows of `table` picked by `pick`, in key order: up to `want`, reading
/// at most `max_pages` pages of `want` rows (so rows `pick` skips — other
/// nodes' work in cluster mode — cannot hide the wanted ones behind them
/// for long, and a round's work stays bounded).
pub async fn scan_picking<T>(
    store: &dyn Store,
    table: &str,
    want: usize,
    max_pages: usize,
    mut pick: impl FnMut(String, Vec<u8>) -> Pick<T>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..max_pages {
        let page = store.scan(table, "", after.as_deref(), want).await?;
        let last = page.len() < want;
        after = page.last().map(|(k, _)| k.clone());
        for (key, value) in page {
            match pick(key, value) {
                Pick::Take(t) => {
                    out.push(t);
                    if out.len() >= want {
                        return Ok(out);
                    }
                }
                Pick::Skip => {}
                Pick::Stop => return Ok(out),
            }
        }
        if last {
            break;
        }
    }
    Ok(out)
}

/// Walks the rows of `table` under `prefix` after the key `after`, in key
/// order, `page` rows per read, handing each to `each` until it answers
/// `false` (stop) or the rows run out. Answers whether `each` stopped it.
pub async fn walk_rows<E: From<StoreError>>(
    store: &dyn Store,
    table: &str,
    prefix: &str,
    after: Option<String>,
    page: usize,
    mut each: impl FnMut(String, Vec<u8>) -> Result<bool, E>,
) -> Result<bool, E> {
    let mut after = after;
    loop {
        let rows = store.scan(table, prefix, after.as_deref(), page).await?;
        let last = rows.len() < page;
        after = rows.last().map(|(k, _)| k.clone());
        for (k, v) in rows {
            if !each(k, v)? {
                return Ok(true);
            }
        }
        if last {
            return Ok(false);
        }
    }
}

/// Resolves to the stream's new head once a submitted append is durable.
pub type AppendTicket = tokio::sync::oneshot::Receiver<Result<Seq, StoreError>>;

/// The storage contract. Every method is safe to call from many tasks at
/// once; appends from many callers are group-committed by the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues an append and returns as soon as it is queued, with a ticket
    /// that resolves once it is durable (or has failed). Appends one caller
    /// submits one after another are committed in that order, so an entity
    /// may pipeline several before the first is durable.
    async fn submit(&self, req: AppendRequest) -> Result<AppendTicket, StoreError>;

    /// Durably appends; returns the stream's new head sequence. Returns only
    /// once the events are durable (fsynced or acknowledged by the cluster).
    async fn append(&self, req: AppendRequest) -> Result<Seq, StoreError> {
        self.submit(req)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }
    /// Events of `stream` with sequence > `after`, at most `limit`, in order.
    async fn read(
        &self,
        stream: &str,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
    /// The stream's current head (0 when empty).
    async fn head(&self, stream: &str) -> Result<Seq, StoreError>;
    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError>;
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError>;
    /// Durably writes read-table rows that belong to no stream (sampled
    /// track points, the mail outbox), group-committed like appends.
    async fn write_rows(&self, ops: Vec<IndexOp>) -> Result<(), StoreError>;
    /// One row of a read table.
    async fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Rows of `table` whose key starts with `prefix`, in key order, strictly
    /// after `after` when given, at most `limit`.
    async fn scan(
        &self,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Shard leases and membership, for cluster mode; `None` when this
    /// backend cannot fence appends (the embedded store is single-node).
    fn coordination(&self) -> Option<&dyn lease::Coordination> {
        None
    }
    /// Cluster mode, before an entity of `stream` recovers under `fence`:
    /// from now on the store refuses every append to `stream` made under
    /// an older epoch, and the recovery that follows reads a tail no stale
    /// owner can extend. `Fenced` if a newer epoch already fenced it.
    /// PostgreSQL checks the shard's lease in every append's transaction
    /// and here only turns a stale owner away early; ScyllaDB, whose
    /// conditional batch sees one partition only, keeps the stream's fence
    /// in that partition. Single-node backends need nothing.
    async fn fence_stream(&self, _stream: &str, _fence: Fence) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether [`Store::backup`] works here: on the embedded store.
    /// PostgreSQL and ScyllaDB are backed up with their own tools.
    fn backs_up(&self) -> bool {
        false
    }
    /// A consistent copy of everything stored (as of one commit, while
    /// writes go on), as the chunks of a backup (`store::backup`) sent to
    /// `out`; stops when `out` is dropped.
    async fn backup(
        &self,
        _out: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<backup::Summary, StoreError> {
        Err(StoreError::Backend(
            "this store is backed up with its database's own tools".into(),
        ))
    }
    /// Cheap liveness probe used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Stops accepting writes, commits everything already queued, and
    /// returns once the backend is flushed.
    async fn close(&self);
}
