//! Split queues: a hot queue's capacity spread over `parts` sub-queues
//! (`QueueConfig::parts`), each its own actor and stream, so a burst is
//! decided on several cores. A user's claims always go to the same part
//! (`QueueConfig::part_for`), which keeps the per-user limit and
//! idempotency keys exact.
//!
//! Units move in two durable steps, each a total that only grows: the
//! queue allots units to a part (`Allotted`), the part records them
//! (`Granted`); a part gives units back (`GaveBack`), the queue counts them
//! free again (`Recovered`). A step lost to a crash is redone by the next
//! refill or rebalance (they push the totals again), and until then the
//! units are merely unused, never sold twice:
//! Σ confirmed ≤ Σ (granted − given back) ≤ Σ (allotted − recovered) ≤ capacity.
//!
//! Fairness: within a part, claims are confirmed and promoted strictly in
//! claim order. A claim is waitlisted only after the pool and every other
//! part gave back what they held unconfirmed, so while a claim waits no
//! unit sits unused anywhere except units freed afterwards. Units freed by a
//! cancellation or expiry go first to the waitlist of their own part, then
//! (rebalance, before the cancellation is answered) to the part whose
//! waitlist head claimed first. So a later claim of another part passes a
//! waiting one only through units freed in its own part while its own
//! waitlist was not empty.

use std::sync::Arc;

use super::queue_work::QueueWork;
use super::ServiceError;
use crate::actors::queue::{part_id, ClaimDecision, NewClaim, PartUnits, QueueConfig};
use crate::actors::CallError;
use crate::domain::DomainError;

/// Rounds of moving units per rebalance (each moves at least one unit or
/// stops it).
const MAX_REBALANCE_ROUNDS: usize = 64;

