//! Sale windows: the timer rows that announce a flash sale's opening, and
//! the rows sales made before migration 009 get at start.

use chrono::Utc;

use super::QueueWork;
use crate::actors::entity::{stream_id, CallError};
use crate::actors::queue::{QueueConfig, QueueEntity};
use crate::service::ServiceError;

/// A due row of `queue_timers`.
pub(super) enum TimerDue {
    /// Orders to place or users to tell.
    Work(String),
    /// The window of queue `id` opens (`key`: its row).
    Opening { id: String, key: String },
}

impl QueueWork {
    /// Rows of `queue_timers` due now, for queues whose shard this node
    /// holds: work owed (keyed 0, up to 64, reading at most 16 pages to get
    /// past other nodes' queues) and windows to open (keyed by `opens_at`).
    /// Also answers when the next opening not yet due is (ms).
    pub(super) async fn timers_due(
        &self,
    ) -> Result<(Vec<TimerDue>, Option<i64>), crate::store::StoreError> {
        use crate::store::Pick;
        let table = crate::actors::queue::QUEUE_TIMERS;
        let now = Utc::now().timestamp_millis();
        let mut next = None;
        let due = crate::store::scan_picking(self.store.as_ref(), table, 64, 16, |key, _| {
            let Some((at, id)) = key.split_once('|') else {
                return Pick::Skip;
            };
            let at: i64 = at.parse().unwrap_or(0);
            if at > now {
                next = Some(at);
                return Pick::Stop;
            }
            if !self.duty.mine(&stream_id::<QueueEntity>(id)) {
                return Pick::Skip;
            }
            Pick::Take(match at {
                0 => TimerDue::Work(id.to_owned()),
                _ => TimerDue::Opening {
                    id: id.to_owned(),
                    key: key.clone(),
                },
            })
        })
        .await?;
        Ok((due, next))
    }

    /// Records that queue `id`'s window opened and announces it on
    /// `queue:{id}`; then its timer row goes.
    pub(super) async fn open_window(&self, id: &str, key: String) -> Result<(), ServiceError> {
        match self.queues.open_window(id).await {
            Ok(_) => self.publish_counters(id),
            // Never opened (its creation failed after the row was written).
            Err(CallError::Rejected(crate::domain::DomainError::NotFound(_))) => {}
            Err(e) => return Err(e.into()),
        }
        let table = crate::actors::queue::QUEUE_TIMERS;
        self.store
            .write_rows(vec![crate::store::IndexOp::Delete { table, key }])
            .await?;
        Ok(())
    }

    /// Flash sales opened before `sales_by_end` and window timers existed
    /// (migration 009): their rows, from `sales_by_owner`. Idempotent; run
    /// once at start. Sales that ended are left out.
    pub async fn backfill_sale_windows(&self) -> Result<usize, ServiceError> {
        let now = Utc::now();
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(
                    crate::actors::queue::SALES_BY_OWNER,
                    "",
                    after.as_deref(),
                    256,
                )
                .await?;
            for (key, value) in &page {
                let Some((_, id)) = key.split_once('|') else {
                    continue;
                };
                let Ok(config) = crate::store::codec::decode::<QueueConfig>(1, value) else {
                    continue;
                };
                if config.closes_at.is_some_and(|t| t <= now) {
                    continue;
                }
                use crate::actors::queue::{opening_key, sale_end_key, QUEUE_TIMERS, SALES_BY_END};
                use crate::store::IndexOp;
                rows.push(IndexOp::Put {
                    table: SALES_BY_END,
                    key: sale_end_key(id, config.closes_at),
                    value: value.clone(),
                });
                if let Some(t) = config.opens_at.filter(|t| *t > now) {
                    rows.push(IndexOp::Put {
                        table: QUEUE_TIMERS,
                        key: opening_key(id, t),
                        value: Vec::new(),
                    });
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == 256 => after = Some(k.clone()),
                _ => break,
            }
        }
        let n = rows.len();
        for chunk in rows.chunks(256) {
            self.store.write_rows(chunk.to_vec()).await?;
        }
        Ok(n)
    }
}
