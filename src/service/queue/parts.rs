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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::actors::queue::{part_id, ClaimDecision, NewClaim, PartUnits, QueueConfig};
use crate::actors::CallError;
use crate::domain::DomainError;
use crate::service::queue::work::QueueWork;
use crate::service::ServiceError;

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

/// What a claim whose part was dry does once it has the refill turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Back to its part, without a refill (the turn is released).
    TryAgain,
    /// Refill its part and be decided on the new units.
    Refill,
}

/// The tries of one claim on a split queue, each bounded.
#[derive(Debug, Default)]
struct Tries {
    /// Tries again because units came (a refill by another claim).
    on_new_units: u32,
    /// Tries again because the queue was found sold out.
    on_sold_out: u32,
}

impl Tries {
    /// At most this many tries of each kind.
    const MAX: u32 = 4;

    /// The step after the refill turn: `units_came` — a refill ran since
    /// this claim found its part dry; `found_sold_out` — the queue was found
    /// sold out since (its next try waitlists it without asking for units).
    ///
    /// A claim that found the queue sold out never refills for it, even
    /// after it tried on new units four times: a refill would bring nothing
    /// (the mark is cleared when units are freed) and costs several durable
    /// round trips under the queue's one turn. At the end of a burst
    /// hundreds of claims that found their part dry before the queue was
    /// found sold out wait for that turn; each refilled in turn (k = 4,
    /// 5,000 claims: p99 440–540 ms, bench/README.md).
    fn after_turn(&mut self, units_came: bool, found_sold_out: bool) -> Step {
        if found_sold_out && self.on_sold_out < Self::MAX {
            self.on_sold_out += 1;
            return Step::TryAgain;
        }
        if units_came && self.on_new_units < Self::MAX {
            self.on_new_units += 1;
            return Step::TryAgain;
        }
        Step::Refill
    }
}

impl QueueWork {
    /// A claim on split queue `queue_id`, decided by the claimant's part.
    /// A part without units for it gets some first (from the pool, else
    /// from the other parts); only then is the claim waitlisted or refused.
    ///
    /// A claim that finds its part dry waits for the refill in progress
    /// and, if units came or the queue was found sold out meanwhile, tries
    /// again outside the lock (claims do not queue behind each other's
    /// retries); otherwise — or after four tries on new units — it refills
    /// itself and is decided on the new units in the same step
    /// (`after_turn`).
    pub(in crate::service) async fn claim_in_part(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        new: NewClaim,
    ) -> Result<ClaimDecision, ServiceError> {
        let index = config.part_index(&new.user_id);
        let part = part_id(queue_id, index);
        let refill = self.refills(queue_id);
        let mut seen = refill.generation.load(Ordering::Acquire);
        let mut tries = Tries::default();
        loop {
            // Once the whole queue was found sold out, claims wait in their
            // part without asking for units (cancellations clear the mark).
            let exhausted = self.bursts.exhausted.contains(queue_id);
            let attempt = NewClaim {
                dry_first: !exhausted,
                ..new.clone()
            };
            if let Some(Some(decided)) = dry_or(self.queues.claim(&part, attempt).await)? {
                return Ok(self.counted(queue_id, index, decided));
            }
            let _turn = refill.lock.lock().await;
            let now = refill.generation.load(Ordering::Acquire);
            let sold_out = self.bursts.exhausted.contains(queue_id);
            if tries.after_turn(now != seen, sold_out && !exhausted) == Step::TryAgain {
                seen = now;
                continue;
            }
            let (total, brought) = self.refill(queue_id, config, index, new.quantity).await?;
            if !brought {
                self.bursts.exhausted.insert(queue_id.to_owned());
            }
            let decided = self
                .queues
                .claim(
                    &part,
                    NewClaim {
                        dry_first: false,
                        grant: Some(total),
                        ..new
                    },
                )
                .await;
            refill.generation.fetch_add(1, Ordering::AcqRel);
            return match decided? {
                Some(decided) => Ok(self.counted(queue_id, index, decided)),
                None => Err(ServiceError::Unavailable(
                    "a queue part answered dry".into(),
                )),
            };
        }
    }