fn dry_or<T>(answer: Result<T, CallError<DomainError>>) -> Result<Option<T>, ServiceError> {
    match answer {
        Ok(t) => Ok(Some(t)),
        // A part opens at its first refill.
        Err(CallError::Rejected(DomainError::NotFound(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl QueueWork {
    /// A claim on split queue `queue_id`, decided by the claimant's part.
    /// A part without units for it gets some first (from the pool, else
    /// from the other parts); only then is the claim waitlisted or refused.
    pub(super) async fn claim_in_part(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        new: NewClaim,
    ) -> Result<ClaimDecision, ServiceError> {
        let index = config.part_index(&new.user_id);
        let part = part_id(queue_id, index);
        // Once the whole queue was found sold out, claims wait in their part
        // without asking for units (cancellations clear the mark).
        let exhausted = self.bursts.exhausted.contains(queue_id);
        let first = NewClaim {
            dry_first: !exhausted,
            ..new.clone()
        };
        if let Some(Some(decided)) = dry_or(self.queues.claim(&part, first).await)? {
            return Ok(self.counted(queue_id, index, decided));
        }
        let lock = self
            .bursts
            .refills
            .entry(queue_id.to_owned())
            .or_default()
            .clone();
        let _refilling = lock.lock().await;
        // Another claim's refill may have brought units meanwhile, or found
        // the queue sold out (then this one waits without another refill).
        let sold_out = self.bursts.exhausted.contains(queue_id);
        let again = NewClaim {
            dry_first: !sold_out,
            ..new.clone()
        };
        if let Some(Some(decided)) = dry_or(self.queues.claim(&part, again).await)? {
            return Ok(self.counted(queue_id, index, decided));
        }
        if self.refill(queue_id, config, index).await? == 0 {
            self.bursts.exhausted.insert(queue_id.to_owned());
        }
        let last = NewClaim {
            dry_first: false,
            ..new
        };
        match self.queues.claim(&part, last).await? {
            Some(decided) => Ok(self.counted(queue_id, index, decided)),
            None => Err(ServiceError::Unavailable(
                "a queue part answered dry".into(),
            )),
        }
    }

    /// `decided`, with the queue's `remaining` instead of its part's: the
    /// capacity less what every part confirmed as this node last heard.
    fn counted(&self, queue_id: &str, index: u32, mut decided: ClaimDecision) -> ClaimDecision {
        let parts = decided.status.config.parts as usize;
        let seen = self
            .bursts
            .part_confirmed
            .entry(queue_id.to_owned())
            .or_insert_with(|| Arc::new((0..parts).map(|_| Default::default()).collect()))
            .clone();
        if let Some(c) = seen.get(index as usize) {
            c.store(
                decided.status.confirmed,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let confirmed: u32 = seen
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        decided.status.confirmed = confirmed;
        decided.status.remaining = decided.status.config.capacity.saturating_sub(confirmed);
        decided
    }

    /// Units for part `index`: its fair share from the pool, else (the
    /// pool is empty) after every other part gave back what it holds
    /// unconfirmed. Answers how many units the part gained.
    async fn refill(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        index: u32,
    ) -> Result<u32, ServiceError> {
        let part = part_id(queue_id, index);
        self.queues.open(&part, config.part(queue_id)).await?;
        let fair = config.capacity.div_ceil(config.parts.max(1));
        let got = self.move_units(queue_id, index, fair).await?;
        if got > 0 {
            return Ok(got);
        }
        self.reconcile(queue_id, config, |j, _| j != index).await?;
        self.move_units(queue_id, index, fair).await
    }

    /// Up to `want` free units of the queue to part `index`; answers how
    /// many units the part gained (a grant lost to a crash counts too).
    async fn move_units(&self, queue_id: &str, index: u32, want: u32) -> Result<u32, ServiceError> {
        let part = part_id(queue_id, index);
        let before = self.queues.units(&part).await?;
        let pool = self.queues.allot(queue_id, index, want).await?;
        let total = pool.allotted.get(index as usize).copied().unwrap_or(0);
        let after = self.queues.grant(&part, total).await?;
        Ok(after.received.saturating_sub(before.received))
    }

    /// Pushes the queue's totals to every part and back: each part holds
    /// what it was allotted, and the parts `gives_back` picks give back
    /// what they hold unconfirmed (into the pool). Answers each opened
    /// part's units.
    async fn reconcile(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        gives_back: impl Fn(u32, &PartUnits) -> bool,
    ) -> Result<Vec<(u32, PartUnits)>, ServiceError> {
        let pool = self.queues.allot(queue_id, 0, 0).await?;
        let mut parts = Vec::new();
        for j in 0..config.parts {
            let part = part_id(queue_id, j);
            let allotted = pool.allotted.get(j as usize).copied().unwrap_or(0);
            let Some(mut units) = dry_or(self.queues.grant(&part, allotted).await)? else {
                continue;
            };
            if units.unused > 0 && gives_back(j, &units) {
                units = self.queues.give_back(&part).await?;
            }
            let known = pool.recovered.get(j as usize).copied().unwrap_or(0);
            if units.returned > known {
                self.queues.recover(queue_id, j, units.returned).await?;
            }
            parts.push((j, units));
        }
        Ok(parts)
    }

    /// After units were freed in split queue `queue_id` (a cancellation,
    /// an expiry): parts with an empty waitlist give back what they hold
    /// unconfirmed, and the free units go to the waitlists, the part whose
    /// head claimed first first.
    pub(super) async fn rebalance(&self, queue_id: &str) -> Result<(), ServiceError> {
        let config = self.queues.status(queue_id).await?.config;
        if !config.is_split() {
            return Ok(());
        }
        self.bursts.exhausted.remove(queue_id);
        let lock = self
            .bursts
            .refills
            .entry(queue_id.to_owned())
            .or_default()
            .clone();
        let _refilling = lock.lock().await;
        let mut parts = self
            .reconcile(queue_id, &config, |_, u| u.waitlisted == 0)
            .await?;
        for _ in 0..MAX_REBALANCE_ROUNDS {
            parts.retain(|(_, u)| u.waitlisted > 0);
            let Some((index, units)) = parts.iter().min_by_key(|(_, u)| u.waiting_since).copied()
            else {
                break;
            };
            if self.move_units(queue_id, index, units.waitlisted).await? == 0 {
                break;
            }
            let now = self.queues.units(&part_id(queue_id, index)).await?;
            if let Some(slot) = parts.iter_mut().find(|(j, _)| *j == index) {
                slot.1 = now;
            }
        }
        Ok(())
    }
}
