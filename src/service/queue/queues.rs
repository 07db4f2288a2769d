//! Burst signups: free-course enrollments and flash-sale claims through the
//! queue actors (`actors::queue`), one service for both kinds (`QueueKind`).
//!
//! - Admission control: at most `max_pending` claims per queue wait for
//!   their decision; beyond, 429 with `Retry-After` at once.
//! - Each confirmed flash-sale claim's order takes its units from the
//!   sale's reserve, and a cancelled or unpaid order gives them back.
//! - What a decision leaves to do runs in `queue_work`.

use crate::actors::course::CourseEntity;
use crate::actors::queue::QueueEntity;
use crate::actors::Registry;
use crate::payments::Providers;
use crate::service::account::profiles::Profiles;
use crate::service::commerce::fulfilment::Fulfilment;
use crate::service::found;
use crate::service::queue::work::{Bursts, QueueWork};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::course::CourseCommand;
use crate::actors::order::OrderCommand;
use crate::actors::queue::{
    Claim, ClaimDecision, ClaimOrder, ClaimStatus, NewClaim, QueueConfig, QueueKind, QueueStatus,
    CLAIMS_BY_QUEUE, CLAIMS_BY_USER,
};
use crate::domain::user::Address;
use crate::domain::{Caller, DomainError};
use crate::service::{new_id, ServiceError};
use crate::store::codec;

#[derive(Debug, Clone, Copy)]
pub struct BurstConfig {
    /// Claims waiting for a decision per queue before 429.
    pub max_pending: usize,
    /// Waitlist bound per queue.
    pub max_waitlist: u32,
    /// Parts (sub-queues, each its own actor) a new queue's capacity is
    /// split over.
    pub parts: u32,
    /// Units a new queue needs per part (a smaller queue gets fewer parts):
    /// 1 when `parts` is set explicitly, `AUTO_UNITS_PER_PART` when it
    /// follows the cores.
    pub min_units_per_part: u32,
}

/// Units per part below which the default split (one part per core) stops
/// splitting: at 25 units per part the end of a 5,000-claim burst cost a
/// chain of refills (p99 0.9–1.6 s, bench/README.md), at 50 it did not.
pub const AUTO_UNITS_PER_PART: u32 = 50;

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            max_pending: 20_000,
            max_waitlist: 10_000,
            parts: 1,
            min_units_per_part: 1,
        }
    }
}

impl BurstConfig {
    /// The parts of a new queue of `capacity`.
    pub fn parts_for(&self, capacity: u32) -> u32 {
        let most = (capacity / self.min_units_per_part.max(1)).max(1);
        self.parts.clamp(1, most)
    }
}

impl Default for ClaimRequest {
    fn default() -> Self {
        ClaimRequest {
            quantity: 1,
            address_id: None,
            payment_method: None,
        }
    }
}

/// Counts one waiting claim until dropped.
pub(in crate::service) struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A course's seats: the same counters `queue:{id}` publishes live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CourseSeats {
    pub capacity: u32,
    pub confirmed: u32,
    pub remaining: u32,
    pub waitlisted: u32,
}

/// How a claim is answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaimOutcome {
    #[serde(flatten)]
    pub claim: Claim,
    /// Capacity left after the decision.
    pub remaining: u32,
    /// An idempotent retry: this is the first decision.
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[serde(default = "one")]
    pub quantity: u32,
    /// Flash sales: where to deliver (default: your default address).
    pub address_id: Option<String>,
    /// Flash sales: `sandbox` (default), `payos` or `cod`.
    pub payment_method: Option<String>,
}

pub(in crate::service) fn one() -> u32 {
    1
}

/// Claims on a queue: enrolling in a course, grabbing a flash-sale unit.
pub struct Queues {
    pub(in crate::service) queues: Registry<QueueEntity>,
    pub(in crate::service) courses: Registry<CourseEntity>,
    pub(in crate::service) bursts: Arc<Bursts>,
    pub(in crate::service) burst: BurstConfig,
    pub(in crate::service) metrics: Arc<crate::metrics::Metrics>,
    pub(in crate::service) providers: Providers,
    pub(in crate::service) profiles: Profiles,
    pub(in crate::service) queue_work: Arc<QueueWork>,
    pub(in crate::service) fulfilment: Arc<Fulfilment>,
    pub(in crate::service) orders: Registry<crate::actors::order::OrderEntity>,
    pub(in crate::service) store: Arc<dyn crate::store::Store>,
}

