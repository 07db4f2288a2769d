//! Cluster mode on ScyllaDB: shard leases as lightweight transactions, and
//! the journal's per-stream fence (schema/scylla/002_cluster.cql).
//!
//! ScyllaDB's rules for LWT, and how each is kept here:
//! - A conditional batch touches one partition of one table: the fence
//!   lives in the stream's own journal partition (row `seq = 0`, the epoch
//!   as 8 bytes big-endian in `payload`), so a fenced append is one batch
//!   on that partition: `UPDATE … SET payload = E … IF payload = E` on the
//!   fence row plus `INSERT … IF NOT EXISTS` per event. Read-table rows go
//!   in a second batch once the events are in (other partitions).
//! - LWT and plain writes are not mixed on one partition: in cluster mode
//!   every journal write is conditional (the fence, the events); lease rows
//!   are only ever changed by LWT; `lease_epochs` and `members` (plain
//!   writes) are other tables.
//! - Conditional statements carry no client timestamp and are never
//!   retried by the driver (not idempotent).
//! - A conditional write whose answer is lost (timeout, connection cut) has
//!   an unknown outcome: the row is read back at LOCAL_SERIAL (which
//!   finishes or voids any Paxos round in flight) before anyone is answered.
//!
//! Lease expiry uses the nodes' wall clocks (ms): ScyllaDB has no clock a
//! condition can read. Skew costs availability only; the fence keeps data
//! safe whatever the clocks say.

use std::time::Duration;

use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use ::scylla::statement::Consistency;
use ::scylla::value::{CqlValue, Row};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};

use super::{backend, Chunk, Inner, ScyllaStore};
use crate::store::lease::{Coordination, Lease, Member};
use crate::store::{Fence, Seq, StoreError};

/// Most lease transactions in flight at once (each is a Paxos round).
const LEASE_CONCURRENCY: usize = 16;
/// Most compare-and-set attempts when raising a stream's fence.
const FENCE_ATTEMPTS: usize = 8;

pub(super) struct ClusterStatements {
    fence_init: PreparedStatement,
    fence_cas: PreparedStatement,
    serial_row: PreparedStatement,
    setting_init: PreparedStatement,
    setting_get: PreparedStatement,
    lease_init: PreparedStatement,
    lease_get: PreparedStatement,
    leases: PreparedStatement,
    lease_take: PreparedStatement,
    lease_renew: PreparedStatement,
    lease_release: PreparedStatement,
    epoch_record: PreparedStatement,
    heartbeat: PreparedStatement,
    leave: PreparedStatement,
    members: PreparedStatement,
}

/// Every statement of cluster mode, as listed in
/// `schema/scylla/002_cluster.cql` (a test keeps the two the same);
/// `${keyspace}` is replaced when they are prepared.
pub mod cql {
    pub const FENCE_INIT: &str =
        "INSERT INTO ${keyspace}.journal (stream, seq, payload) VALUES (?, 0, ?) IF NOT EXISTS";
    pub const FENCE_CAS: &str =
        "UPDATE ${keyspace}.journal SET payload = ? WHERE stream = ? AND seq = 0 IF payload = ?";
    pub const SERIAL_ROW: &str =
        "SELECT payload FROM ${keyspace}.journal WHERE stream = ? AND seq = ?";
    pub const SETTING_INIT: &str =
        "INSERT INTO ${keyspace}.cluster_settings (name, value) VALUES ('shards', ?) IF NOT EXISTS";
    pub const SETTING_GET: &str =
        "SELECT value FROM ${keyspace}.cluster_settings WHERE name = 'shards'";
    pub const LEASE_INIT: &str =
        "INSERT INTO ${keyspace}.shard_leases (shard, epoch, expires_ms) VALUES (?, 0, 0) IF NOT EXISTS";
    pub const LEASE_GET: &str =
        "SELECT owner, epoch, expires_ms FROM ${keyspace}.shard_leases WHERE shard = ?";
    pub const LEASES: &str = "SELECT shard, owner, epoch, expires_ms FROM ${keyspace}.shard_leases";
    pub const LEASE_TAKE: &str =
        "UPDATE ${keyspace}.shard_leases SET owner = ?, epoch = ?, expires_ms = ? WHERE shard = ? IF epoch = ?";
    pub const LEASE_RENEW: &str =
        "UPDATE ${keyspace}.shard_leases SET expires_ms = ? WHERE shard = ? IF owner = ? AND epoch = ?";
    pub const LEASE_RELEASE: &str =
        "UPDATE ${keyspace}.shard_leases SET owner = null, expires_ms = 0 WHERE shard = ? IF owner = ? AND epoch = ?";
    pub const EPOCH_RECORD: &str =
        "INSERT INTO ${keyspace}.lease_epochs (shard, epoch, owner) VALUES (?, ?, ?)";
    pub const HEARTBEAT: &str =
        "INSERT INTO ${keyspace}.members (node, addr, draining, seen_ms) VALUES (?, ?, ?, ?)";
    pub const LEAVE: &str = "DELETE FROM ${keyspace}.members WHERE node = ?";
    pub const MEMBERS: &str = "SELECT node, addr, draining, seen_ms FROM ${keyspace}.members";

