//! The ScyllaDB backend: the same `Store` contract over CQL with the
//! `scylla` driver.
//!
//! - Statements are prepared once at start; keys are always bound values.
//! - Writes go through one writer task fed by a bounded queue. It takes what
//!   is queued (up to `max_batch`), checks each append's expected sequence,
//!   and writes the group concurrently: one batch per stream (all that
//!   stream's appends in the group, in order), one per snapshot, one per
//!   `write_rows` call. A stream's batch is a single-partition UNLOGGED
//!   batch when it carries only events, and a LOGGED batch when it also
//!   carries read-table rows (so events and rows land together or not at
//!   all). Callers hear "ok" only once their batch is acknowledged at the
//!   configured consistency (LOCAL_QUORUM by default).
//! - Single writer: within a node the actor registry guarantees one writer
//!   per stream and the writer checks sequences against the heads it knows.
//!   With `scylla_lwt` on, each event row is also inserted `IF NOT EXISTS`
//!   (a conditional batch on the stream's partition, serial consistency
//!   LOCAL_SERIAL), so two nodes can never both write sequence N. A
//!   conditional batch cannot span partitions, so with LWT the read-table
//!   rows follow in a second (logged) batch once the events are in.
//! - Every batch carries an explicit write timestamp, increasing in queue
//!   order, which makes it idempotent: only idempotent statements (reads,
//!   timestamped batches) are retried by the driver; conditional batches
//!   never are.
//! - Reads are paged. Against the kassandra emulator (`scylla_emulator`),
//!   which understands only `=` restrictions, ranges and limits are applied
//!   while paging instead of in the statement.

mod cluster;
pub mod schema;
pub mod tables;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::scylla::client::execution_profile::ExecutionProfile;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use ::scylla::statement::{Consistency, SerialConsistency};
use ::scylla::value::CqlValue;
use async_trait::async_trait;
use dashmap::DashMap;
use futures_util::future::join_all;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use self::tables::ReadTable;
use super::{
    AppendRequest, AppendTicket, Fence, IndexOp, RecordedEvent, Seq, Snapshot, Store, StoreError,
};
use crate::metrics::Metrics;
use crate::store::queue::{run_groups, WriteOp, WriteQueue};

/// How to reach and use the cluster.
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// The keyspace's replication map, as CQL (`{'class': …}`).
    pub replication: String,
    /// Consistency of every read and write.
    pub consistency: Consistency,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Conditional (`IF NOT EXISTS`) event inserts.
    pub lwt: bool,
    /// The server is the kassandra emulator: `=` restrictions only, no LWT.
    pub emulator: bool,
    /// Upper bound of one request, retries included.
    pub request_timeout: Duration,
    /// Most writes committed in one group.
    pub max_batch: usize,
    /// Bound of the write queue; callers wait when it is full.
    pub queue: usize,
}

/// Opens a driver session with these options.
pub async fn connect(o: &ScyllaOptions) -> Result<Session, StoreError> {
    let profile = ExecutionProfile::builder()
        .consistency(o.consistency)
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .request_timeout(Some(o.request_timeout))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&o.nodes)
        .default_execution_profile_handle(profile.into_handle())
        .connection_timeout(o.request_timeout);
    if o.emulator {
        // kassandra answers no schema-version queries.
        builder = builder.auto_await_schema_agreement(false);
    }
    if let (Some(user), Some(password)) = (&o.user, &o.password) {
        builder = builder.user(user, password);
    }
    builder.build().await.map_err(|e| {
        StoreError::Backend(format!(
            "cannot connect to ScyllaDB at {}: {e}",
            o.nodes.join(",")
        ))
    })
}

pub use crate::config::parse_consistency;

struct TableStatements {
    table: &'static ReadTable,
    get: PreparedStatement,
    put: PreparedStatement,
    delete: PreparedStatement,
    scan: PreparedStatement,
}

