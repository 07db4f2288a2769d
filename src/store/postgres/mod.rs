//! The PostgreSQL backend: the same `Store` contract on the database most
//! teams already run, with `tokio-postgres` and a bounded `deadpool` pool.
//!
//! - Writes go through one writer thread (its own single-threaded runtime
//!   and two connections of its own, so a burst of requests on the server's
//!   runtime does not delay commits) fed by a bounded queue. It takes
//!   what is queued (up to `max_batch`), checks each append's expected
//!   sequence against the heads it knows (reading the ones it does not), and
//!   writes the whole group in **one transaction**: every event in one
//!   multi-row `INSERT … ON CONFLICT DO NOTHING`, the read-table rows (the
//!   last write per key wins, as if applied in queue order) and the newest
//!   snapshot per stream, pipelined on one connection; then one `COMMIT`,
//!   i.e. one WAL flush for the group. Callers hear "ok" only after it.
//! - Two writers of one stream (two Surge processes on one database): the
//!   primary key `(stream, seq)` lets only one insert a sequence number. The
//!   loser's insert affects fewer rows than it sent; its group is rolled
//!   back whole, the heads are read again, the stale appends are refused
//!   with `Conflict` and the rest of the group is written again.
//! - A `COMMIT` whose outcome is unknown (the connection died during it) is
//!   resolved by reading the group's first event back on another connection
//!   before anyone is answered: there, "ok"; absent (or someone else's), an
//!   error; unreachable, an error too (nothing is acknowledged unconfirmed,
//!   and the entities recover from the journal).
//! - The database unreachable, restarting or failing over → the pool fails
//!   within `connect_timeout`, every operation fails with
//!   `StoreError::Unavailable` (HTTP 503), `/readyz` is not ready; the pool
//!   opens new connections once the server is back.
//! - Keys are `text COLLATE "C"`: scans run in byte order, as on the other
//!   backends. Every statement is a primary-key lookup or range.

pub mod schema;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;

use super::lease::{Coordination, Lease, Member};
use super::{
    AppendRequest, AppendTicket, Fence, IndexOp, RecordedEvent, Seq, Snapshot, Store, StoreError,
};
use crate::metrics::Metrics;
use crate::store::queue::{run_groups, WriteOp, WriteQueue};
use crate::store::tables;

/// How to reach and use the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Parsed from `postgres_url` (a libpq URL or key=value string), with
    /// the password applied.
    pub config: tokio_postgres::Config,
    /// The schema holding Surge's tables (the connections' search_path).
    pub schema: String,
    /// Most connections open at once.
    pub pool_size: usize,
    /// Bound of connecting, and of waiting for a free connection.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// PEM file of CA certificates trusted besides the web PKI roots, for
    /// `sslmode=require`.
    pub ca_file: Option<PathBuf>,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Bound of the write queue; callers wait when it is full.
    pub queue: usize,
    /// Cluster mode: this node's name. Its writer's sessions are named
    /// `surge-writer/{node}` (see `Coordination::acquire`).
    pub node: Option<String>,
}

/// The `application_name` of node `node`'s writer sessions.
fn writer_name(node: &str) -> String {
    format!("surge-writer/{node}")
}

/// The TLS connector: rustls with the web PKI roots and `ca_file`. Used as
/// the URL's `sslmode` says (`disable`, `prefer` — the default — or
/// `require`); the server's certificate is always verified.
fn tls(o: &PostgresOptions) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &o.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                StoreError::Backend(format!("postgres_ca_file {}: {e}", path.display()))
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(StoreError::Backend(format!(
                "postgres_ca_file {} holds no usable certificate",
                path.display()
            )));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(StoreError::backend)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A bounded pool of connections configured as `o` says: search_path,