    /// (name, statement), in the order the migration lists them.
    #[cfg(test)]
    pub const ALL: &[(&str, &str)] = &[
        ("fence_init", FENCE_INIT),
        ("fence_cas", FENCE_CAS),
        ("serial_row", SERIAL_ROW),
        ("setting_init", SETTING_INIT),
        ("setting_get", SETTING_GET),
        ("lease_init", LEASE_INIT),
        ("lease_get", LEASE_GET),
        ("leases", LEASES),
        ("lease_take", LEASE_TAKE),
        ("lease_renew", LEASE_RENEW),
        ("lease_release", LEASE_RELEASE),
        ("epoch_record", EPOCH_RECORD),
        ("heartbeat", HEARTBEAT),
        ("leave", LEAVE),
        ("members", MEMBERS),
    ];
}

/// Prepares the cluster statements (needs migration 002 and a server with
/// lightweight transactions).
pub(super) async fn prepare(
    session: &::scylla::client::session::Session,
    ks: &str,
) -> Result<ClusterStatements, StoreError> {
    let prep = |text: &str, idempotent: bool, serial: bool| {
        let cql = text.replace("${keyspace}", ks);
        async move {
            let mut p = session
                .prepare(cql.clone())
                .await
                .map_err(|e| StoreError::Backend(format!("preparing `{cql}`: {e}")))?;
            p.set_is_idempotent(idempotent);
            if serial {
                p.set_consistency(Consistency::LocalSerial);
            }
            Ok::<_, StoreError>(p)
        }
    };
    Ok(ClusterStatements {
        fence_init: prep(cql::FENCE_INIT, false, false).await?,
        fence_cas: prep(cql::FENCE_CAS, false, false).await?,
        serial_row: prep(cql::SERIAL_ROW, true, true).await?,
        setting_init: prep(cql::SETTING_INIT, false, false).await?,
        setting_get: prep(cql::SETTING_GET, true, true).await?,
        lease_init: prep(cql::LEASE_INIT, false, false).await?,
        lease_get: prep(cql::LEASE_GET, true, true).await?,
        leases: prep(cql::LEASES, true, false).await?,
        lease_take: prep(cql::LEASE_TAKE, false, false).await?,
        lease_renew: prep(cql::LEASE_RENEW, false, false).await?,
        lease_release: prep(cql::LEASE_RELEASE, false, false).await?,
        epoch_record: prep(cql::EPOCH_RECORD, true, false).await?,
        heartbeat: prep(cql::HEARTBEAT, true, false).await?,
        leave: prep(cql::LEAVE, true, false).await?,
        members: prep(cql::MEMBERS, true, false).await?,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn epoch_bytes(epoch: u64) -> Vec<u8> {
    epoch.to_be_bytes().to_vec()
}

fn epoch_of(payload: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| StoreError::Backend("a journal fence row is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Whether a conditional statement or batch was applied (`[applied]`, the
/// first column of its answer).
pub(super) fn was_applied(
    result: ::scylla::response::query_result::QueryResult,
) -> Result<bool, StoreError> {
    Ok(result
        .into_rows_result()
        .map_err(backend)?
        .maybe_first_row::<Row>()
        .map_err(backend)?
        .and_then(|r| r.columns.into_iter().next().flatten())
        .is_some_and(|c| matches!(c, CqlValue::Boolean(true))))
}

impl Inner {
    fn cluster(&self) -> Result<&ClusterStatements, StoreError> {
        self.st.cluster.as_ref().ok_or_else(|| {
            StoreError::Backend(
                "cluster mode on ScyllaDB needs scylla_lwt = true on a real cluster".into(),
            )
        })
    }

    /// One journal row read at LOCAL_SERIAL: final, whatever Paxos round
    /// was in flight on the partition.
    async fn serial_row(&self, stream: &str, seq: Seq) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.cluster()?;
        Ok(self
            .first_row::<(Vec<u8>,)>(&c.serial_row, (stream, seq as i64))
            .await?
            .map(|(p,)| p))
    }

    /// The epoch `stream` is fenced at now (0 when never fenced).
    async fn stream_fence(&self, stream: &str) -> Result<u64, StoreError> {
        match self.serial_row(stream, 0).await? {
            Some(p) => epoch_of(&p),
            None => Ok(0),
        }
    }

    pub(super) async fn fence_stream(&self, stream: &str, fence: Fence) -> Result<(), StoreError> {
        let c = self.cluster()?;
        let mine = epoch_bytes(fence.epoch);
        let first = self
            .session
            .execute_unpaged(&c.fence_init, (stream, &mine))
            .await
            .map_err(backend)?;
        if was_applied(first)? {
            return Ok(());
        }
        for _ in 0..FENCE_ATTEMPTS {
            let current = self.stream_fence(stream).await?;
            if current == fence.epoch {
                return Ok(());
            }
            if current > fence.epoch {
                return Err(StoreError::Fenced {
                    shard: fence.shard,
                    epoch: fence.epoch,
                    current,
                });
            }
            let raised = self
                .session
                .execute_unpaged(&c.fence_cas, (&mine, stream, epoch_bytes(current)))
                .await
                .map_err(backend)?;
            if was_applied(raised)? {
                return Ok(());
            }
        }
        Err(StoreError::Backend(format!(
            "{stream}: its fence kept changing under {FENCE_ATTEMPTS} attempts"
        )))
    }

    /// Writes a chunk of appends made under `fence`: one conditional batch
    /// on the stream's partition (the fence unchanged, every event row
    /// new), then the read-table rows.
    pub(super) async fn write_fenced_chunk(
        &self,
        stream: &str,
        chunk: &Chunk,
        fence: Fence,
    ) -> Result<(), StoreError> {
        let c = self.cluster()?;
        let append = self
            .st
            .append_if_absent
            .as_ref()
            .ok_or_else(|| StoreError::Backend("cluster mode needs scylla_lwt".into()))?;
        let mine = epoch_bytes(fence.epoch);
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<Vec<CqlValue>> = Vec::with_capacity(chunk.events.len() + 1);
        batch.append_statement(c.fence_cas.clone());
        values.push(vec![
            CqlValue::Blob(mine.clone()),
            CqlValue::Text(stream.to_owned()),
            CqlValue::Blob(mine),
        ]);
        for (seq, payload) in &chunk.events {
            batch.append_statement(append.clone());
            values.push(vec![
                CqlValue::Text(stream.to_owned()),
                CqlValue::BigInt(*seq as i64),
                CqlValue::Blob(payload.clone()),
            ]);
        }
        batch.set_is_idempotent(false);
        let (first_seq, first_payload) = chunk
            .events
            .first()
            .ok_or_else(|| StoreError::Backend("an empty append".into()))?;
        let applied = match self.session.batch(&batch, values).await {
            Ok(result) => was_applied(result)?,
            // Unknown outcome: what the partition holds now, read at
            // LOCAL_SERIAL, is the answer.
            Err(e) => match self.serial_row(stream, *first_seq).await {
                Ok(Some(p)) if &p == first_payload => true,
                Ok(Some(_)) => false,
                Ok(None) => {
                    return Err(StoreError::Backend(format!(
                        "{stream}: the append was not written ({e})"
                    )))
                }
                Err(read) => {
                    return Err(StoreError::Backend(format!(
                        "{stream}: the append's outcome is unknown ({e}; reading it back: {read})"
                    )))
                }
            },
        };
        if !applied {
            let current = self.stream_fence(stream).await?;
            if current != fence.epoch {
                return Err(StoreError::Fenced {
                    shard: fence.shard,
                    epoch: fence.epoch,
                    current,
                });
            }
            let actual = self.head(stream).await?;
            return Err(StoreError::Conflict {
                stream: stream.to_owned(),
                expected: chunk.first_expected,
                actual,
            });
        }
        self.write_rows(&chunk.index, chunk.ts).await
    }

    /// Runs `f` on each of `items`, at most `LEASE_CONCURRENCY` at once;
    /// the first error wins.
    async fn each<T, R, F, Fut>(&self, items: &[T], f: F) -> Result<Vec<R>, StoreError>
    where
        T: Copy,
        F: Fn(T) -> Fut,
        Fut: std::future::Future<Output = Result<Option<R>, StoreError>>,
    {
        let results: Vec<Result<Option<R>, StoreError>> =
            futures_util::stream::iter(items.iter().copied())
                .map(f)
                .buffered(LEASE_CONCURRENCY)
                .collect()
                .await;
        let mut out = Vec::new();
        for r in results {
            if let Some(v) = r? {
                out.push(v);
            }
        }
        Ok(out)
    }
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n.max(0) as u64)
}

fn shard_key(shard: u32) -> i32 {
    i32::try_from(shard).unwrap_or(i32::MAX)
}

#[async_trait]
impl Coordination for ScyllaStore {
    async fn init_shards(&self, shards: u32) -> Result<u32, StoreError> {
        let i = &self.inner;
        let c = i.cluster()?;
        let first = i
            .session
            .execute_unpaged(&c.setting_init, (i64::from(shards),))
            .await
            .map_err(backend)?;
        let fixed = if was_applied(first)? {
            shards
        } else {
            let (v,) = i
                .first_row::<(i64,)>(&c.setting_get, ())
                .await?
                .ok_or_else(|| StoreError::Backend("cluster_settings.shards is missing".into()))?;
            u32::try_from(v)
                .map_err(|_| StoreError::Backend(format!("cluster_settings.shards is {v}")))?
        };
        if self.leases().await?.len() < fixed as usize {
            let all: Vec<u32> = (0..fixed).collect();
            i.each(&all, |shard| async move {
                i.session
                    .execute_unpaged(&c.lease_init, (shard_key(shard),))
                    .await
                    .map_err(backend)?;
                Ok(None::<()>)
            })
            .await?;
        }
        Ok(fixed)
    }

    async fn heartbeat(&self, node: &str, addr: &str, draining: bool) -> Result<(), StoreError> {
        let i = &self.inner;
        i.session
            .execute_unpaged(&i.cluster()?.heartbeat, (node, addr, draining, now_ms()))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        let i = &self.inner;
        i.session
            .execute_unpaged(&i.cluster()?.leave, (node,))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let i = &self.inner;
        let now = now_ms();
        let mut rows = i
            .session
            .execute_iter(i.cluster()?.members.clone(), ())
            .await
            .map_err(backend)?
            .rows_stream::<(String, Option<String>, Option<bool>, Option<i64>)>()
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some((node, addr, draining, seen)) = rows.try_next().await.map_err(backend)? {
            out.push(Member {
                node,
                addr: addr.unwrap_or_default(),
                draining: draining.unwrap_or(false),
                silent_for: ms(now - seen.unwrap_or(0)),
            });
        }
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let i = &self.inner;
        let now = now_ms();
        let mut rows = i
            .session
            .execute_iter(i.cluster()?.leases.clone(), ())
            .await
            .map_err(backend)?
            .rows_stream::<(i32, Option<String>, Option<i64>, Option<i64>)>()
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some((shard, owner, epoch, expires)) = rows.try_next().await.map_err(backend)? {
            let remaining = match &owner {
                Some(_) => ms(expires.unwrap_or(0) - now),
                None => Duration::ZERO,
            };
            out.push(Lease {
                shard: shard as u32,
                owner,
                epoch: epoch.unwrap_or(0) as u64,
                remaining,
            });
        }
        out.sort_by_key(|l| l.shard);
        Ok(out)
    }

    async fn acquire(
        &self,
        node: &str,
        shards: &[u32],
        ttl: Duration,
    ) -> Result<Vec<Fence>, StoreError> {
        let i = &self.inner;
        let c = i.cluster()?;
        let ttl_ms = ttl.as_millis() as i64;
        i.each(shards, |shard| async move {
            let key = shard_key(shard);
            let Some((owner, epoch, expires)) = i
                .first_row::<(Option<String>, Option<i64>, Option<i64>)>(&c.lease_get, (key,))
                .await?
            else {
                return Ok(None);
            };
            let epoch = epoch.unwrap_or(0);
            let now = now_ms();
            let free = owner.as_deref().is_none_or(|o| o == node) || expires.unwrap_or(0) <= now;
            if !free {
                return Ok(None);
            }
            let next = epoch + 1;
            let taken = i
                .session
                .execute_unpaged(&c.lease_take, (node, next, now + ttl_ms, key, epoch))
                .await
                .map_err(backend)?;
            if !was_applied(taken)? {
                return Ok(None);
            }
            i.session
                .execute_unpaged(&c.epoch_record, (key, next, node))
                .await
                .map_err(backend)?;
            Ok(Some(Fence {
                shard,
                epoch: next as u64,
            }))
        })
        .await
    }

    async fn renew(
        &self,
        node: &str,
        held: &[Fence],
        ttl: Duration,
    ) -> Result<Vec<u32>, StoreError> {
        let i = &self.inner;
        let c = i.cluster()?;
        let ttl_ms = ttl.as_millis() as i64;
        i.each(held, |f| async move {
            let renewed = i
                .session
                .execute_unpaged(
                    &c.lease_renew,
                    (now_ms() + ttl_ms, shard_key(f.shard), node, f.epoch as i64),
                )
                .await
                .map_err(backend)?;
            Ok(was_applied(renewed)?.then_some(f.shard))
        })
        .await
    }

    async fn release(&self, node: &str, held: &[Fence]) -> Result<(), StoreError> {
        let i = &self.inner;
        let c = i.cluster()?;
        i.each(held, |f| async move {
            i.session
                .execute_unpaged(&c.lease_release, (shard_key(f.shard), node, f.epoch as i64))
                .await
                .map_err(backend)?;
            Ok(None::<()>)
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_migration_lists_every_statement_cluster_mode_runs() {
        let text = include_str!("../../../schema/scylla/002_cluster.cql");
        for (name, statement) in super::cql::ALL {
            let line = format!("--   {name}: {statement}");
            assert!(
                text.lines().any(|l| l.trim_end() == line),
                "002_cluster.cql does not list `{line}`"
            );
        }
    }
}
