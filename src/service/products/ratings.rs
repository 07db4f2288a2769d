//! Rating summaries kept equal to the approved reviews (`Tally`), and
//! reading a stored summary. Below reviews, fulfilment and dispatch, which
//! all use it; it knows only the review and rating entities.

use crate::actors::rating::{RatingCommand, RatingEntity, RATINGS};
use crate::actors::review::{subject_key, ReviewCommand, ReviewEntity};
use crate::actors::{Entity, Registry};
use crate::domain::review::{summarize, Held, RatingSummary, ReviewKind};
use crate::service::ServiceError;
use crate::store::Store;

/// Keeps each subject's rating summary equal to its approved reviews: a
/// review that changed what it counts is settled (the summary told its
/// revision, then the review marked told) right after the change, and by
/// the scheduler from the review's timer row if that was interrupted.
#[derive(Clone)]
pub struct Tally {
    pub(in crate::service) reviews: Registry<ReviewEntity>,
    pub(in crate::service) ratings: Registry<RatingEntity>,
}

impl Tally {
    pub async fn settle(&self, review_id: &str) -> Result<(), ServiceError> {
        let rec = self.reviews.call(review_id, ReviewCommand::Get).await?;
        if !rec.unsettled() {
            return Ok(());
        }
        let held = Held {
            revision: rec.revision,
            stars: rec.review.counts(),
        };
        let set = RatingCommand::Set {
            review_id: review_id.to_owned(),
            held,
        };
        self.ratings.call(&subject_key(&rec.review), set).await?;
        let counted = ReviewCommand::Counted {
            revision: rec.revision,
        };
        self.reviews.call(review_id, counted).await?;
        Ok(())
    }
}

/// The stored rating summary of a subject (zero before its first review).
pub async fn rating_of(
    store: &dyn Store,
    kind: ReviewKind,
    subject_id: &str,
) -> Result<RatingSummary, ServiceError> {
    let key = format!("{}:{subject_id}", kind.as_str());
    Ok(
        crate::service::read_row(store, RATINGS, &key, RatingEntity::VERSION)
            .await?
            .unwrap_or_else(|| summarize(&key, [0; 5])),
    )
}