/// statement timeout, connect timeout, keepalives, TLS. Connects lazily.
pub fn pool(o: &PostgresOptions) -> Result<Pool, StoreError> {
    let mut config = o.config.clone();
    let mut options = config.get_options().unwrap_or_default().to_owned();
    options.push_str(&format!(
        " -c search_path={} -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
        o.schema,
        o.statement_timeout.as_millis(),
        o.statement_timeout.as_millis().saturating_mul(4).max(1000),
    ));
    config
        .options(options.trim())
        .connect_timeout(o.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("surge");
    }
    let manager = Manager::from_config(
        config,
        tls(o)?,
        ManagerConfig {
            // A connection the server closed is dropped, not handed out.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(o.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(o.connect_timeout))
        .create_timeout(Some(o.connect_timeout))
        .recycle_timeout(Some(o.connect_timeout))
        .build()
        .map_err(StoreError::backend)
}

/// A driver error with the server's message when there is one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Classifies a driver error: the server unreachable, restarting, failing
/// over, out of resources or timing out is `Unavailable` (retry later);
/// anything else (a bug, a broken schema) is `Backend`.
fn pg(e: tokio_postgres::Error) -> StoreError {
    let text = describe(&e);
    let transient = match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            let class = &code.code()[..2];
            // 08 connection, 53 resources, 57 operator intervention
            // (shutdown, statement timeout), 40 serialization/deadlock;
            // 25006: a read-only standby (during a failover).
            matches!(class, "08" | "53" | "57" | "40")
                || code == &SqlState::READ_ONLY_SQL_TRANSACTION
        }
        None => {
            e.is_closed()
                || [
                    "error connecting",
                    "timeout",
                    "error communicating",
                    "connection closed",
                    "error performing TLS",
                ]
                .iter()
                .any(|p| text.starts_with(p))
        }
    };
    if transient {
        StoreError::Unavailable(format!("PostgreSQL: {text}"))
    } else {
        StoreError::Backend(format!("PostgreSQL: {text}"))
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg(e),
        PoolError::Closed => StoreError::Closed,
        PoolError::Timeout(_) => {
            StoreError::Unavailable("PostgreSQL: no connection within connect_timeout".into())
        }
        other => StoreError::Backend(format!("PostgreSQL pool: {other}")),
    }
}

/// Every statement the backend runs, in one place (a test EXPLAINs each
/// and finds no sequential scan). Table names come only from the catalog.
pub mod sql {
    pub const HEADS: &str = "SELECT t.s, (SELECT j.seq FROM journal j WHERE j.stream = t.s ORDER BY j.seq DESC LIMIT 1) \
         FROM unnest($1::text[]) AS t(s)";
    pub const HEAD: &str = "SELECT seq FROM journal WHERE stream = $1 ORDER BY seq DESC LIMIT 1";
    pub const READ: &str =
        "SELECT seq, payload FROM journal WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    pub const READ_BACK: &str = "SELECT payload FROM journal WHERE stream = $1 AND seq = $2";
    pub const APPEND: &str = "INSERT INTO journal (stream, seq, payload, epoch) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) \
         ON CONFLICT DO NOTHING";
    /// The current epochs of the shards a group appends under, locked
    /// against a takeover (whose `FOR UPDATE` waits for this transaction)
    /// but not against renewals.
    pub const FENCES: &str = "SELECT shard, epoch FROM shard_leases \
         WHERE shard = ANY($1::int[]) ORDER BY shard FOR KEY SHARE";

    // Cluster coordination: tables of one row per node or shard, read whole.
    pub const SETTING_INIT: &str = "INSERT INTO cluster_settings (name, value) \
         VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    pub const SETTING_GET: &str = "SELECT value FROM cluster_settings WHERE name = $1";
    pub const SHARDS_INIT: &str = "INSERT INTO shard_leases (shard) \
         SELECT generate_series(0, $1::int - 1) ON CONFLICT (shard) DO NOTHING";
    pub const HEARTBEAT: &str = "INSERT INTO members (node, addr, draining) VALUES ($1, $2, $3) \
         ON CONFLICT (node) DO UPDATE \
         SET addr = excluded.addr, draining = excluded.draining, heartbeat_at = now()";
    pub const LEAVE: &str = "DELETE FROM members WHERE node = $1";
    pub const MEMBERS: &str = "SELECT node, addr, draining, \
         greatest(0, extract(epoch FROM now() - heartbeat_at) * 1000)::bigint \
         FROM members ORDER BY node";
    /// The epoch shard `$1` is held under now.
    pub const LEASE_EPOCH: &str = "SELECT epoch FROM shard_leases WHERE shard = $1";
    pub const LEASES: &str = "SELECT shard, owner, epoch, \
         coalesce(greatest(0, extract(epoch FROM expires_at - now()) * 1000), 0)::bigint \
         FROM shard_leases ORDER BY shard";
    /// Takes the free or expired shards of `$2` (or ones recorded under
    /// this node's own name: a restarted node), each under a new epoch,
    /// locking them in shard order (as appends do) so two takers and the
    /// writer never deadlock; records each epoch's owner.
    pub const ACQUIRE: &str = "WITH free AS ( \
           SELECT shard FROM shard_leases \
           WHERE shard = ANY($2::int[]) \
             AND (owner IS NULL OR owner = $1 OR expires_at IS NULL OR expires_at <= now()) \
           ORDER BY shard FOR UPDATE), \
         taken AS ( \
           UPDATE shard_leases s SET owner = $1, epoch = s.epoch + 1, \
             expires_at = now() + make_interval(secs => $3::float8) \
           FROM free WHERE s.shard = free.shard RETURNING s.shard, s.epoch) \
         INSERT INTO lease_epochs (shard, epoch, owner) \
         SELECT shard, epoch, $1 FROM taken RETURNING shard, epoch";
    /// Ends the writer sessions (named `surge-writer/{node}`) of nodes
    /// whose lease on one of `$1` has expired (not `$2`, the caller).
    pub const END_EXPIRED_WRITERS: &str = "SELECT pg_terminate_backend(a.pid) \
         FROM pg_stat_activity a \
         WHERE a.datname = current_database() AND a.application_name IN ( \
           SELECT 'surge-writer/' || owner FROM shard_leases \
           WHERE shard = ANY($1::int[]) AND owner IS NOT NULL AND owner <> $2 \
             AND expires_at <= now())";
    pub const RENEW: &str = "WITH mine AS ( \
           SELECT s.shard FROM shard_leases s \
           JOIN unnest($2::int[], $3::bigint[]) AS t(shard, epoch) \
             ON s.shard = t.shard AND s.epoch = t.epoch \
           WHERE s.owner = $1 ORDER BY s.shard FOR NO KEY UPDATE OF s) \
         UPDATE shard_leases s SET expires_at = now() + make_interval(secs => $4::float8) \
         FROM mine WHERE s.shard = mine.shard RETURNING s.shard";
    pub const RELEASE: &str = "WITH mine AS ( \
           SELECT s.shard FROM shard_leases s \
           JOIN unnest($2::int[], $3::bigint[]) AS t(shard, epoch) \
             ON s.shard = t.shard AND s.epoch = t.epoch \
           WHERE s.owner = $1 ORDER BY s.shard FOR NO KEY UPDATE OF s) \
         UPDATE shard_leases s SET owner = NULL, expires_at = NULL \
         FROM mine WHERE s.shard = mine.shard";
    pub const SNAPSHOT_GET: &str = "SELECT seq, payload FROM snapshots WHERE stream = $1";
    pub const SNAPSHOT_PUT: &str = "INSERT INTO snapshots (stream, seq, payload) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[]) \
         ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, payload = excluded.payload \
         WHERE snapshots.seq < excluded.seq";

