//! The embedded backend: one redb file under the data directory.
//!
//! Writes go through a single writer thread fed by a bounded queue. The
//! thread takes whatever is queued (up to `max_batch`), applies it in one
//! write transaction, commits once with `Durability::Immediate` (fsync), and
//! only then answers every caller in the batch: one durable write per batch,
//! and no caller hears "ok" before its events are on disk.
//!
//! Reads run on the blocking pool against MVCC read transactions and never
//! wait for the writer.
//!
//! A stream's head (its last sequence number) is the last key of its range
//! in `journal`, found by one descent of the tree, not a row of its own: a
//! `heads` row per stream was one more page rewritten (copy-on-write, with
//! its path to the root) per append, and appends to many streams at once —
//! a burst's notifications, one per user — are random keys. Files written
//! before keep a `heads` table that nothing reads.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use super::backup::{self, Record};
use super::queue::{WriteOp, WriteQueue};
use super::{
    AppendRequest, AppendTicket, IndexOp, RecordedEvent, Seq, Snapshot, Store, StoreError,
};
use crate::metrics::Metrics;

const JOURNAL: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("journal");
const SNAPSHOTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("snapshots");
const INDEX: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("index");

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Bound of the write queue; callers wait (backpressure) when it is full.
    pub queue: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            max_batch: 1024,
            queue: 8192,
        }
    }
}

pub struct RedbStore {
    db: Arc<Database>,
    queue: WriteQueue,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RedbStore {
    /// Opens (creating if needed) `surge.redb` in `dir`.
    pub fn open(
        dir: &Path,
        options: RedbOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        let db = Database::create(dir.join("surge.redb")).map_err(StoreError::backend)?;
        let txn = db.begin_write().map_err(StoreError::backend)?;
        {
            txn.open_table(JOURNAL).map_err(StoreError::backend)?;
            txn.open_table(SNAPSHOTS).map_err(StoreError::backend)?;
            txn.open_table(INDEX).map_err(StoreError::backend)?;
        }
        txn.commit().map_err(StoreError::backend)?;
        let db = Arc::new(db);
        let (queue, rx) = WriteQueue::new(options.queue);
        let writer_db = db.clone();
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("surge-journal".into())
            .spawn(move || writer_loop(&writer_db, rx, max_batch, &metrics))
            .map_err(StoreError::backend)?;
        Ok(RedbStore {
            db,
            queue,
            writer: Mutex::new(Some(writer)),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::backend)?
    }
}

fn writer_loop(db: &Database, mut rx: mpsc::Receiver<WriteOp>, max_batch: usize, m: &Metrics) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = commit_batch(db, &batch);
        m.journal_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        m.journal_batch_size.observe(batch.len() as f64);
        m.journal_commits.inc();
        for (op, result) in batch.drain(..).zip(results) {
            op.answer(result, m);
        }
    }
}

/// Applies a batch in one transaction. A conflicting append is answered with
/// `Conflict` and contributes nothing; the rest of the batch still commits.
fn commit_batch(db: &Database, batch: &[WriteOp]) -> Vec<Result<Seq, StoreError>> {
    let attempt = || -> Result<Vec<Result<Seq, StoreError>>, StoreError> {
        let txn = db.begin_write().map_err(StoreError::backend)?;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut journal = txn.open_table(JOURNAL).map_err(StoreError::backend)?;
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(StoreError::backend)?;
            let mut index = txn.open_table(INDEX).map_err(StoreError::backend)?;
            for op in batch {
                match op {
                    WriteOp::Append(req, _) => {
                        let head = journal_head(&journal, &req.stream)?;
                        if head != req.expected {
                            results.push(Err(StoreError::Conflict {
                                stream: req.stream.clone(),
                                expected: req.expected,
                                actual: head,
                            }));
                            continue;
                        }
                        let mut seq = head;
                        for payload in &req.events {
                            seq += 1;
                            journal
                                .insert((req.stream.as_str(), seq), payload.as_slice())
                                .map_err(StoreError::backend)?;
                        }
                        write_rows(&mut index, &req.index)?;
                        results.push(Ok(seq));
                    }
                    WriteOp::Snapshot(stream, snap, _) => {
                        let newer = snapshots
                            .get(stream.as_str())
                            .map_err(StoreError::backend)?
                            .is_some_and(|g| g.value().0 >= snap.seq);
                        if !newer {
                            snapshots
                                .insert(stream.as_str(), (snap.seq, snap.payload.as_slice()))
                                .map_err(StoreError::backend)?;
                        }
                        results.push(Ok(snap.seq));
                    }
                    WriteOp::Rows(ops, _) => {
                        write_rows(&mut index, ops)?;
                        results.push(Ok(0));
                    }
                }
            }
        }
        txn.commit().map_err(StoreError::backend)?;
        Ok(results)
    };
    match attempt() {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "journal commit failed; the whole batch is rejected");
            batch
                .iter()
                .map(|_| Err(StoreError::Backend(e.to_string())))
                .collect()
        }
    }
}

