//! The bounded write queue both backends put in front of their single
//! writer: callers enqueue an operation with a reply channel; the writer
//! takes whatever is queued, commits it as one group, and answers each.

use std::future::Future;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, RwLock};

use super::{AppendRequest, AppendTicket, IndexOp, Seq, Snapshot, StoreError};
use crate::metrics::Metrics;

/// One queued write and where its result goes.
pub(crate) enum WriteOp {
    Append(AppendRequest, oneshot::Sender<Result<Seq, StoreError>>),
    Snapshot(String, Snapshot, oneshot::Sender<Result<Seq, StoreError>>),
    /// Read-table writes outside any stream.
    Rows(Vec<IndexOp>, oneshot::Sender<Result<Seq, StoreError>>),
}

impl WriteOp {
    /// Sends the result to the caller (counting successful appends).
    pub(crate) fn answer(self, result: Result<Seq, StoreError>, m: &Metrics) {
        match self {
            WriteOp::Append(_, reply) => {
                if result.is_ok() {
                    m.journal_appends.inc();
                }
                let _ = reply.send(result);
            }
            WriteOp::Snapshot(_, _, reply) | WriteOp::Rows(_, reply) => {
                let _ = reply.send(result);
            }
        }
    }
}

/// The sending side; closing it lets the writer drain and stop.
pub(crate) struct WriteQueue {
    sender: RwLock<Option<mpsc::Sender<WriteOp>>>,
}

impl WriteQueue {
    /// A queue of `bound` operations (callers wait when it is full) and the
    /// receiver its writer reads.
    pub(crate) fn new(bound: usize) -> (WriteQueue, mpsc::Receiver<WriteOp>) {
        let (tx, rx) = mpsc::channel(bound.max(1));
        (
            WriteQueue {
                sender: RwLock::new(Some(tx)),
            },
            rx,
        )
    }

    async fn enqueue(&self, op: WriteOp) -> Result<(), StoreError> {
        let sender = self.sender.read().await.clone().ok_or(StoreError::Closed)?;
        sender.send(op).await.map_err(|_| StoreError::Closed)
    }

    pub(crate) async fn append(&self, req: AppendRequest) -> Result<AppendTicket, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(WriteOp::Append(req, tx)).await?;
        Ok(rx)
    }

    pub(crate) async fn snapshot(&self, stream: &str, snap: Snapshot) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(WriteOp::Snapshot(stream.to_owned(), snap, tx))
            .await?;
        rx.await.map_err(|_| StoreError::Closed)?.map(|_| ())
    }

    pub(crate) async fn rows(&self, ops: Vec<IndexOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.enqueue(WriteOp::Rows(ops, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?.map(|_| ())
    }

    pub(crate) async fn is_open(&self) -> bool {
        self.sender.read().await.is_some()
    }

    /// Stops accepting writes; the writer ends once it drained the queue.
    pub(crate) async fn close(&self) {
        drop(self.sender.write().await.take());
    }
}

/// An async backend's writer: takes what is queued (up to `max_batch`),
/// has `commit` write and answer it as one group, and records the group in
/// the journal metrics; ends when the queue is closed and drained.
pub(crate) async fn run_groups<F, Fut>(
    mut rx: mpsc::Receiver<WriteOp>,
    max_batch: usize,
    m: &Metrics,
    mut commit: F,
) where
    F: FnMut(Vec<WriteOp>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ops = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut ops, max_batch).await > 0 {
        let started = Instant::now();
        let n = ops.len();
        commit(std::mem::take(&mut ops)).await;
        m.journal_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        m.journal_batch_size.observe(n as f64);
        m.journal_commits.inc();
    }
}