impl Queues {
    /// Whether `queue:{id}` can be watched: a queue, or a course (its queue
    /// opens with its first enrollment).
    pub async fn watchable(&self, id: &str) -> Result<(), ServiceError> {
        match found(&self.queues, id, "queue").await {
            Err(ServiceError::Domain(_)) => found(&self.courses, id, "queue").await,
            other => other,
        }
    }

    /// A queue's counters as they are now.
    pub async fn queue_status(&self, id: &str) -> Result<QueueStatus, ServiceError> {
        Ok(self.queues.status(id).await?)
    }

    /// `GET /courses/{id}/seats`: the course's counters (all seats free
    /// before its first enrollment opens its queue; reading opens nothing).
    pub async fn course_seats(&self, id: &str) -> Result<CourseSeats, ServiceError> {
        let (capacity, confirmed, remaining, waitlisted) =
            match found(&self.queues, id, "course").await {
                Ok(()) => {
                    let s = self.queues.status(id).await?;
                    if s.config.kind != QueueKind::Course {
                        return Err(DomainError::NotFound("course").into());
                    }
                    (s.config.capacity, s.confirmed, s.remaining, s.waitlisted)
                }
                // No queue yet: nobody has enrolled.
                Err(ServiceError::Domain(DomainError::NotFound(_))) => {
                    let c = self.course_queue(id).await?;
                    (c.capacity, 0, c.capacity, 0)
                }
                Err(e) => return Err(e),
            };
        Ok(CourseSeats {
            capacity,
            confirmed,
            remaining,
            waitlisted,
        })
    }

    /// The queue of course `id`, opened from the course on first use.
    pub(in crate::service) async fn course_queue(
        &self,
        id: &str,
    ) -> Result<QueueConfig, ServiceError> {
        found(&self.courses, id, "course").await?;
        let course = self.courses.call(id, CourseCommand::Get).await?;
        Ok(QueueConfig {
            kind: QueueKind::Course,
            owner_id: course.trainer_id,
            subject_id: course.id,
            shop_id: None,
            title: course.title,
            capacity: course.capacity,
            per_user_limit: 1,
            price: course.price,
            currency: course.currency,
            opens_at: None,
            closes_at: None,
            max_waitlist: self.burst.max_waitlist,
            parts: self.burst.parts_for(course.capacity),
            part_of: None,
        })
    }

    /// The queue's configuration; a course's queue is opened on first use.
    pub(in crate::service) async fn queue_config(
        &self,
        queue_id: &str,
        kind: QueueKind,
    ) -> Result<QueueConfig, ServiceError> {
        if let Some(c) = self.bursts.configs.get(queue_id) {
            return Ok(c.clone());
        }
        let status = match kind {
            QueueKind::Course => {
                let config = self.course_queue(queue_id).await?;
                self.queues.open(queue_id, config).await?
            }
            QueueKind::FlashSale => {
                found(&self.queues, queue_id, "flash sale").await?;
                self.queues.status(queue_id).await?
            }
        };
        if self.bursts.configs.len() < 100_000 {
            self.bursts
                .configs
                .insert(queue_id.to_owned(), status.config.clone());
        }
        Ok(status.config)
    }

    pub(in crate::service) fn admit(&self, queue_id: &str) -> Result<Admitted, ServiceError> {
        let counter = self
            .bursts
            .pending
            .entry(queue_id.to_owned())
            .or_default()
            .clone();
        if counter.fetch_add(1, Ordering::AcqRel) >= self.burst.max_pending {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(ServiceError::Busy(format!(
                "more than {} claims are waiting for this queue; retry in a moment",
                self.burst.max_pending
            )));
        }
        Ok(Admitted(counter))
    }

