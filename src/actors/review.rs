//! The review entity: one actor per review (its id is random and recorded
//! by its order, which keeps one per order line, shop and delivery). It
//! keeps the moderation state, the reply and the reports, and
//! until the subject's rating summary has been told what the review counts,
//! a row among the order timers (`review:{id}`) that the scheduler settles.

use serde::{Deserialize, Serialize};

use super::order::{timer_key, TIMERS_TABLE};
use super::{Ctx, Entity};
use crate::domain::ids::UserId;
use crate::domain::review::{
    check_edit, Draft, Review, ReviewEdit, ReviewKind, ReviewPolicy, ReviewRecord, ReviewStatus,
    Subject, ERASED_AUTHOR,
};
use crate::domain::{Caller, DomainError};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{REVIEWS_BY_SUBJECT, REVIEWS_PENDING};
use crate::store::{codec, IndexOp};

/// What marks a review's row among the order timers.
pub const REVIEW_TIMER_PREFIX: &str = "review:";

pub struct ReviewEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReviewEvent {
    Created {
        record: ReviewRecord,
    },
    Edited {
        review: Review,
    },
    Replied {
        review: Review,
    },
    Reported {
        reporter: UserId,
        reason: String,
        review: Review,
    },
    Moderated {
        by: UserId,
        review: Review,
    },
    /// The subject's rating summary has been told revision `revision`.
    Counted {
        revision: u64,
    },
    /// The author erased their account: the review shows `ERASED_AUTHOR`.
    AuthorErased,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReviewCommand {
    Create {
        caller: Caller,
        /// How the author is shown (`display_name`).
        author_name: String,
        subject: Subject,
        draft: Draft,
        policy: ReviewPolicy,
    },
    Edit {
        caller: Caller,
        edit: ReviewEdit,
        policy: ReviewPolicy,
    },
    Reply {
        caller: Caller,
        text: String,
    },
    Report {
        caller: Caller,
        reason: String,
        policy: ReviewPolicy,
    },
    Moderate {
        caller: Caller,
        to: ReviewStatus,
        note: Option<String>,
    },
    /// The rating summary was told revision `revision` of the review.
    Counted {
        revision: u64,
    },
    /// The author erased their account (a no-op once done).
    EraseAuthor,
    Get,
}

/// `{kind}:{subject}`: the rating entity and listing prefix of a review's
/// subject (and how its order records it).
pub fn subject_key(r: &Review) -> String {
    subject_key_of(r.kind, &r.subject_id)
}

/// `{kind}:{subject_id}`.
pub fn subject_key_of(kind: ReviewKind, subject_id: &str) -> String {
    format!("{}:{subject_id}", kind.as_str())
}

fn listing_key(r: &Review) -> String {
    let inverted = i64::MAX - r.created_at.timestamp_millis().max(0);
    format!("{}|{inverted:020}|{}", subject_key(r), r.id)
}

fn pending_key(r: &Review) -> String {
    format!("{:020}|{}", r.created_at.timestamp_millis().max(0), r.id)
}

fn timer(rec: &ReviewRecord) -> Option<String> {
    rec.unsettled().then(|| {
        timer_key(
            rec.review.updated_at,
            &format!("{REVIEW_TIMER_PREFIX}{}", rec.review.id),
        )
    })
}

impl Entity for ReviewEntity {
    const KIND: &'static str = "review";
    type State = Option<ReviewRecord>;
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Reply = ReviewRecord;
    type Rejection = DomainError;

    fn decide(
        state: &Option<ReviewRecord>,
        cmd: ReviewCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ReviewEvent>, ReviewRecord), DomainError> {
        let now = ctx.now;
        if let ReviewCommand::Create {
            caller,
            author_name,
            subject,
            draft,
            policy,
        } = cmd
        {
            if state.is_some() {
                return Err(DomainError::conflict(
                    "already_reviewed",
                    "this was already reviewed for this order; edit that review instead",
                ));
            }
            let record =
                ReviewRecord::new(ctx.id, subject, &caller, author_name, draft, &policy, now);
            return Ok((
                vec![ReviewEvent::Created {
                    record: record.clone(),
                }],
                record,
            ));
        }
        let current = state.as_ref().ok_or(DomainError::NotFound("review"))?;
        let event = match cmd {
            ReviewCommand::Create { .. } => unreachable!("handled above"),
            ReviewCommand::Get => None,
            ReviewCommand::Edit {
                caller,
                edit,
                policy,
            } => {
                let draft = check_edit(&current.review, &edit)?;
                current
                    .edit(&caller, draft, &policy, now)?
                    .map(|review| ReviewEvent::Edited { review })
            }
            ReviewCommand::Reply { caller, text } => Some(ReviewEvent::Replied {
                review: current.reply(&caller, text, now)?,
            }),
            ReviewCommand::Report {
                caller,
                reason,
                policy,
            } => current
                .report(&caller, &policy, now)?
                .map(|review| ReviewEvent::Reported {
                    reporter: caller.user_id,
                    reason,
                    review,
                }),
            ReviewCommand::Moderate { caller, to, note } => Some(ReviewEvent::Moderated {
                review: current.moderate(&caller, to, note, now)?,
                by: caller.user_id,
            }),
            ReviewCommand::EraseAuthor => {
                (current.review.author_name != ERASED_AUTHOR).then_some(ReviewEvent::AuthorErased)
            }
            ReviewCommand::Counted { revision } => {
                (current.counted < revision).then_some(ReviewEvent::Counted {
                    revision: revision.min(current.revision),
                })
            }
        };
        let events: Vec<ReviewEvent> = event.into_iter().collect();
        let after = Self::evolve(state, &events).expect("a review stays");
        Ok((events, after))
    }

