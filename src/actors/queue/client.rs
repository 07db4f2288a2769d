//! The typed client of queue actors: one function per request, each
//! returning the one answer its command has. The reply enum is matched
//! here and nowhere else.

use super::{
    part_id, Claim, ClaimOrder, ClaimStatus, PartUnits, Pool, QueueCommand, QueueConfig,
    QueueEntity, QueueReply, QueueStatus,
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
    /// A part answers `None` (dry) instead of waitlisting or refusing.
    pub dry_first: bool,
    /// A part: the units granted to it in all, raised before the decision.
    pub grant: Option<u32>,
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

    /// Records that its window opened, once `opens_at` has passed (a no-op
    /// before, and after the first time).
    pub async fn open_window(&self, id: &str) -> Answer<QueueStatus> {
        self.status_after(id, QueueCommand::Start).await
    }

    /// The queue's counters; a split queue's are the sums of its parts'
    /// (a part not opened yet has decided nothing).
    pub async fn status(&self, id: &str) -> Answer<QueueStatus> {
        let mut status = self.status_after(id, QueueCommand::Status).await?;
        if status.config.is_split() {
            let (mut confirmed, mut waitlisted) = (0, 0);
            for i in 0..status.config.parts {
                match self
                    .status_after(&part_id(id, i), QueueCommand::Status)
                    .await
                {
                    Ok(part) => {
                        confirmed += part.confirmed;
                        waitlisted += part.waitlisted;
                    }
                    Err(CallError::Rejected(DomainError::NotFound(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            status.confirmed = confirmed;
            status.waitlisted = waitlisted;
            status.remaining = status.config.capacity.saturating_sub(confirmed);
        }
        Ok(status)
    }

    /// A claim on queue (or part) `id`; `None`: a part asked `dry_first`
    /// has no units for it.
    pub async fn claim(&self, id: &str, new: NewClaim) -> Answer<Option<ClaimDecision>> {
        let cmd = QueueCommand::Claim {
            claim_id: new.claim_id,
            user_id: new.user_id,
            quantity: new.quantity,
            idempotency_key: new.idempotency_key,
            order: new.order,
            dry_first: new.dry_first,
            grant: new.grant,
        };
        match self.call(id, cmd).await? {
            QueueReply::Dry => Ok(None),
            QueueReply::Claim {
                claim,
                replayed,
                status,
            } => Ok(Some(ClaimDecision {
                claim,
                replayed,
                status: *status,
            })),
            other => unexpected(other),
        }
    }

    /// The queue or part of queue `id` that holds `user_id`'s claims.
    pub async fn holder(&self, id: &str, user_id: &str) -> Answer<String> {
        let config = self.status_after(id, QueueCommand::Status).await?.config;
        Ok(if config.is_split() {
            config.part_for(id, user_id)
        } else {
            id.to_owned()
        })
    }

    /// `user_id` gives claim `claim_id` on queue `id` up.
    pub async fn cancel(
        &self,
        id: &str,
        user_id: crate::domain::ids::UserId,
        claim_id: String,
    ) -> Answer<ClaimDecision> {
        let holder = self.holder(id, &user_id).await?;
        self.decision(&holder, QueueCommand::Cancel { user_id, claim_id })
            .await
    }

    /// `user_id`'s claim `claim_id` on queue `id` lapses (its order ended
    /// unpaid or cancelled): its place goes. Answers the queue or part
    /// that held it.
    pub async fn expire(&self, id: &str, user_id: &str, claim_id: String) -> Answer<String> {
        let holder = self.holder(id, user_id).await?;
        self.status_after(&holder, QueueCommand::Expire { claim_id })
            .await?;
        Ok(holder)
    }

    async fn part_units(&self, part: &str, cmd: QueueCommand) -> Answer<PartUnits> {
        match self.call(part, cmd).await? {
            QueueReply::Part(units) => Ok(units),
            other => unexpected(other),
        }
    }

    async fn pool(&self, id: &str, cmd: QueueCommand) -> Answer<Pool> {
        match self.call(id, cmd).await? {
            QueueReply::Pool(pool) => Ok(pool),
            other => unexpected(other),
        }
    }

    /// Part `part` (an actor id) now holds `total` units granted in all.
    pub async fn grant(&self, part: &str, total: u32) -> Answer<PartUnits> {
        self.part_units(part, QueueCommand::Grant { total }).await
    }

    /// Part `part` gives back the units it holds unconfirmed (all, or
    /// half of them rounded up).
    pub async fn give_back(&self, part: &str, half: bool) -> Answer<PartUnits> {
        self.part_units(part, QueueCommand::GiveBack { half }).await
    }

    pub async fn units(&self, part: &str) -> Answer<PartUnits> {
        self.part_units(part, QueueCommand::Units).await
    }

    /// Up to `want` free units of split queue `id` to part number `part`.
    pub async fn allot(&self, id: &str, part: u32, want: u32) -> Answer<Pool> {
        self.pool(id, QueueCommand::Allot { part, want }).await
    }

    /// Part number `part` of split queue `id` gave back `total` in all.
    pub async fn recover(&self, id: &str, part: u32, total: u32) -> Answer<Pool> {
        self.pool(id, QueueCommand::Recover { part, total }).await
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