struct Statements {
    append: PreparedStatement,
    append_if_absent: Option<PreparedStatement>,
    read: PreparedStatement,
    head: PreparedStatement,
    snapshot_get: PreparedStatement,
    snapshot_put: PreparedStatement,
    ping: PreparedStatement,
    tables: HashMap<&'static str, TableStatements>,
    /// Leases and fenced appends (cluster mode): with `scylla_lwt` on a
    /// real cluster only.
    cluster: Option<cluster::ClusterStatements>,
}

struct Inner {
    session: Session,
    st: Statements,
    emulator: bool,
    /// Heads of streams this node wrote or read, so an append needs no
    /// read first. Dropped on any failure; cleared when it grows too big.
    heads: DashMap<String, Seq>,
    /// Last write timestamp handed out (µs).
    clock: AtomicI64,
}

/// Most heads remembered before the cache is cleared.
const MAX_CACHED_HEADS: usize = 200_000;
/// Most statements in one batch; a stream's appends in one group are split
/// into several batches (whole appends each) beyond it.
const MAX_BATCH_STATEMENTS: usize = 256;
/// Rows fetched per page.
const PAGE: usize = 1000;

pub struct ScyllaStore {
    inner: Arc<Inner>,
    queue: WriteQueue,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl ScyllaStore {
    /// Connects, checks that the schema is current (see `schema::check`),
    /// and prepares every statement.
    pub async fn open(options: &ScyllaOptions, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        if options.lwt && options.emulator {
            return Err(StoreError::Backend(
                "scylla_lwt needs a real ScyllaDB cluster: the emulator has no lightweight transactions".into(),
            ));
        }
        let session = connect(options).await?;
        schema::check(&session, &options.keyspace)
            .await
            .map_err(backend)?;
        let st = prepare(&session, options).await?;
        let inner = Arc::new(Inner {
            session,
            st,
            emulator: options.emulator,
            heads: DashMap::new(),
            clock: AtomicI64::new(0),
        });
        let (queue, rx) = WriteQueue::new(options.queue);
        let writer = tokio::spawn(writer_loop(
            inner.clone(),
            rx,
            options.max_batch.max(1),
            metrics,
        ));
        Ok(ScyllaStore {
            inner,
            queue,
            writer: Mutex::new(Some(writer)),
        })
    }
}

async fn prepare(session: &Session, o: &ScyllaOptions) -> Result<Statements, StoreError> {
    let ks = &o.keyspace;
    let emu = o.emulator;
    let prep = |cql: String, idempotent: bool| async move {
        let mut p = session
            .prepare(cql.clone())
            .await
            .map_err(|e| StoreError::Backend(format!("preparing `{cql}`: {e}")))?;
        p.set_is_idempotent(idempotent);
        Ok::<_, StoreError>(p)
    };
    let mut tables = HashMap::new();
    for t in tables::READ_TABLES {
        let n = t.name;
        let scan = if emu {
            format!("SELECT k, v FROM {ks}.{n} WHERE p = ?")
        } else {
            format!("SELECT k, v FROM {ks}.{n} WHERE p = ? AND k >= ? LIMIT ?")
        };
        // The key is selected and checked: kassandra reads `k = ?` as `k >= ?`.
        let get = format!("SELECT k, v FROM {ks}.{n} WHERE p = ? AND k = ?");
        tables.insert(
            n,
            TableStatements {
                table: t,
                get: prep(get, true).await?,
                put: prep(
                    format!("INSERT INTO {ks}.{n} (p, k, v) VALUES (?, ?, ?)"),
                    true,
                )
                .await?,
                delete: prep(format!("DELETE FROM {ks}.{n} WHERE p = ? AND k = ?"), true).await?,
                scan: prep(scan, true).await?,
            },
        );
    }
    let read = if emu {
        format!("SELECT seq, payload FROM {ks}.journal WHERE stream = ?")
    } else {
        format!("SELECT seq, payload FROM {ks}.journal WHERE stream = ? AND seq > ? LIMIT ?")
    };
    let head = if emu {
        format!("SELECT seq FROM {ks}.journal WHERE stream = ?")
    } else {
        format!("SELECT seq FROM {ks}.journal WHERE stream = ? ORDER BY seq DESC LIMIT 1")
    };
    let append_if_absent = if o.lwt {
        Some(
            prep(
                format!(
                    "INSERT INTO {ks}.journal (stream, seq, payload) VALUES (?, ?, ?) IF NOT EXISTS"
                ),
                false,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Statements {
        append: prep(
            format!("INSERT INTO {ks}.journal (stream, seq, payload) VALUES (?, ?, ?)"),
            true,
        )
        .await?,
        append_if_absent,
        read: prep(read, true).await?,
        head: prep(head, true).await?,
        snapshot_get: prep(
            format!("SELECT seq, payload FROM {ks}.snapshots WHERE stream = ?"),
            true,
        )
        .await?,
        snapshot_put: prep(
            format!("INSERT INTO {ks}.snapshots (stream, seq, payload) VALUES (?, ?, ?)"),
            true,
        )
        .await?,
        ping: prep("SELECT release_version FROM system.local".into(), true).await?,
        tables,
        cluster: if o.lwt && !emu {
            Some(cluster::prepare(session, ks).await?)
        } else {
            None
        },
    })
}

fn paged(stmt: &PreparedStatement, rows: usize) -> PreparedStatement {
    let mut s = stmt.clone();
    s.set_page_size(rows.clamp(1, PAGE) as i32);
    s
}

fn limit_value(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

impl Inner {
    fn table(&self, name: &str) -> Result<&TableStatements, StoreError> {
        self.st.tables.get(name).ok_or_else(|| {
            StoreError::Backend(format!(
                "read table '{name}' is not in the ScyllaDB schema (src/store/scylla/tables.rs)"
            ))
        })
    }

    /// The next write timestamp: wall-clock µs, strictly increasing.
    fn timestamp(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let mut prev = self.clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .clock
                .compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    async fn head(&self, stream: &str) -> Result<Seq, StoreError> {
        if self.emulator {
            let mut rows = self
                .session
                .execute_iter(paged(&self.st.head, PAGE), (stream,))
                .await
                .map_err(backend)?
                .rows_stream::<(i64,)>()
                .map_err(backend)?;
            let mut head = 0;
            while let Some((seq,)) = rows.try_next().await.map_err(backend)? {
                head = head.max(seq as Seq);
            }
            Ok(head)
        } else {
            Ok(self
                .first_row::<(i64,)>(&self.st.head, (stream,))
                .await?
                .map_or(0, |(s,)| s as Seq))
        }
    }

    /// Rows of one partition with keys ≥ `start` that start with `prefix`,
    /// skipping `after`, at most `limit`, in key order.
    async fn slice(
        &self,
        t: &TableStatements,
        partition: String,
        start: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let pager = if self.emulator {
            self.session
                .execute_iter(paged(&t.scan, limit + 1), (partition,))
                .await
        } else {
            self.session
                .execute_iter(
                    paged(&t.scan, limit + 1),
                    (partition, start, limit_value(limit + 1)),
                )
                .await
        };
        let mut rows = pager
            .map_err(backend)?
            .rows_stream::<(String, Vec<u8>)>()
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some((k, v)) = rows.try_next().await.map_err(backend)? {
            if k.as_str() < start || after == Some(k.as_str()) {
                continue;
            }
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// The first row a single-partition statement returns, if any.
    async fn first_row<R>(
        &self,
        stmt: &PreparedStatement,
        values: impl ::scylla::serialize::row::SerializeRow,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'f> ::scylla::deserialize::row::DeserializeRow<'f, 'f>,
    {
        self.session
            .execute_unpaged(stmt, values)
            .await
            .map_err(backend)?
            .into_rows_result()
            .map_err(backend)?
            .maybe_first_row::<R>()
            .map_err(backend)
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .first_row::<(i64, Vec<u8>)>(&self.st.snapshot_get, (stream,))
            .await?
            .map(|(seq, payload)| Snapshot {
                seq: seq as Seq,
                payload,
            }))
    }

    /// Adds `ops` to `batch`; returns the partitions they touch.
    fn add_rows(
        &self,
        batch: &mut Batch,
        values: &mut Vec<Vec<CqlValue>>,
        ops: &[IndexOp],
        partitions: &mut Vec<(&'static str, String)>,
    ) -> Result<(), StoreError> {
        for op in ops {
            let (name, key) = match op {
                IndexOp::Put { table, key, .. } | IndexOp::Delete { table, key } => (*table, key),
            };
            let t = self.table(name)?;
            let p = t.table.partition(key);
            if !partitions.iter().any(|(n, q)| *n == name && *q == p) {
                partitions.push((name, p.clone()));
            }
            match op {
                IndexOp::Put { value, .. } => {
                    batch.append_statement(t.put.clone());
                    values.push(vec![
                        CqlValue::Text(p),
                        CqlValue::Text(key.clone()),
                        CqlValue::Blob(value.clone()),
                    ]);
                }
                IndexOp::Delete { .. } => {
                    batch.append_statement(t.delete.clone());
                    values.push(vec![CqlValue::Text(p), CqlValue::Text(key.clone())]);
                }
            }
        }
        Ok(())
    }

    /// One timestamped, idempotent batch of read-table rows.
    async fn write_rows(&self, ops: &[IndexOp], ts: i64) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values = Vec::with_capacity(ops.len());
        let mut partitions = Vec::new();
        self.add_rows(&mut batch, &mut values, ops, &mut partitions)?;
        if partitions.len() > 1 {
            batch = Batch::new_with_statements(BatchType::Logged, batch.statements);
        }
        batch.set_timestamp(Some(ts));
        batch.set_is_idempotent(true);
        self.session.batch(&batch, values).await.map_err(backend)?;
        Ok(())
    }

    /// Writes one chunk of a stream's appends: events (and rows) in one
    /// batch, or with LWT a conditional batch of events then the rows.
    async fn write_chunk(&self, stream: &str, chunk: &Chunk) -> Result<(), StoreError> {
        if let Some(fence) = chunk.fence {
            return self.write_fenced_chunk(stream, chunk, fence).await;
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<Vec<CqlValue>> = Vec::with_capacity(chunk.events.len());
        let conditional = self.st.append_if_absent.as_ref();
        for (seq, payload) in &chunk.events {
            batch.append_statement(conditional.unwrap_or(&self.st.append).clone());
            values.push(vec![
                CqlValue::Text(stream.to_owned()),
                CqlValue::BigInt(*seq as i64),
                CqlValue::Blob(payload.clone()),
            ]);
        }
        if conditional.is_some() {
            batch.set_is_idempotent(false);
            let applied =
                cluster::was_applied(self.session.batch(&batch, values).await.map_err(backend)?)?;
            if !applied {
                let actual = self.head(stream).await?;
                return Err(StoreError::Conflict {
                    stream: stream.to_owned(),
                    expected: chunk.first_expected,
                    actual,
                });
            }
            return self.write_rows(&chunk.index, chunk.ts).await;
        }
        let mut partitions = Vec::new();
        self.add_rows(&mut batch, &mut values, &chunk.index, &mut partitions)?;
        if !partitions.is_empty() {
            // Events and rows in several partitions: the batch log makes
            // them land together.
            batch = Batch::new_with_statements(BatchType::Logged, batch.statements);
        }
        batch.set_timestamp(Some(chunk.ts));
        batch.set_is_idempotent(true);
        self.session.batch(&batch, values).await.map_err(backend)?;
        Ok(())
    }
}

/// Whole appends of one stream written in one batch.
struct Chunk {
    ts: i64,
    /// The lease its appends were made under (cluster mode).
    fence: Option<Fence>,
    first_expected: Seq,
    /// (op index, head after the append)
    appends: Vec<(usize, Seq)>,
    events: Vec<(Seq, Vec<u8>)>,
    index: Vec<IndexOp>,
}

async fn writer_loop(
    inner: Arc<Inner>,
    rx: mpsc::Receiver<WriteOp>,
    max_batch: usize,
    m: Arc<Metrics>,
) {
    run_groups(rx, max_batch, &m, |ops| commit_group(&inner, ops, &m)).await
}

type Heads = HashMap<String, Result<Seq, String>>;
type Answers = Vec<(usize, Result<Seq, StoreError>)>;

/// Heads of the streams the group appends to that the cache does not know,
/// read concurrently.
async fn fetch_heads(inner: &Inner, ops: &[WriteOp]) -> Heads {
    let mut missing: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        if let WriteOp::Append(req, _) = op {
            if !inner.heads.contains_key(&req.stream) && seen.insert(req.stream.as_str()) {
                missing.push(&req.stream);
            }
        }
    }
    let fetched = join_all(missing.iter().map(|s| inner.head(s))).await;
    missing
        .iter()
        .zip(fetched)
        .map(|(s, r)| (s.to_string(), r.map_err(|e| e.to_string())))
        .collect()
}

/// What a group writes: streams in first-seen order, each with its chunks;
/// snapshots, the newest per stream with every caller waiting on one; rows
/// outside streams.
#[derive(Default)]
struct Plan<'a> {
    streams: Vec<(String, Vec<Chunk>)>,
    stream_at: HashMap<&'a str, usize>,
    snapshots: Vec<(String, Snapshot, Vec<usize>)>,
    snapshot_at: HashMap<&'a str, usize>,
    rows: Vec<(usize, &'a [IndexOp], i64)>,
}

impl<'a> Plan<'a> {
    /// Plans append `i` at the head it expects (or refuses it).
    fn append(
        &mut self,
        inner: &Inner,
        heads: &mut Heads,
        i: usize,
        req: &'a AppendRequest,
    ) -> Result<(), StoreError> {
        let head = match heads.get(&req.stream) {
            Some(Ok(h)) => *h,
            Some(Err(e)) => return Err(StoreError::Backend(e.clone())),
            None => inner.heads.get(&req.stream).map(|h| *h).unwrap_or(0),
        };
        if head != req.expected {
            return Err(StoreError::Conflict {
                stream: req.stream.clone(),
                expected: req.expected,
                actual: head,
            });
        }
        if let Some(bad) = req.index.iter().find_map(|op| {
            let (IndexOp::Put { table, .. } | IndexOp::Delete { table, .. }) = op;
            inner.table(table).err()
        }) {
            return Err(bad);
        }
        let new_head = head + req.events.len() as Seq;
        heads.insert(req.stream.clone(), Ok(new_head));
        let streams = &mut self.streams;
        let at = *self
            .stream_at
            .entry(req.stream.as_str())
            .or_insert_with(|| {
                streams.push((req.stream.clone(), Vec::new()));
                streams.len() - 1
            });
        let entry = &mut streams[at].1;
        let size = req.events.len() + req.index.len();
        let fits = entry.last().is_some_and(|c| {
            c.fence == req.fence && c.events.len() + c.index.len() + size <= MAX_BATCH_STATEMENTS
        });
        if !fits {
            entry.push(Chunk {
                ts: inner.timestamp(),
                fence: req.fence,
                first_expected: head,
                appends: Vec::new(),
                events: Vec::new(),
                index: Vec::new(),
            });
        }
        let chunk = entry.last_mut().expect("a chunk");
        chunk.appends.push((i, new_head));
        chunk.events.extend(
            req.events
                .iter()
                .enumerate()
                .map(|(n, e)| (head + 1 + n as Seq, e.clone())),
        );
        chunk.index.extend(req.index.iter().cloned());
        Ok(())
    }

    /// Plans snapshot `i` (only the newest per stream is written).
    fn snapshot(&mut self, i: usize, stream: &'a str, snap: &Snapshot) {
        match self.snapshot_at.get(stream) {
            Some(&at) => {
                let (_, kept, idx) = &mut self.snapshots[at];
                if snap.seq > kept.seq {
                    *kept = snap.clone();
                }
                idx.push(i);
            }
            None => {
                self.snapshot_at.insert(stream, self.snapshots.len());
                self.snapshots
                    .push((stream.to_owned(), snap.clone(), vec![i]));
            }
        }
    }
}

/// Writes a stream's chunks in order; after a failure the later ones are
/// not tried. Keeps the head cache right.
async fn write_stream(inner: &Inner, stream: &str, chunks: &[Chunk]) -> Answers {
    let mut out = Vec::new();
    let mut failed: Option<String> = None;
    for chunk in chunks {
        let result = match &failed {
            Some(e) => Err(StoreError::Backend(format!(
                "an earlier append to {stream} failed: {e}"
            ))),
            None => inner.write_chunk(stream, chunk).await,
        };
        match result {
            Ok(()) => out.extend(chunk.appends.iter().map(|(i, seq)| (*i, Ok(*seq)))),
            Err(e) => {
                if failed.is_none() {
                    failed = Some(e.to_string());
                }
                for (n, (i, _)) in chunk.appends.iter().enumerate() {
                    let err = match &e {
                        StoreError::Conflict {
                            stream,
                            expected,
                            actual,
                        } if n == 0 => StoreError::Conflict {
                            stream: stream.clone(),
                            expected: *expected,
                            actual: *actual,
                        },
                        other => StoreError::Backend(other.to_string()),
                    };
                    out.push((*i, Err(err)));
                }
            }
        }
    }
    match &failed {
        None => {
            if let Some(last) = chunks.last().and_then(|c| c.appends.last()) {
                if inner.heads.len() >= MAX_CACHED_HEADS {
                    inner.heads.clear();
                }
                inner.heads.insert(stream.to_owned(), last.1);
            }
        }
        Some(_) => {
            inner.heads.remove(stream);
        }
    }
    out
}

/// Writes a snapshot unless a newer one is stored; answers every caller
/// that asked for one of this stream.
async fn write_snapshot(inner: &Inner, stream: &str, snap: &Snapshot, idx: &[usize]) -> Answers {
    let result = async {
        if inner
            .load_snapshot(stream)
            .await?
            .is_some_and(|current| current.seq >= snap.seq)
        {
            return Ok(snap.seq);
        }
        let mut stmt = inner.st.snapshot_put.clone();
        // The sequence is the write timestamp: an older snapshot written
        // late (by another node) never replaces a newer one.
        stmt.set_timestamp(Some(snap.seq as i64));
        inner
            .session
            .execute_unpaged(&stmt, (stream, snap.seq as i64, &snap.payload))
            .await
            .map_err(backend)?;
        Ok(snap.seq)
    }
    .await;
    idx.iter()
        .map(|i| {
            let answer = result
                .as_ref()
                .map(|s| *s)
                .map_err(|e: &StoreError| StoreError::Backend(e.to_string()));
            (*i, answer)
        })
        .collect()
}

/// Writes one group and answers every caller in it.
async fn commit_group(inner: &Inner, ops: Vec<WriteOp>, m: &Metrics) {
    let mut heads = fetch_heads(inner, &ops).await;
    let mut results: Vec<Option<Result<Seq, StoreError>>> = (0..ops.len()).map(|_| None).collect();
    let mut plan = Plan::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Append(req, _) => {
                if let Err(e) = plan.append(inner, &mut heads, i, req) {
                    results[i] = Some(Err(e));
                }
            }
            WriteOp::Snapshot(stream, snap, _) => plan.snapshot(i, stream, snap),
            WriteOp::Rows(ops, _) => plan.rows.push((i, ops, inner.timestamp())),
        }
    }
    let stream_writes = plan
        .streams
        .iter()
        .map(|(stream, chunks)| write_stream(inner, stream, chunks));
    let snapshot_writes = plan
        .snapshots
        .iter()
        .map(|(stream, snap, idx)| write_snapshot(inner, stream, snap, idx));
    let row_writes = plan
        .rows
        .iter()
        .map(|(i, ops, ts)| async move { vec![(*i, inner.write_rows(ops, *ts).await.map(|_| 0))] });
    let (a, b, c) = futures_util::join!(
        join_all(stream_writes),
        join_all(snapshot_writes),
        join_all(row_writes)
    );
    for (i, r) in a.into_iter().chain(b).chain(c).flatten() {
        results[i] = Some(r);
    }
    for (op, result) in ops.into_iter().zip(results) {
        op.answer(
            result.unwrap_or_else(|| Err(StoreError::Backend("not written".into()))),
            m,
        );
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn submit(&self, req: AppendRequest) -> Result<AppendTicket, StoreError> {
        if req.fence.is_some() && self.inner.st.cluster.is_none() {
            // Never write a fenced append unfenced.
            return Err(StoreError::Backend(
                "a fenced append needs scylla_lwt on a real ScyllaDB cluster".into(),
            ));
        }
        self.queue.append(req).await
    }

    async fn read(
        &self,
        stream: &str,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 || after >= i64::MAX as Seq {
            return Ok(Vec::new());
        }
        let i = &self.inner;
        let pager = if i.emulator {
            i.session
                .execute_iter(paged(&i.st.read, limit), (stream,))
                .await
        } else {
            i.session
                .execute_iter(
                    paged(&i.st.read, limit),
                    (stream, after as i64, limit_value(limit)),
                )
                .await
        };
        let mut rows = pager
            .map_err(backend)?
            .rows_stream::<(i64, Vec<u8>)>()
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some((seq, payload)) = rows.try_next().await.map_err(backend)? {
            if seq as Seq <= after {
                continue;
            }
            out.push(RecordedEvent {
                seq: seq as Seq,
                payload,
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn head(&self, stream: &str) -> Result<Seq, StoreError> {
        self.inner.head(stream).await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        self.queue.snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }

    async fn write_rows(&self, ops: Vec<IndexOp>) -> Result<(), StoreError> {
        self.queue.rows(ops).await
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.inner.table(table)?;
        let p = t.table.partition(key);
        let mut rows = self
            .inner
            .session
            .execute_iter(paged(&t.get, 1), (p, key))
            .await
            .map_err(backend)?
            .rows_stream::<(String, Vec<u8>)>()
            .map_err(backend)?;
        Ok(match rows.try_next().await.map_err(backend)? {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        })
    }

    async fn scan(
        &self,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let t = self.inner.table(table)?;
        let partitions = t
            .table
            .scan_partitions(prefix)
            .map_err(StoreError::Backend)?;
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let slices = join_all(
            partitions
                .into_iter()
                .map(|p| self.inner.slice(t, p, start, prefix, after, limit)),
        )
        .await;
        let mut rows = Vec::new();
        for slice in slices {
            rows.extend(slice?);
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(limit);
        Ok(rows)
    }

    fn coordination(&self) -> Option<&dyn super::lease::Coordination> {
        self.inner
            .st
            .cluster
            .as_ref()
            .map(|_| self as &dyn super::lease::Coordination)
    }

    async fn fence_stream(&self, stream: &str, fence: Fence) -> Result<(), StoreError> {
        self.inner.fence_stream(stream, fence).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.queue.is_open().await {
            return Err(StoreError::Closed);
        }
        self.inner
            .session
            .execute_unpaged(&self.inner.st.ping, ())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn close(&self) {
        self.queue.close().await;
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

/// The ScyllaDB backend's options, from the settings.
impl crate::config::Settings {
    /// How the ScyllaDB backend connects (`store = scylla`, `surge migrate`).
    pub fn scylla(&self) -> ScyllaOptions {
        ScyllaOptions {
            nodes: self
                .scylla_nodes
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            keyspace: self.scylla_keyspace.clone(),
            replication: self.scylla_replication.trim().to_owned(),
            consistency: parse_consistency(&self.scylla_consistency)
                .unwrap_or(::scylla::statement::Consistency::LocalQuorum),
            user: self.scylla_user.clone(),
            password: self.scylla_password.clone(),
            lwt: self.scylla_lwt,
            emulator: self.scylla_emulator,
            request_timeout: std::time::Duration::from_millis(self.scylla_request_timeout_ms),
            max_batch: self.journal_max_batch,
            queue: self.journal_queue,
        }
    }
}