    fn apply(state: &mut Option<ReviewRecord>, event: &ReviewEvent) {
        match (event, state.as_mut()) {
            (ReviewEvent::Created { record }, _) => *state = Some(record.clone()),
            (
                ReviewEvent::Edited { review }
                | ReviewEvent::Replied { review }
                | ReviewEvent::Moderated { review, .. },
                Some(rec),
            ) => rec.take(review.clone()),
            (
                ReviewEvent::Reported {
                    reporter, review, ..
                },
                Some(rec),
            ) => {
                rec.reporters.push(reporter.clone());
                rec.take(review.clone());
            }
            (ReviewEvent::AuthorErased, Some(rec)) => {
                rec.review.author_name = ERASED_AUTHOR.into();
            }
            (ReviewEvent::Counted { revision }, Some(rec)) => {
                rec.counted = rec.counted.max(*revision)
            }
            (_, None) => {}
        }
    }

    fn index(
        _id: &str,
        before: &Option<ReviewRecord>,
        after: &Option<ReviewRecord>,
        _events: &[ReviewEvent],
    ) -> Vec<IndexOp> {
        let Some(rec) = after.as_ref() else {
            return vec![];
        };
        let r = &rec.review;
        let mut ops = Vec::new();
        let old_timer = before.as_ref().and_then(timer);
        let new_timer = timer(rec);
        if old_timer != new_timer {
            if let Some(key) = old_timer {
                ops.push(IndexOp::Delete {
                    table: TIMERS_TABLE,
                    key,
                });
            }
            if let Some(key) = new_timer {
                ops.push(IndexOp::Put {
                    table: TIMERS_TABLE,
                    key,
                    value: Vec::new(),
                });
            }
        }
        let was = before.as_ref().map(|b| &b.review);
        if was == Some(r) {
            return ops;
        }
        // Each listing holds the review while it is in that state; a row is
        // deleted only where the state before put one.
        let was_in = |status| was.is_some_and(|w| w.status == status);
        let value = || codec::encode(Self::VERSION, r).expect("reviews always encode");
        for (table, status, key) in [
            (REVIEWS_BY_SUBJECT, ReviewStatus::Approved, listing_key(r)),
            (REVIEWS_PENDING, ReviewStatus::Pending, pending_key(r)),
        ] {
            if r.status == status {
                ops.push(IndexOp::Put {
                    table,
                    key,
                    value: value(),
                });
            } else if was_in(status) {
                ops.push(IndexOp::Delete { table, key });
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::rating::{RatingCommand, RatingEntity};
    use crate::domain::review::{
        check_draft, summarize, DeliveryReviewInput, Held, Ratings, ReviewKind,
    };
    use crate::domain::Role;
    use chrono::Utc;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Create {
            review: usize,
            stars: u8,
        },
        Edit {
            review: usize,
            stars: u8,
        },
        Moderate {
            review: usize,
            approve: bool,
        },
        Report {
            review: usize,
            reporter: u8,
        },
        /// A settlement reads the review (and is delivered later).
        Read {
            review: usize,
        },
        /// The `n`-th settlement in flight tells the summary, then the review.
        Deliver {
            n: usize,
        },
    }

    fn op(reviews: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..reviews, 1u8..=5).prop_map(|(review, stars)| Op::Create { review, stars }),
            (0..reviews, 1u8..=5).prop_map(|(review, stars)| Op::Edit { review, stars }),
            (0..reviews, any::<bool>())
                .prop_map(|(review, approve)| Op::Moderate { review, approve }),
            (0..reviews, 0u8..4).prop_map(|(review, reporter)| Op::Report { review, reporter }),
            (0..reviews).prop_map(|review| Op::Read { review }),
            (0usize..8).prop_map(|n| Op::Deliver { n }),
        ]
    }

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            user_id: id.into(),
            role,
        }
    }

    /// `cmd` on review `state`: the state after it (unchanged if refused).
    fn run(state: &Option<ReviewRecord>, cmd: ReviewCommand) -> Option<ReviewRecord> {
        let ctx = Ctx {
            id: "r",
            now: Utc::now(),
        };
        match ReviewEntity::decide(state, cmd, &ctx) {
            Ok((events, _)) => ReviewEntity::evolve(state, &events),
            Err(_) => state.clone(),
        }
    }

    fn rate(state: &Ratings, review: &str, held: Held) -> Ratings {
        let ctx = Ctx {
            id: "product:p",
            now: Utc::now(),
        };
        let set = RatingCommand::Set {
            review_id: review.into(),
            held,
        };
        let (events, _) = RatingEntity::decide(state, set, &ctx).unwrap();
        RatingEntity::evolve(state, &events)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever reviews are written, edited, reported and moderated, and
        /// however their settlements interleave (read early, delivered late,
        /// out of order): once every review is settled, the summary equals
        /// a recomputation from the approved reviews' stars.
        #[test]
        fn the_rating_summary_equals_its_approved_reviews(
            auto_approve in any::<bool>(),
            report_threshold in 1u32..4,
            ops in proptest::collection::vec(op(5), 1..120),
        ) {
            let policy = ReviewPolicy { auto_approve, report_threshold, ..ReviewPolicy::default() };
            let mut reviews: Vec<Option<ReviewRecord>> = vec![None; 5];
            let mut ratings = Ratings { subject: "product:p".into(), ..Ratings::default() };
            let mut in_flight: Vec<(usize, Held)> = Vec::new();
            let id = |i: usize| format!("r{i}");
            let admin = caller("admin", Role::Admin);
            let author = caller("author", Role::Customer);
            for op in ops {
                match op {
                    Op::Create { review, stars } => {
                        let subject = Subject {
                            kind: ReviewKind::Product,
                            subject_id: "p".into(),
                            order_id: id(review).into(),
                            shop_id: "s".into(),
                            merchant_id: "m".into(),
                            verified: true,
                        };
                        let draft = check_draft(&DeliveryReviewInput { stars, text: String::new(), images: vec![] }).unwrap();
                        let cmd = ReviewCommand::Create { caller: author.clone(), author_name: "A.".into(), subject, draft, policy };
                        reviews[review] = run(&reviews[review], cmd);
                    }
                    Op::Edit { review, stars } => {
                        let edit = ReviewEdit { stars: Some(stars), ..ReviewEdit::default() };
                        let cmd = ReviewCommand::Edit { caller: author.clone(), edit, policy };
                        reviews[review] = run(&reviews[review], cmd);
                    }
                    Op::Moderate { review, approve } => {
                        let to = if approve { ReviewStatus::Approved } else { ReviewStatus::Rejected };
                        let cmd = ReviewCommand::Moderate { caller: admin.clone(), to, note: None };
                        reviews[review] = run(&reviews[review], cmd);
                    }
                    Op::Report { review, reporter } => {
                        let cmd = ReviewCommand::Report { caller: caller(&format!("u{reporter}"), Role::Customer), reason: "spam".into(), policy };
                        reviews[review] = run(&reviews[review], cmd);
                    }
                    Op::Read { review } => {
                        if let Some(rec) = reviews[review].as_ref().filter(|r| r.unsettled()) {
                            in_flight.push((review, Held { revision: rec.revision, stars: rec.review.counts() }));
                        }
                    }
                    Op::Deliver { n } => {
                        if in_flight.is_empty() {
                            continue;
                        }
                        let (review, held) = in_flight.remove(n % in_flight.len());
                        ratings = rate(&ratings, &id(review), held);
                        reviews[review] = run(&reviews[review], ReviewCommand::Counted { revision: held.revision });
                    }
                }
            }
            // Every settlement still in flight arrives, then whatever is
            // still unsettled is settled (the scheduler's timer rows).
            for (review, held) in in_flight.drain(..) {
                ratings = rate(&ratings, &id(review), held);
                reviews[review] = run(&reviews[review], ReviewCommand::Counted { revision: held.revision });
            }
            for (i, slot) in reviews.iter_mut().enumerate() {
                if let Some(rec) = slot.as_ref().filter(|r| r.unsettled()) {
                    let held = Held { revision: rec.revision, stars: rec.review.counts() };
                    ratings = rate(&ratings, &id(i), held);
                    *slot = run(slot, ReviewCommand::Counted { revision: held.revision });
                }
            }
            let mut expected = [0u64; 5];
            for rec in reviews.iter().flatten() {
                prop_assert!(!rec.unsettled());
                if let Some(s) = rec.review.counts() {
                    expected[usize::from(s) - 1] += 1;
                }
            }
            prop_assert_eq!(ratings.summary(), summarize("product:p", expected));
        }
    }
}
