//! Tailing a time-keyed feed table (`{ms:020}|{what}` keys) written by
//! every node: the search indexer tails the catalog feed, trending tails
//! the activity feed. A round re-reads from an overlap before its
//! checkpoint, so a row committed late (dated when it was decided) is
//! still seen, and skips the rows it applied inside that overlap.

use std::collections::BTreeSet;

use crate::store::{IndexOp, Store, StoreError};

const PAGE: usize = 1_000;

/// Where a tail stands: how far it applied, and what it applied inside the
/// overlap (not applied again).
#[derive(Debug, Default)]
pub struct Tail {
    pub checkpoint: Option<i64>,
    seen: BTreeSet<String>,
}

/// One round's new rows, and the newest time any row read carried.
pub struct Round {
    pub rows: Vec<(String, Vec<u8>)>,
    pub newest: i64,
}

/// How much one round may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub overlap_ms: i64,
    /// New rows taken at most; more wait for the next round.
    pub rows: usize,
    /// Rows read at most, counting the overlap's rows read again.
    pub read: usize,
}

impl Tail {
    pub fn at(checkpoint: Option<i64>) -> Tail {
        Tail {
            checkpoint,
            seen: BTreeSet::new(),
        }
    }

    /// A tail as it was saved: its checkpoint and the keys it had applied
    /// inside the overlap.
    pub fn restored(checkpoint: Option<i64>, seen: impl IntoIterator<Item = String>) -> Tail {
        Tail {
            checkpoint,
            seen: seen.into_iter().collect(),
        }
    }

    /// The keys applied inside the overlap (to save with the checkpoint).
    pub fn seen(&self) -> impl Iterator<Item = &String> {
        self.seen.iter()
    }

    /// Starts over from `checkpoint` (after a rebuild).
    pub fn reset(&mut self, checkpoint: i64) {
        self.checkpoint = Some(checkpoint);
        self.seen.clear();
    }

    /// Reads the rows of `table` after `checkpoint − overlap` not applied
    /// yet (the caller has a checkpoint).
    pub async fn read(
        &self,
        store: &dyn Store,
        table: &str,
        limits: Limits,
    ) -> Result<Round, StoreError> {
        let from = self.checkpoint.unwrap_or(0) - limits.overlap_ms;
        let mut round = Round {
            rows: Vec::new(),
            newest: from,
        };
        let mut after = format!("{:020}|", from.max(0));
        let mut read = 0;
        'pages: while round.rows.len() < limits.rows && read < limits.read {
            let page = store.scan(table, "", Some(&after), PAGE).await?;
            read += page.len();
            let last = page.len() < PAGE;
            let next = page.last().map(|(k, _)| k.clone());
            for (k, v) in page {
                if round.rows.len() >= limits.rows {
                    break 'pages;
                }
                let Some(ms) = k.split_once('|').and_then(|(ms, _)| ms.parse().ok()) else {
                    continue;
                };
                round.newest = round.newest.max(ms);
                if !self.seen.contains(&k) {
                    round.rows.push((k, v));
                }
            }
            match next {
                Some(k) if !last => after = k,
                _ => break,
            }
        }
        Ok(round)
    }

    /// The checkpoint after a round whose newest row is dated `newest`:
    /// never past `now` (a row dated by a node whose clock runs ahead does
    /// not hide the others') nor backwards.
    pub fn next_checkpoint(&self, newest: i64, now: i64) -> i64 {
        newest.min(now).max(self.checkpoint.unwrap_or(0))
    }

    /// Records `applied` keys and moves to `checkpoint` (from
    /// `next_checkpoint`), forgetting keys older than its overlap.
    pub fn advance(
        &mut self,
        applied: impl IntoIterator<Item = String>,
        checkpoint: i64,
        overlap_ms: i64,
    ) {
        self.checkpoint = Some(checkpoint);
        self.seen.extend(applied);
        let oldest = format!("{:020}|", (checkpoint - overlap_ms).max(0));
        self.seen = self.seen.split_off(&oldest);
    }
}

/// Deletes a feed's rows older than its retention, once a minute, on the
/// node that runs the cluster-wide chores.
pub struct Pruning {
    table: &'static str,
    retention_ms: i64,
    last: std::time::Instant,
}

impl Pruning {
    pub fn new(table: &'static str, retention_ms: i64) -> Pruning {
        Pruning {
            table,
            retention_ms,
            last: std::time::Instant::now(),
        }
    }

    /// Prunes if a minute has passed since the last time and this node
    /// runs the chores.
    pub async fn when_due(&mut self, store: &dyn Store, duty: &crate::cluster::Duty) {
        if self.last.elapsed() < std::time::Duration::from_secs(60) || !duty.chores() {
            return;
        }
        self.last = std::time::Instant::now();
        let before = chrono::Utc::now().timestamp_millis() - self.retention_ms;
        if let Err(e) = prune(store, self.table, before).await {
            tracing::warn!(table = self.table, error = %e, "feed not pruned");
        }
    }
}

/// Deletes up to 4,096 rows of feed `table` dated before `before_ms`.
pub async fn prune(
    store: &dyn Store,
    table: &'static str,
    before_ms: i64,
) -> Result<usize, StoreError> {
    let before = format!("{:020}|", before_ms.max(0));
    let rows = store.scan(table, "", None, 4096).await?;
    let ops: Vec<IndexOp> = rows
        .into_iter()
        .take_while(|(k, _)| *k < before)
        .map(|(key, _)| IndexOp::Delete { table, key })
        .collect();
    let n = ops.len();
    if n > 0 {
        store.write_rows(ops).await?;
    }
    Ok(n)
}
