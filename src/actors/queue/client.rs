//! The typed client of queue actors: one function per request, each
//! returning the one answer its command has. The reply enum is matched
//! here and nowhere else.

use super::{
    Claim, ClaimOrder, ClaimStatus, QueueCommand, QueueConfig, QueueEntity, QueueReply, QueueStatus,
};
use crate::actors::{CallError, Registry};
use crate::domain::{DomainError, IdempotencyKey};

type Answer<T> = Result<T, CallError<DomainError>>;

fn unexpected<T>(reply: QueueReply) -> Answer<T> {
    Err(CallError::Unavailable(format!(
        "unexpected reply from a queue actor: {reply:?}"
    )))
}

/// A claim as the queue decided it (or first decided it, `replayed`),
/// with the queue's counters after the decision.
#[derive(Debug, Clone)]
pub struct ClaimDecision {
    pub claim: Claim,
    /// A retry with the same idempotency key: the first decision.
    pub replayed: bool,
    pub status: QueueStatus,
}

/// What a queue still owes after its decisions.
#[derive(Debug, Clone)]
pub struct PendingWork {
    pub config: QueueConfig,
    /// Confirmed claims whose order is not placed yet.
    pub orders: Vec<Claim>,
    /// Claims whose holder has not been told their status.
    pub notify: Vec<Claim>,
}

/// A new claim.
#[derive(Debug, Clone)]
pub struct NewClaim {
    pub claim_id: String,
    pub user_id: crate::domain::ids::UserId,
    pub quantity: u32,
    pub idempotency_key: Option<IdempotencyKey>,
    pub order: Option<ClaimOrder>,
}

impl Registry<QueueEntity> {
    async fn decision(&self, id: &str, cmd: QueueCommand) -> Answer<ClaimDecision> {
        match self.call(id, cmd).await? {
            QueueReply::Claim {
                claim,
                replayed,
                status,
            } => Ok(ClaimDecision {
                claim,
                replayed,
                status: *status,
            }),
            other => unexpected(other),
        }
    }

    /// The counters after `cmd` (every command but `Pending` has them).
    async fn status_after(&self, id: &str, cmd: QueueCommand) -> Answer<QueueStatus> {
        match self.call(id, cmd).await? {
            QueueReply::Status(s) => Ok(s),
            QueueReply::Claim { status, .. } => Ok(*status),
            other => unexpected(other),
        }
    }

    /// Opens the queue with `config` (a no-op when it is open).
    pub async fn open(&self, id: &str, config: QueueConfig) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::Open(config)).await
    }

    pub async fn status(&self, id: &str) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::Status).await
    }

    pub async fn claim(&self, id: &str, new: NewClaim) -> Answer<ClaimDecision> {
        let cmd = QueueCommand::Claim {
            claim_id: new.claim_id,
            user_id: new.user_id,
            quantity: new.quantity,
            idempotency_key: new.idempotency_key,
            order: new.order,
        };
        self.decision(id, cmd).await
    }

    pub async fn cancel(
        &self,
        id: &str,
        user_id: crate::domain::ids::UserId,
        claim_id: String,
    ) -> Answer<ClaimDecision> {
        self.decision(id, QueueCommand::Cancel { user_id, claim_id })
            .await
    }

    /// Claim `claim_id`'s order ended unpaid or cancelled: its place goes.
    pub async fn expire(&self, id: &str, claim_id: String) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::Expire { claim_id })
            .await
    }

    pub async fn order_placed(&self, id: &str, claim_id: String) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::OrderPlaced { claim_id })
            .await
    }

    pub async fn notified(
        &self,
        id: &str,
        claims: Vec<(String, ClaimStatus)>,
    ) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::Notified { claims })
            .await
    }

    /// Up to `limit` claims of each kind of work still owed.
    pub async fn pending(&self, id: &str, limit: usize) -> Answer<PendingWork> {
        match self.call(id, QueueCommand::Pending { limit }).await? {
            QueueReply::Pending {
                config,
                orders,
                notify,
            } => Ok(PendingWork {
                config: *config,
                orders,
                notify,
            }),
            other => unexpected(other),
        }
    }
}