    /// `POST /courses/{id}/enrollments` (`QueueKind::Course`) or
    /// `POST /flash-sales/{id}/claims`. The answer is sent once the
    /// decision is durable. `default_address` is the caller's, as their
    /// session check found it: a claim without `address_id` ships there
    /// without asking the user's actor again.
    pub async fn claim(
        &self,
        caller: &Caller,
        queue_id: &str,
        kind: QueueKind,
        req: ClaimRequest,
        idempotency_key: Option<crate::domain::IdempotencyKey>,
        default_address: Option<Address>,
    ) -> Result<ClaimOutcome, ServiceError> {
        // Known queues only: unknown ids answer 404 before taking a slot.
        let config = self.queue_config(queue_id, kind).await?;
        let _admitted = self.admit(queue_id)?;
        if config.kind != kind {
            return Err(DomainError::NotFound(match kind {
                QueueKind::Course => "course",
                QueueKind::FlashSale => "flash sale",
            })
            .into());
        }
        let order = self
            .claim_order(
                caller,
                &config,
                req.address_id,
                default_address,
                req.payment_method,
            )
            .await?;
        let new = NewClaim {
            claim_id: new_id(),
            user_id: caller.user_id.clone(),
            quantity: req.quantity,
            idempotency_key,
            order,
            dry_first: false,
            grant: None,
        };
        let decided = if config.is_split() {
            self.queue_work.claim_in_part(queue_id, &config, new).await
        } else {
            self.queues
                .claim(queue_id, new)
                .await
                .map_err(ServiceError::from)
                .and_then(|d| {
                    d.ok_or_else(|| ServiceError::Unavailable("a queue answered dry".into()))
                })
        };
        // Every claim the queue decided counts, refusals included: they are
        // what a burst is made of.
        self.count_claim(&decided);
        let ClaimDecision {
            claim,
            replayed,
            status,
        } = decided?;
        if !replayed {
            self.queue_work.publish_counters(queue_id);
            self.queue_work.kick_queue_worker();
        }
        Ok(ClaimOutcome {
            remaining: status.remaining,
            claim,
            replayed,
        })
    }

    /// The order a claim places when it wins (`None` for a free course
    /// place): a course place is not delivered and is paid online; a flash
    /// sale's order is delivered to the caller's address.
    async fn claim_order(
        &self,
        caller: &Caller,
        config: &QueueConfig,
        address_id: Option<String>,
        default_address: Option<Address>,
        payment_method: Option<String>,
    ) -> Result<Option<ClaimOrder>, ServiceError> {
        if !config.needs_order() {
            return Ok(None);
        }
        let address = match (config.kind, address_id) {
            (QueueKind::Course, _) => None,
            (QueueKind::FlashSale, None) => Some(default_address.ok_or_else(|| {
                DomainError::invalid("address_id", "add a delivery address to your profile first")
            })?),
            (QueueKind::FlashSale, Some(id)) => {
                self.profiles.address(&caller.user_id, Some(&id)).await?
            }
        };
        let name = payment_method.unwrap_or_else(|| "sandbox".into());
        let Some(provider) = self.providers.named(&name) else {
            return Err(DomainError::invalid(
                "payment_method",
                format!("payment method {name} is not available"),
            )
            .into());
        };
        if config.kind == QueueKind::Course && !provider.online() {
            return Err(
                DomainError::invalid("payment_method", "a course place is paid online").into(),
            );
        }
        Ok(Some(ClaimOrder {
            address,
            payment_method: provider.method(),
        }))
    }

    /// Every claim the queue decided counts, refusals included: they are
    /// what a burst is made of.
    fn count_claim(&self, decided: &Result<ClaimDecision, ServiceError>) {
        if matches!(
            decided,
            Ok(ClaimDecision {
                replayed: false,
                ..
            }) | Err(ServiceError::Domain(DomainError::Conflict { .. }))
        ) {
            self.metrics.queue_claims.inc();
            let claims = self.metrics.queue_claims.get() as f64;
            self.metrics
                .journal_commits_per_claim
                .set(self.metrics.journal_commits.get() as f64 / claims.max(1.0));
        }
    }

