//! Online backups of the embedded store (admins): a consistent copy (one
//! read transaction) streamed while the server goes on serving and
//! writing. `surge backup` fetches it; `surge restore` puts it into an
//! empty data directory.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::domain::{Caller, DomainError, Role};
use crate::service::ServiceError;
use crate::store::Store;

/// Chunks (of about 256 KiB) buffered ahead of a slow reader.
const AHEAD: usize = 8;

pub struct Backups {
    pub(in crate::service) store: Arc<dyn Store>,
}

impl Backups {
    /// Starts a copy; its chunks come on the receiver. A copy that fails
    /// midway ends without its end record, which a restore refuses.
    pub fn start(&self, caller: &Caller) -> Result<mpsc::Receiver<Bytes>, ServiceError> {
        if caller.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins take backups".into()).into());
        }
        if !self.store.backs_up() {
            return Err(DomainError::Unprocessable {
                code: "backup_unsupported",
                message: "this server's store is PostgreSQL or ScyllaDB: back it up with the database's own tools (pg_dump, base backups, ScyllaDB snapshots)".into(),
            }
            .into());
        }
        let (tx, rx) = mpsc::channel(AHEAD);
        let store = self.store.clone();
        tokio::spawn(
            async move {
                match store.backup(tx).await {
                    Ok(s) => tracing::info!(records = s.records, bytes = s.bytes, "backup sent"),
                    Err(e) => tracing::warn!(error = %e, "backup stopped"),
                }
            }
            .instrument(tracing::Span::current()),
        );
        Ok(rx)
    }
}