    pub fn get(table: &str) -> String {
        format!("SELECT v FROM {table} WHERE k = $1")
    }
    pub fn put(table: &str) -> String {
        format!(
            "INSERT INTO {table} (k, v) SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        )
    }
    pub fn delete(table: &str) -> String {
        format!("DELETE FROM {table} WHERE k = ANY($1::text[])")
    }
    /// Keys from `$1` (`>` when `exclusive`), below `$3` when `bounded`,
    /// at most `$2`, in order.
    pub fn scan(table: &str, exclusive: bool, bounded: bool) -> String {
        let from = if exclusive { ">" } else { ">=" };
        let bound = if bounded { "AND k < $3" } else { "" };
        format!("SELECT k, v FROM {table} WHERE k {from} $1 {bound} ORDER BY k LIMIT $2")
    }
}

/// How long taking a lease waits for a row lock before ending the
/// sessions of the expired holder that keep it.
const LEASE_LOCK_WAIT_MS: u64 = 500;

/// Most heads remembered before the cache is cleared.
const MAX_CACHED_HEADS: usize = 200_000;
/// Tries of one group when another writer's rows keep conflicting.
const ATTEMPTS: usize = 3;
/// Tries of reading back a commit whose outcome is unknown.
const READ_BACK_TRIES: u32 = 5;

struct Inner {
    /// Connections for reads, on the server's runtime.
    pool: Pool,
    /// The writer's two connections (a group, and reading back a commit
    /// whose outcome is unknown), on the writer thread's runtime.
    writer_pool: Pool,
    /// Heads of streams this node wrote or read, so an append needs no read
    /// first. Only trusted when they equal what the appender expects.
    heads: DashMap<String, Seq>,
    connect_timeout: Duration,
}

pub struct PostgresStore {
    inner: Arc<Inner>,
    queue: WriteQueue,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PostgresStore {
    /// Connects, checks that the schema is current (see `schema::check`)
    /// and starts the writer.
    pub async fn open(
        options: &PostgresOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let pool = pool(options)?;
        {
            let client = pool.get().await.map_err(pool_error)?;
            schema::check(&**client, &options.schema)
                .await
                .map_err(StoreError::backend)?;
        }
        let mut writer_options = PostgresOptions {
            pool_size: 2,
            ..options.clone()
        };
        if let Some(node) = &options.node {
            writer_options.config.application_name(writer_name(node));
        }
        let writer_pool = self::pool(&writer_options)?;
        let inner = Arc::new(Inner {
            pool,
            writer_pool,
            heads: DashMap::new(),
            connect_timeout: options.connect_timeout,
        });
        let (queue, rx) = WriteQueue::new(options.queue);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::backend)?;
        let (writer_inner, max_batch) = (inner.clone(), options.max_batch.max(1));
        let writer = std::thread::Builder::new()
            .name("surge-pg-writer".into())
            .spawn(move || runtime.block_on(writer_loop(writer_inner, rx, max_batch, metrics)))
            .map_err(StoreError::backend)?;
        Ok(PostgresStore {
            inner,
            queue,
            writer: Mutex::new(Some(writer)),
        })
    }
}

/// The table `name` of the catalog, or an error naming it.
fn table(name: &str) -> Result<&'static str, StoreError> {
    tables::ALL
        .iter()
        .find(|t| **t == name)
        .copied()
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "read table '{name}' is not in the schema (src/store/tables.rs)"
            ))
        })
}