/// The last sequence number of `stream` (0: no events).
fn journal_head(
    journal: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    stream: &str,
) -> Result<Seq, StoreError> {
    let last = journal
        .range((stream, 0)..=(stream, u64::MAX))
        .map_err(StoreError::backend)?
        .next_back()
        .transpose()
        .map_err(StoreError::backend)?;
    Ok(last.map_or(0, |(k, _)| k.value().1))
}

fn write_rows(
    index: &mut redb::Table<(&str, &str), &[u8]>,
    ops: &[IndexOp],
) -> Result<(), StoreError> {
    for write in ops {
        match write {
            IndexOp::Put { table, key, value } => {
                index
                    .insert((*table, key.as_str()), value.as_slice())
                    .map_err(StoreError::backend)?;
            }
            IndexOp::Delete { table, key } => {
                index
                    .remove((*table, key.as_str()))
                    .map_err(StoreError::backend)?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn submit(&self, req: AppendRequest) -> Result<AppendTicket, StoreError> {
        if req.fence.is_some() {
            // Cluster mode refuses this store at start; never write unfenced.
            return Err(StoreError::Backend(
                "the embedded store is single-node: a fenced append is refused".into(),
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
        let stream = stream.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(StoreError::backend)?;
            let table = txn.open_table(JOURNAL).map_err(StoreError::backend)?;
            let mut out = Vec::new();
            if after == u64::MAX {
                return Ok(out);
            }
            let range = table
                .range((stream.as_str(), after + 1)..=(stream.as_str(), u64::MAX))
                .map_err(StoreError::backend)?;
            for row in range.take(limit) {
                let (k, v) = row.map_err(StoreError::backend)?;
                out.push(RecordedEvent {
                    seq: k.value().1,
                    payload: v.value().to_vec(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn head(&self, stream: &str) -> Result<Seq, StoreError> {
        let stream = stream.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(StoreError::backend)?;
            let table = txn.open_table(JOURNAL).map_err(StoreError::backend)?;
            journal_head(&table, &stream)
        })
        .await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        self.queue.snapshot(stream, snapshot).await
    }

    async fn write_rows(&self, ops: Vec<IndexOp>) -> Result<(), StoreError> {
        self.queue.rows(ops).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let stream = stream.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(StoreError::backend)?;
            let table = txn.open_table(SNAPSHOTS).map_err(StoreError::backend)?;
            Ok(table
                .get(stream.as_str())
                .map_err(StoreError::backend)?
                .map(|g| {
                    let (seq, payload) = g.value();
                    Snapshot {
                        seq,
                        payload: payload.to_vec(),
                    }
                }))
        })
        .await
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (t, key) = (table.to_owned(), key.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(StoreError::backend)?;
            let index = txn.open_table(INDEX).map_err(StoreError::backend)?;
            Ok(index
                .get((t.as_str(), key.as_str()))
                .map_err(StoreError::backend)?
                .map(|g| g.value().to_vec()))
        })
        .await
    }

    async fn scan(
        &self,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let (t, prefix, after) = (
            table.to_owned(),
            prefix.to_owned(),
            after.map(str::to_owned),
        );
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(StoreError::backend)?;
            let index = txn.open_table(INDEX).map_err(StoreError::backend)?;
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => a.as_str(),
                _ => prefix.as_str(),
            };
            let mut out = Vec::new();
            let range = index
                .range((t.as_str(), start)..)
                .map_err(StoreError::backend)?;
            for row in range {
                let (k, v) = row.map_err(StoreError::backend)?;
                let (kt, key) = k.value();
                if kt != t || !key.starts_with(prefix.as_str()) {
                    break;
                }
                if after.as_deref() == Some(key) {
                    continue;
                }
                out.push((key.to_owned(), v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.queue.is_open().await {
            return Err(StoreError::Closed);
        }
        self.blocking(|db| {
            db.begin_read().map_err(StoreError::backend)?;
            Ok(())
        })
        .await
    }

    fn backs_up(&self) -> bool {
        true
    }

    async fn backup(&self, out: mpsc::Sender<bytes::Bytes>) -> Result<backup::Summary, StoreError> {
        self.blocking(move |db| copy_out(db, out)).await
    }

    async fn close(&self) {
        self.queue.close().await;
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// Every row as of one commit (a read transaction; the writer goes on),
/// as backup records.
fn copy_out(db: &Database, out: mpsc::Sender<bytes::Bytes>) -> Result<backup::Summary, StoreError> {
    let txn = db.begin_read().map_err(StoreError::backend)?;
    let mut w = backup::Writer::new(|chunk| out.blocking_send(chunk).is_ok());
    let journal = txn.open_table(JOURNAL).map_err(StoreError::backend)?;
    for row in journal.iter().map_err(StoreError::backend)? {
        let (k, v) = row.map_err(StoreError::backend)?;
        let (stream, seq) = k.value();
        w.push(&Record::Event {
            stream: stream.to_owned(),
            seq,
            data: v.value().to_vec(),
        })?;
    }
    let snapshots = txn.open_table(SNAPSHOTS).map_err(StoreError::backend)?;
    for row in snapshots.iter().map_err(StoreError::backend)? {
        let (k, v) = row.map_err(StoreError::backend)?;
        let (seq, data) = v.value();
        w.push(&Record::Snapshot {
            stream: k.value().to_owned(),
            seq,
            data: data.to_vec(),
        })?;
    }
    let index = txn.open_table(INDEX).map_err(StoreError::backend)?;
    for row in index.iter().map_err(StoreError::backend)? {
        let (k, v) = row.map_err(StoreError::backend)?;
        let (table, key) = k.value();
        w.push(&Record::Row {
            table: table.to_owned(),
            key: key.to_owned(),
            value: v.value().to_vec(),
        })?;
    }
    w.finish()
}

/// Restores a backup into `dir`, which must hold no store yet: written to
/// `surge.redb.restoring` in transactions of 10,000 rows, and renamed to
/// `surge.redb` only once the backup's end checks out (a damaged or cut
/// backup leaves nothing behind).
pub fn restore(dir: &Path, source: impl std::io::Read) -> Result<backup::Summary, String> {
    let target = dir.join("surge.redb");
    if target.exists() {
        return Err(format!(
            "{} already holds a store: restore into an empty data directory",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let partial = dir.join("surge.redb.restoring");
    let _ = std::fs::remove_file(&partial);
    let result = fill(&partial, source);
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, &target).map_err(|e| e.to_string())?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn fill(path: &Path, source: impl std::io::Read) -> Result<backup::Summary, String> {
    let mut reader =
        backup::Reader::new(std::io::BufReader::new(source)).map_err(|e| e.to_string())?;
    let db = Database::create(path).map_err(|e| e.to_string())?;
    loop {
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        let mut more = true;
        {
            let mut journal = txn.open_table(JOURNAL).map_err(|e| e.to_string())?;
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(|e| e.to_string())?;
            let mut index = txn.open_table(INDEX).map_err(|e| e.to_string())?;
            for _ in 0..10_000 {
                let Some(record) = reader.next_record().map_err(|e| e.to_string())? else {
                    more = false;
                    break;
                };
                let done = match &record {
                    Record::Event { stream, seq, data } => journal
                        .insert((stream.as_str(), *seq), data.as_slice())
                        .map(|_| ()),
                    Record::Snapshot { stream, seq, data } => snapshots
                        .insert(stream.as_str(), (*seq, data.as_slice()))
                        .map(|_| ()),
                    Record::Row { table, key, value } => index
                        .insert((table.as_str(), key.as_str()), value.as_slice())
                        .map(|_| ()),
                };
                done.map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        if !more {
            return Ok(reader.summary());
        }
    }
}