    /// The user gives a claim up; the waitlist moves up.
    pub async fn cancel_claim(
        &self,
        caller: &Caller,
        kind: QueueKind,
        queue_id: &str,
        claim_id: &str,
    ) -> Result<Claim, ServiceError> {
        self.queue_of_kind(kind, queue_id).await?;
        let claim = self
            .queues
            .cancel(queue_id, caller.user_id.clone(), claim_id.to_owned())
            .await?
            .claim;
        // A cancelled flash-sale claim whose order exists: cancel the order
        // too (its units go back to the sale).
        if claim.order_placed && claim.status == ClaimStatus::Cancelled {
            let _ = self
                .orders
                .call(
                    &claim.id,
                    OrderCommand::System {
                        step: crate::domain::order::Step::Cancel,
                        reason: "claim cancelled".into(),
                    },
                )
                .await;
            let _ = self.fulfilment.advance_order(&claim.id).await;
        }
        // A split queue's freed units go to the waitlists before the
        // answer (see `queue_parts`).
        self.queue_work.rebalance(queue_id).await?;
        self.queue_work.publish_counters(queue_id);
        self.queue_work.advance_all(queue_id).await?;
        Ok(claim)
    }

    /// The status of queue `queue_id` if it is a `kind` queue: a course's
    /// id on a flash-sale path (or the other way round) is 404.
    pub(in crate::service) async fn queue_of_kind(
        &self,
        kind: QueueKind,
        queue_id: &str,
    ) -> Result<QueueStatus, ServiceError> {
        let what = match kind {
            QueueKind::Course => "course",
            QueueKind::FlashSale => "flash sale",
        };
        found(&self.queues, queue_id, what).await?;
        let status = self.queues.status(queue_id).await?;
        if status.config.kind != kind {
            return Err(DomainError::NotFound(what).into());
        }
        Ok(status)
    }

    /// `GET /users/me/enrollments`: your claims and enrollments, newest
    /// queue first.
    pub async fn my_claims(&self, user_id: &str) -> Result<Vec<Claim>, ServiceError> {
        claims_of(self.store.as_ref(), user_id).await
    }

    /// `GET /courses/{id}/enrollments` and `GET /flash-sales/{id}/claims`
    /// (the owner).
    pub async fn queue_claims(
        &self,
        caller: &Caller,
        kind: QueueKind,
        queue_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Claim>, Option<String>), ServiceError> {
        let owner = match self.queue_of_kind(kind, queue_id).await {
            Ok(status) => status.config.owner_id,
            // A course nobody enrolled in yet: its queue is not open.
            Err(ServiceError::Domain(DomainError::NotFound(_))) if kind == QueueKind::Course => {
                self.course_queue(queue_id).await?.owner_id
            }
            Err(e) => return Err(e),
        };
        caller.ensure_owner(&owner, "queue")?;
        // Cursors are base64url of the last key, as every listing's (the
        // document's pattern); another string is refused (422).
        let after = after
            .map(crate::service::products::catalog::decode_cursor)
            .transpose()?;
        let prefix = format!("{queue_id}|");
        let start = after.map(|a| format!("{prefix}{a}"));
        let rows = self
            .store
            .scan(CLAIMS_BY_QUEUE, &prefix, start.as_deref(), limit)
            .await?;
        let next = (rows.len() == limit)
            .then(|| {
                rows.last().map(|(k, _)| {
                    crate::service::products::catalog::encode_cursor(&k[prefix.len()..])
                })
            })
            .flatten();
        Ok((
            rows.iter()
                .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
                .collect(),
            next,
        ))
    }
}

/// A user's claims and enrollments (the newest 1,000 queues' worth).
pub(crate) async fn claims_of(
    store: &dyn crate::store::Store,
    user_id: &str,
) -> Result<Vec<Claim>, ServiceError> {
    let rows = store
        .scan(CLAIMS_BY_USER, &format!("{user_id}|"), None, 1000)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_split_only_as_far_as_its_capacity_allows() {
        let auto = BurstConfig {
            parts: 8,
            min_units_per_part: AUTO_UNITS_PER_PART,
            ..BurstConfig::default()
        };
        assert_eq!(auto.parts_for(10_000), 8);
        assert_eq!(auto.parts_for(100), 2, "50 units per part at least");
        assert_eq!(auto.parts_for(40), 1);
        let explicit = BurstConfig {
            parts: 4,
            ..BurstConfig::default()
        };
        assert_eq!(explicit.parts_for(100), 4);
        assert_eq!(explicit.parts_for(3), 3, "never more parts than units");
        assert_eq!(explicit.parts_for(0), 1);
    }
}