/// The least string greater than every string starting with `prefix`
/// (byte order, i.e. code point order), if there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

async fn writer_loop(
    inner: Arc<Inner>,
    rx: mpsc::Receiver<WriteOp>,
    max_batch: usize,
    m: Arc<Metrics>,
) {
    run_groups(rx, max_batch, &m, |ops| commit_group(&inner, ops, &m)).await
}

type Results = Vec<Option<Result<Seq, StoreError>>>;

/// Why a group was not committed.
enum Failure {
    /// Another writer's rows conflicted: read the heads again and retry.
    Retry,
    /// Every caller not yet answered gets this error.
    Fail(StoreError),
}

/// What one attempt writes.
#[derive(Default)]
struct Plan<'a> {
    /// Heads read from the store for this attempt.
    fetched: HashMap<String, Seq>,
    /// Heads after the appends planned so far.
    heads: HashMap<&'a str, Seq>,
    /// (op index, new head) of each planned append.
    appends: Vec<(usize, Seq)>,
    event_streams: Vec<&'a str>,
    event_seqs: Vec<i64>,
    event_payloads: Vec<&'a [u8]>,
    event_epochs: Vec<i64>,
    /// Read-table rows, the last write per key: `None` deletes.
    rows: HashMap<(&'static str, &'a str), Option<&'a [u8]>>,
    /// Newest snapshot per stream, and every op waiting on one.
    snapshots: HashMap<&'a str, &'a Snapshot>,
    snapshot_ops: Vec<(usize, Seq)>,
    row_ops: Vec<usize>,
}

impl<'a> Plan<'a> {
    fn head(&self, inner: &Inner, stream: &str) -> Seq {
        self.heads
            .get(stream)
            .or_else(|| self.fetched.get(stream))
            .copied()
            .or_else(|| inner.heads.get(stream).map(|h| *h))
            .unwrap_or(0)
    }

    fn rows(&mut self, ops: &'a [IndexOp]) -> Result<(), StoreError> {
        let mut checked = Vec::with_capacity(ops.len());
        for op in ops {
            let (IndexOp::Put { table: t, key, .. } | IndexOp::Delete { table: t, key }) = op;
            let value = match op {
                IndexOp::Put { value, .. } => Some(value.as_slice()),
                IndexOp::Delete { .. } => None,
            };
            checked.push(((table(t)?, key.as_str()), value));
        }
        self.rows.extend(checked);
        Ok(())
    }

    /// Plans append `i` at the head it expects (or refuses it).
    fn append(
        &mut self,
        inner: &Inner,
        i: usize,
        req: &'a AppendRequest,
    ) -> Result<(), StoreError> {
        let head = self.head(inner, &req.stream);
        if head != req.expected {
            return Err(StoreError::Conflict {
                stream: req.stream.clone(),
                expected: req.expected,
                actual: head,
            });
        }
        self.rows(&req.index)?;
        for (n, event) in req.events.iter().enumerate() {
            self.event_streams.push(&req.stream);
            self.event_seqs.push((head + 1 + n as Seq) as i64);
            self.event_payloads.push(event);
            self.event_epochs
                .push(req.fence.map_or(0, |f| f.epoch.min(i64::MAX as u64) as i64));
        }
        let new_head = head + req.events.len() as Seq;
        self.heads.insert(&req.stream, new_head);
        self.appends.push((i, new_head));
        Ok(())
    }

    fn snapshot(&mut self, i: usize, stream: &'a str, snap: &'a Snapshot) {
        let kept = self.snapshots.entry(stream).or_insert(snap);
        if snap.seq > kept.seq {
            *kept = snap;
        }
        self.snapshot_ops.push((i, snap.seq));
    }

    /// Drops the cached heads of every stream this plan read or wrote.
    fn forget_heads(&self, inner: &Inner) {
        for stream in self.heads.keys() {
            inner.heads.remove(*stream);
        }
        for stream in self.fetched.keys() {
            inner.heads.remove(stream);
        }
    }