    /// The refill turn and count of split queue `queue_id`.
    fn refills(&self, queue_id: &str) -> Arc<crate::service::queue::work::Refills> {
        self.bursts
            .refills
            .entry(queue_id.to_owned())
            .or_default()
            .clone()
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

    /// Units for part `index`, which lacks `need`: its fair share from the
    /// pool, and when that is less than `need`, more from what every other
    /// part gives back of what it holds unconfirmed. Answers the units
    /// allotted to the part in all, and whether this brought any (the
    /// caller grants them with its claim).
    async fn refill(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        index: u32,
        need: u32,
    ) -> Result<(u32, bool), ServiceError> {
        let part = part_id(queue_id, index);
        self.queues.open(&part, config.part(queue_id)).await?;
        let fair = config.capacity.div_ceil(config.parts.max(1)).max(need);
        let mut pool = self.queues.allot(queue_id, index, fair).await?;
        let mut brought = pool.allotted_now;
        if brought < need {
            self.reconcile(queue_id, config, true, |j, _| j != index)
                .await?;
            pool = self.queues.allot(queue_id, index, fair - brought).await?;
            brought += pool.allotted_now;
        }
        let total = pool.allotted.get(index as usize).copied().unwrap_or(0);
        Ok((total, brought > 0))
    }

    /// Up to `want` free units of the queue to part `index`; answers how
    /// many units the part gained (a grant lost to a crash counts too) and
    /// its units after.
    async fn move_units(
        &self,
        queue_id: &str,
        index: u32,
        want: u32,
    ) -> Result<(u32, PartUnits), ServiceError> {
        let part = part_id(queue_id, index);
        let before = self.queues.units(&part).await?;
        let pool = self.queues.allot(queue_id, index, want).await?;
        let total = pool.allotted.get(index as usize).copied().unwrap_or(0);
        let after = self.queues.grant(&part, total).await?;
        Ok((after.received.saturating_sub(before.received), after))
    }

    /// Pushes the queue's totals to every part and back: each part holds
    /// what it was allotted, and the parts `gives_back` picks give back
    /// what they hold unconfirmed (into the pool): all of it, or with
    /// `half` half of it rounded up — every part holding any unit still
    /// gives one, and the others are not left dry at once. Answers each
    /// opened part's units.
    async fn reconcile(
        &self,
        queue_id: &str,
        config: &QueueConfig,
        half: bool,
        gives_back: impl Fn(u32, &PartUnits) -> bool,
    ) -> Result<Vec<(u32, PartUnits)>, ServiceError> {
        let pool = self.queues.allot(queue_id, 0, 0).await?;
        // Every part at once: each step is a durable write of its own
        // actor, so the parts' steps share group commits.
        let visits = (0..config.parts).map(|j| {
            let (part, pool, gives_back) = (part_id(queue_id, j), &pool, &gives_back);
            async move {
                let allotted = pool.allotted.get(j as usize).copied().unwrap_or(0);
                let Some(mut units) = dry_or(self.queues.grant(&part, allotted).await)? else {
                    return Ok(None);
                };
                if units.unused > 0 && gives_back(j, &units) {
                    units = self.queues.give_back(&part, half).await?;
                }
                Ok::<_, ServiceError>(Some((j, units)))
            }
        });
        let parts: Vec<(u32, PartUnits)> = futures_util::future::try_join_all(visits)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let recoveries = parts.iter().filter_map(|(j, units)| {
            let known = pool.recovered.get(*j as usize).copied().unwrap_or(0);
            (units.returned > known).then(|| self.queues.recover(queue_id, *j, units.returned))
        });
        futures_util::future::try_join_all(recoveries).await?;
        Ok(parts)
    }

    /// After units were freed in split queue `queue_id` (a cancellation,
    /// an expiry): parts with an empty waitlist give back what they hold
    /// unconfirmed, and the free units go to the waitlists, the part whose
    /// head claimed first first.
    pub(in crate::service) async fn rebalance(&self, queue_id: &str) -> Result<(), ServiceError> {
        let config = self.config_of(queue_id).await?;
        if !config.is_split() {
            return Ok(());
        }
        self.bursts.exhausted.remove(queue_id);
        let refill = self.refills(queue_id);
        let _turn = refill.lock.lock().await;
        // Claims waiting for this turn try their parts again after it.
        refill.generation.fetch_add(1, Ordering::AcqRel);
        let mut parts = self
            .reconcile(queue_id, &config, false, |_, u| u.waitlisted == 0)
            .await?;
        for _ in 0..MAX_REBALANCE_ROUNDS {
            parts.retain(|(_, u)| u.waitlisted > 0);
            let Some((index, units)) = parts.iter().min_by_key(|(_, u)| u.waiting_since).copied()
            else {
                break;
            };
            let (gained, now) = self.move_units(queue_id, index, units.waitlisted).await?;
            if gained == 0 {
                break;
            }
            if let Some(slot) = parts.iter_mut().find(|(j, _)| *j == index) {
                slot.1 = now;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_that_finds_the_queue_sold_out_does_not_refill() {
        // Four tries on new units, then the queue is found sold out.
        let mut t = Tries::default();
        for _ in 0..Tries::MAX {
            assert_eq!(t.after_turn(true, false), Step::TryAgain);
        }
        assert_eq!(t.after_turn(true, true), Step::TryAgain);
        assert_eq!(t.after_turn(false, true), Step::TryAgain);
    }

    #[test]
    fn every_kind_of_try_is_bounded() {
        let mut t = Tries::default();
        let steps: Vec<Step> = (0..2 * Tries::MAX + 1)
            .map(|_| t.after_turn(true, true))
            .collect();
        assert!(steps[..2 * Tries::MAX as usize]
            .iter()
            .all(|s| *s == Step::TryAgain));
        assert_eq!(steps[2 * Tries::MAX as usize], Step::Refill);
        // Nothing new since the claim found its part dry: its own refill.
        assert_eq!(Tries::default().after_turn(false, false), Step::Refill);
    }
}
