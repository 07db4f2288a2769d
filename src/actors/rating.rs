//! The rating entity: one actor per reviewed product, shop or shipper (id
//! `{kind}:{subject id}`), the single writer of its rating summary. Each
//! review tells it what it counts (its stars while approved, nothing
//! otherwise); telling it twice counts once. Writes the `ratings` read
//! table; a product's summary is published on `product:{id}`.

use serde::{Deserialize, Serialize};

use super::entity::{catalog_change, record_row};
use super::{Ctx, Entity};
use crate::domain::review::{summarize, Held, RatingSummary, Ratings};
use crate::domain::DomainError;
use crate::live::{LiveEvent, ProductLive, Topic};
/// The read table this module writes (named in the store's catalog).
pub use crate::store::tables::RATINGS;
use crate::store::IndexOp;

pub struct RatingEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RatingEvent {
    /// Review `review_id` now adds `held.stars` (or nothing), as of its
    /// revision `held.revision`; `summary` is the subject's summary after.
    Set {
        review_id: String,
        held: Held,
        summary: RatingSummary,
        at: chrono::DateTime<chrono::Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RatingCommand {
    Set { review_id: String, held: Held },
    Get,
}

impl Entity for RatingEntity {
    const KIND: &'static str = "rating";
    type State = Ratings;
    type Command = RatingCommand;
    type Event = RatingEvent;
    type Reply = RatingSummary;
    type Rejection = DomainError;

    fn decide(
        state: &Ratings,
        cmd: RatingCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<RatingEvent>, RatingSummary), DomainError> {
        let (review_id, held) = match cmd {
            RatingCommand::Get => return Ok((vec![], summary_of(state, ctx.id))),
            RatingCommand::Set { review_id, held } => (review_id, held),
        };
        if !state.news(&review_id, held) {
            return Ok((vec![], summary_of(state, ctx.id)));
        }
        let summary = summarize(ctx.id, state.distribution_after(&review_id, held));
        Ok((
            vec![RatingEvent::Set {
                review_id,
                held,
                summary: summary.clone(),
                at: ctx.now,
            }],
            summary,
        ))
    }

    fn apply(state: &mut Ratings, event: &RatingEvent) {
        let RatingEvent::Set {
            review_id,
            held,
            summary,
            ..
        } = event;
        state.subject = summary.subject.clone();
        state.set(review_id, *held);
    }

    /// The `ratings` row; a product's or shop's rating is shown in search,
    /// so its change goes to the catalog feed too.
    fn index(id: &str, _before: &Ratings, after: &Ratings, events: &[RatingEvent]) -> Vec<IndexOp> {
        let mut ops = record_row(RATINGS, id, Self::VERSION, Some(&after.summary()));
        if let (Some(RatingEvent::Set { at, .. }), Some((kind, subject))) =
            (events.last(), id.split_once(':'))
        {
            if matches!(kind, "product" | "shop") {
                ops.push(catalog_change(kind, subject, *at));
            }
        }
        ops
    }

    /// A product's summary, live on `product:{id}` to every signed-in user.
    fn publish(id: &str, event: &RatingEvent) -> Option<(Topic, LiveEvent)> {
        let product = id.strip_prefix("product:")?;
        let RatingEvent::Set { summary, .. } = event;
        Some((
            Topic::product(product),
            LiveEvent::Product(ProductLive::Rating {
                summary: summary.clone(),
            }),
        ))
    }
}

/// The summary of `state`, named for entity `id` even before any review.
fn summary_of(state: &Ratings, id: &str) -> RatingSummary {
    let mut s = state.summary();
    s.subject = id.to_owned();
    s
}