    fn is_empty(&self) -> bool {
        self.event_seqs.is_empty() && self.rows.is_empty() && self.snapshots.is_empty()
    }
}

/// Writes one group and answers every caller in it.
async fn commit_group(inner: &Inner, ops: Vec<WriteOp>, m: &Metrics) {
    let mut results: Results = (0..ops.len()).map(|_| None).collect();
    for attempt in 1..=ATTEMPTS {
        // After a conflict, no cached or assumed head is trusted.
        match try_group(inner, &ops, &mut results, attempt > 1).await {
            Ok(()) => break,
            Err(Failure::Retry) if attempt < ATTEMPTS => continue,
            Err(Failure::Retry) => {
                fail_open(
                    &mut results,
                    StoreError::Unavailable(
                        "PostgreSQL: another writer kept conflicting with this group".into(),
                    ),
                );
            }
            Err(Failure::Fail(e)) => {
                fail_open(&mut results, e);
                break;
            }
        }
    }
    for (op, result) in ops.into_iter().zip(results) {
        op.answer(
            result.unwrap_or_else(|| Err(StoreError::Backend("not written".into()))),
            m,
        );
    }
}

fn fail_open(results: &mut Results, e: StoreError) {
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = Some(Err(e.clone()));
    }
}

/// Heads of the streams the group appends to whose cached head is not what
/// the appender expects (unknown, or moved by another writer). Only a read
/// head prevents a gap: an append expecting more than the stream holds
/// (after an earlier append of its pipeline failed) conflicts with no row.
async fn fetch_heads(
    client: &deadpool_postgres::Client,
    ops: &[WriteOp],
    results: &Results,
    inner: &Inner,
    read_all: bool,
) -> Result<HashMap<String, Seq>, StoreError> {
    let mut wanted: Vec<&str> = Vec::new();
    for (op, done) in ops.iter().zip(results) {
        if let (WriteOp::Append(req, _), None) = (op, done) {
            let cached = inner.heads.get(&req.stream).map(|h| *h);
            // A stream expected empty and unknown here needs no read: its
            // first insert (sequence 1) conflicts if it is not empty.
            let trusted = !read_all
                && (cached == Some(req.expected) || (cached.is_none() && req.expected == 0));
            if !trusted && !wanted.contains(&req.stream.as_str()) {
                wanted.push(&req.stream);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let st = client.prepare_cached(sql::HEADS).await.map_err(pg)?;
    let rows = client.query(&st, &[&wanted]).await.map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            let seq: Option<i64> = r.get(1);
            (r.get::<_, String>(0), seq.unwrap_or(0) as Seq)
        })
        .collect())
}

/// One attempt at a group: plan, one transaction, one commit.
async fn try_group(
    inner: &Inner,
    ops: &[WriteOp],
    results: &mut Results,
    read_all: bool,
) -> Result<(), Failure> {
    let mut client = inner
        .writer_pool
        .get()
        .await
        .map_err(|e| Failure::Fail(pool_error(e)))?;
    let fetched = fetch_heads(&client, ops, results, inner, read_all)
        .await
        .map_err(Failure::Fail)?;
    for (stream, head) in &fetched {
        inner.heads.insert(stream.clone(), *head);
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| Failure::Fail(pg(e)))?;
    refuse_stale_fences(&tx, ops, results)
        .await
        .map_err(Failure::Fail)?;
    let mut plan = Plan {
        fetched,
        ..Plan::default()
    };
    for (i, op) in ops.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let planned = match op {
            WriteOp::Append(req, _) => plan.append(inner, i, req),
            WriteOp::Snapshot(stream, snap, _) => {
                plan.snapshot(i, stream, snap);
                Ok(())
            }
            WriteOp::Rows(rows, _) => plan.rows(rows).map(|()| plan.row_ops.push(i)),
        };
        if let Err(e) = planned {
            results[i] = Some(Err(e));
        }
    }
    if plan.is_empty() {
        drop(tx);
        answer(inner, &plan, results);
        return Ok(());
    }
    let inserted = write_plan(&tx, &plan).await.map_err(Failure::Fail)?;
    if inserted != plan.event_seqs.len() as u64 {
        // Another writer holds some of these sequence numbers: roll back
        // (dropping the transaction does), forget the heads, plan again.
        drop(tx);
        plan.forget_heads(inner);
        return Err(Failure::Retry);
    }
    if let Err(e) = tx.commit().await {
        drop(client);
        plan.forget_heads(inner);
        if !committed(inner, &plan).await {
            return Err(Failure::Fail(StoreError::Unavailable(format!(
                "PostgreSQL: the commit failed ({}) and was not found written",
                describe(&e)
            ))));
        }
        tracing::warn!(error = %describe(&e), "a commit reported failure but was found written");
    }
    answer(inner, &plan, results);
    Ok(())
}

/// Refuses (`Fenced`) every open append of the group made under a shard
/// epoch that is no longer current. The lease rows stay locked until the
/// group commits, so no takeover lands between this check and the commit.
async fn refuse_stale_fences(
    tx: &deadpool_postgres::Transaction<'_>,
    ops: &[WriteOp],
    results: &mut Results,
) -> Result<(), StoreError> {
    let mut shards: Vec<i32> = Vec::new();
    for (op, done) in ops.iter().zip(results.iter()) {
        if let (WriteOp::Append(req, _), None) = (op, done) {
            if let Some(f) = req.fence {
                let shard = i32::try_from(f.shard).unwrap_or(i32::MAX);
                if !shards.contains(&shard) {
                    shards.push(shard);
                }
            }
        }
    }
    if shards.is_empty() {
        return Ok(());
    }
    let st = tx.prepare_cached(sql::FENCES).await.map_err(pg)?;
    let current: HashMap<u32, u64> = tx
        .query(&st, &[&shards])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
        .collect();
    for (op, done) in ops.iter().zip(results.iter_mut()) {
        if let (WriteOp::Append(req, _), None) = (op, &done) {
            if let Some(f) = req.fence {
                let now = current.get(&f.shard).copied().unwrap_or(0);
                if now != f.epoch {
                    *done = Some(Err(StoreError::Fenced {
                        shard: f.shard,
                        epoch: f.epoch,
                        current: now,
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Answers the planned operations of a committed group and remembers the
/// new heads.
fn answer(inner: &Inner, plan: &Plan<'_>, results: &mut Results) {
    if inner.heads.len() + plan.heads.len() > MAX_CACHED_HEADS {
        inner.heads.clear();
    }
    for (stream, head) in &plan.heads {
        inner.heads.insert((*stream).to_owned(), *head);
    }
    for (i, head) in &plan.appends {
        results[*i] = Some(Ok(*head));
    }
    for (i, seq) in &plan.snapshot_ops {
        results[*i] = Some(Ok(*seq));
    }
    for i in &plan.row_ops {
        results[*i] = Some(Ok(0));
    }
}

/// Writes a plan inside `tx`, every statement pipelined on the one
/// connection; returns how many events were inserted.
async fn write_plan(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &Plan<'_>,
) -> Result<u64, StoreError> {
    let mut puts: HashMap<&'static str, (Vec<&str>, Vec<&[u8]>)> = HashMap::new();
    let mut deletes: HashMap<&'static str, Vec<&str>> = HashMap::new();
    for ((t, key), value) in &plan.rows {
        match value {
            Some(v) => {
                let (keys, values) = puts.entry(t).or_default();
                keys.push(key);
                values.push(v);
            }
            None => deletes.entry(t).or_default().push(key),
        }
    }
    let snap_streams: Vec<&str> = plan.snapshots.keys().copied().collect();
    let snap_seqs: Vec<i64> = plan.snapshots.values().map(|s| s.seq as i64).collect();
    let snap_payloads: Vec<&[u8]> = plan
        .snapshots
        .values()
        .map(|s| s.payload.as_slice())
        .collect();

    let events = async {
        if plan.event_seqs.is_empty() {
            return Ok(0);
        }
        let st = tx.prepare_cached(sql::APPEND).await?;
        tx.execute(
            &st,
            &[
                &plan.event_streams,
                &plan.event_seqs,
                &plan.event_payloads,
                &plan.event_epochs,
            ],
        )
        .await
    };
    let put_rows =
        futures_util::future::try_join_all(puts.iter().map(|(t, (keys, values))| async move {
            let st = tx.prepare_cached(&sql::put(t)).await?;
            tx.execute(&st, &[keys, values]).await
        }));
    let delete_rows =
        futures_util::future::try_join_all(deletes.iter().map(|(t, keys)| async move {
            let st = tx.prepare_cached(&sql::delete(t)).await?;
            tx.execute(&st, &[keys]).await
        }));
    let snapshots = async {
        if snap_streams.is_empty() {
            return Ok(0);
        }
        let st = tx.prepare_cached(sql::SNAPSHOT_PUT).await?;
        tx.execute(&st, &[&snap_streams, &snap_seqs, &snap_payloads])
            .await
    };
    let (inserted, _, _, _) =
        futures_util::try_join!(events, put_rows, delete_rows, snapshots).map_err(pg)?;
    Ok(inserted)
}

/// After a `COMMIT` whose outcome is unknown: whether the group's first
/// event is in the journal (a transaction is all or nothing). `false` when
/// it is absent, someone else's, the group wrote no event, or the database
/// cannot be reached to tell.
async fn committed(inner: &Inner, plan: &Plan<'_>) -> bool {
    let (Some(stream), Some(seq), Some(payload)) = (
        plan.event_streams.first(),
        plan.event_seqs.first(),
        plan.event_payloads.first(),
    ) else {
        return false;
    };
    for attempt in 0..READ_BACK_TRIES {
        if attempt > 0 {
            tokio::time::sleep(inner.connect_timeout / READ_BACK_TRIES).await;
        }
        let Ok(client) = inner.writer_pool.get().await else {
            continue;
        };
        match client.query_opt(sql::READ_BACK, &[stream, seq]).await {
            Ok(row) => return row.is_some_and(|r| r.get::<_, &[u8]>(0) == *payload),
            Err(e) => tracing::warn!(error = %describe(&e), "reading back an unknown commit"),
        }
    }
    false
}

impl PostgresStore {
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }
}

/// Shards and epochs as the lease statements take them.
fn fence_arrays(held: &[Fence]) -> (Vec<i32>, Vec<i64>) {
    held.iter()
        .map(|f| {
            (
                i32::try_from(f.shard).unwrap_or(i32::MAX),
                f.epoch.min(i64::MAX as u64) as i64,
            )
        })
        .unzip()
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

#[async_trait]
impl Coordination for PostgresStore {
    async fn init_shards(&self, shards: u32) -> Result<u32, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(sql::SETTING_INIT, &[&"shards", &shards.to_string()])
            .await
            .map_err(pg)?;
        let fixed: String = tx
            .query_one(sql::SETTING_GET, &[&"shards"])
            .await
            .map_err(pg)?
            .get(0);
        let fixed: u32 = fixed
            .parse()
            .map_err(|_| StoreError::Backend(format!("cluster_settings.shards is '{fixed}'")))?;
        let count = i32::try_from(fixed).unwrap_or(i32::MAX);
        tx.execute(sql::SHARDS_INIT, &[&count]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(fixed)
    }

    async fn heartbeat(&self, node: &str, addr: &str, draining: bool) -> Result<(), StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::HEARTBEAT).await.map_err(pg)?;
        client
            .execute(&st, &[&node, &addr, &draining])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute(sql::LEAVE, &[&node]).await.map_err(pg)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::MEMBERS).await.map_err(pg)?;
        let rows = client.query(&st, &[]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Member {
                node: r.get(0),
                addr: r.get(1),
                draining: r.get(2),
                silent_for: millis(r.get(3)),
            })
            .collect())
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::LEASES).await.map_err(pg)?;
        let rows = client.query(&st, &[]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Lease {
                shard: r.get::<_, i32>(0) as u32,
                owner: r.get(1),
                epoch: r.get::<_, i64>(2) as u64,
                remaining: millis(r.get(3)),
            })
            .collect())
    }

    async fn acquire(
        &self,
        node: &str,
        shards: &[u32],
        ttl: Duration,
    ) -> Result<Vec<Fence>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let shards: Vec<i32> = shards
            .iter()
            .map(|s| i32::try_from(*s).unwrap_or(i32::MAX))
            .collect();
        let mut client = self.client().await?;
        for attempt in 0..2 {
            let tx = client.transaction().await.map_err(pg)?;
            // An expired owner's append transaction may still hold a lease
            // row (its process paused or cut off mid-commit); waiting for
            // it would delay the takeover until the database ends it.
            tx.batch_execute(&format!("SET LOCAL lock_timeout = {LEASE_LOCK_WAIT_MS}"))
                .await
                .map_err(pg)?;
            let st = tx.prepare_cached(sql::ACQUIRE).await.map_err(pg)?;
            match tx.query(&st, &[&node, &shards, &ttl.as_secs_f64()]).await {
                Ok(rows) => {
                    tx.commit().await.map_err(pg)?;
                    return Ok(rows
                        .iter()
                        .map(|r| Fence {
                            shard: r.get::<_, i32>(0) as u32,
                            epoch: r.get::<_, i64>(1) as u64,
                        })
                        .collect());
                }
                Err(e) if attempt == 0 && e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    drop(tx);
                    // End the writer sessions of the nodes whose leases on
                    // these shards expired: they may not write any more, and
                    // their open transaction is what holds the rows.
                    let ended = client
                        .query(sql::END_EXPIRED_WRITERS, &[&shards, &node])
                        .await
                        .map_err(pg)?;
                    tracing::warn!(
                        sessions = ended.len(),
                        "ended the writer sessions of expired lease holders"
                    );
                }
                Err(e) => return Err(pg(e)),
            }
        }
        Ok(Vec::new())
    }

    async fn renew(
        &self,
        node: &str,
        held: &[Fence],
        ttl: Duration,
    ) -> Result<Vec<u32>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (shards, epochs) = fence_arrays(held);
        let client = self.client().await?;
        let st = client.prepare_cached(sql::RENEW).await.map_err(pg)?;
        let rows = client
            .query(&st, &[&node, &shards, &epochs, &ttl.as_secs_f64()])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
    }

    async fn release(&self, node: &str, held: &[Fence]) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let (shards, epochs) = fence_arrays(held);
        let client = self.client().await?;
        let st = client.prepare_cached(sql::RELEASE).await.map_err(pg)?;
        client
            .execute(&st, &[&node, &shards, &epochs])
            .await
            .map_err(pg)?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn submit(&self, req: AppendRequest) -> Result<AppendTicket, StoreError> {
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
        let client = self.client().await?;
        let st = client.prepare_cached(sql::READ).await.map_err(pg)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client
            .query(&st, &[&stream, &(after as i64), &limit])
            .await
            .map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| RecordedEvent {
                seq: r.get::<_, i64>(0) as Seq,
                payload: r.get(1),
            })
            .collect())
    }

    async fn head(&self, stream: &str) -> Result<Seq, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::HEAD).await.map_err(pg)?;
        let row = client.query_opt(&st, &[&stream]).await.map_err(pg)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as Seq))
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        self.queue.snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::SNAPSHOT_GET).await.map_err(pg)?;
        let row = client.query_opt(&st, &[&stream]).await.map_err(pg)?;
        Ok(row.map(|r| Snapshot {
            seq: r.get::<_, i64>(0) as Seq,
            payload: r.get(1),
        }))
    }

    async fn write_rows(&self, ops: Vec<IndexOp>) -> Result<(), StoreError> {
        self.queue.rows(ops).await
    }

    async fn get(&self, table_name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = table(table_name)?;
        let client = self.client().await?;
        let st = client.prepare_cached(&sql::get(t)).await.map_err(pg)?;
        let row = client.query_opt(&st, &[&key]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn scan(
        &self,
        table_name: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let t = table(table_name)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (exclusive, start) = match after {
            Some(a) if a >= prefix => (true, a),
            _ => (false, prefix),
        };
        let end = prefix_end(prefix);
        let client = self.client().await?;
        let st = client
            .prepare_cached(&sql::scan(t, exclusive, end.is_some()))
            .await
            .map_err(pg)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = match &end {
            Some(end) => client.query(&st, &[&start, &limit, end]).await,
            None => client.query(&st, &[&start, &limit]).await,
        }
        .map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect())
    }

    fn coordination(&self) -> Option<&dyn Coordination> {
        Some(self)
    }

    /// Appends check the shard's lease in their own transaction; here a
    /// stale owner is only turned away before it recovers anything.
    async fn fence_stream(&self, _stream: &str, fence: Fence) -> Result<(), StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql::LEASE_EPOCH).await.map_err(pg)?;
        let shard = i32::try_from(fence.shard).unwrap_or(i32::MAX);
        let current = client
            .query_opt(&st, &[&shard])
            .await
            .map_err(pg)?
            .map_or(0, |r| r.get::<_, i64>(0) as u64);
        if current > fence.epoch {
            return Err(StoreError::Fenced {
                shard: fence.shard,
                epoch: fence.epoch,
                current,
            });
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.queue.is_open().await {
            return Err(StoreError::Closed);
        }
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(pg)?;
        Ok(())
    }

    async fn close(&self) {
        self.queue.close().await;
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.inner.pool.close();
        self.inner.writer_pool.close();
    }
}

/// The PostgreSQL backend's options, from the settings.
impl crate::config::Settings {
    /// How the PostgreSQL backend connects (`store = postgres`, `surge
    /// migrate`).
    pub fn postgres(&self) -> Result<PostgresOptions, crate::config::ConfigError> {
        Ok(PostgresOptions {
            config: self.postgres_config()?,
            schema: self.postgres_schema.clone(),
            pool_size: self.postgres_pool_size,
            connect_timeout: std::time::Duration::from_millis(self.postgres_connect_timeout_ms),
            statement_timeout: std::time::Duration::from_millis(self.postgres_statement_timeout_ms),
            ca_file: self.postgres_ca_file.clone(),
            max_batch: self.journal_max_batch,
            queue: self.journal_queue,
            // Cluster mode: the writer's sessions are named after the node,
            // so a node taking over an expired lease can end them.
            node: if self.cluster {
                Some(self.node_id()?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_the_first_key_without_it() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("q1|").as_deref(), Some("q1}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        // The successor of U+D7FF skips the surrogates.
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for key in ["q1|", "q1|a", "q1|\u{10FFFF}x", "q1|~~"] {
            assert!(key < prefix_end("q1|").unwrap().as_str());
        }
        assert!("q1}" >= prefix_end("q1|").unwrap().as_str());
    }
}
