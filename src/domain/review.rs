//! Reviews and ratings: who may review what (a verified purchase, once per
//! order line, the shop and the shipper once per order), the moderation
//! states, the merchant's one reply, reports, and the rating summary —
//! pure rules; the `review` and `rating` actors run them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::{OrderId, ShopId, UserId};
use super::order::{Order, OrderStatus};
use super::{check_text, Caller, DomainError, Role};

pub const MAX_REVIEW_TEXT: usize = 2_000;
pub const MAX_REPLY_TEXT: usize = 1_000;
pub const MAX_REPORT_REASON: usize = 300;
pub const MAX_MODERATION_NOTE: usize = 300;
/// Images per review.
pub const MAX_IMAGES: usize = 6;
pub const MAX_IMAGE_PATH: usize = 300;
/// Reporters remembered per review (each counted once); later reports of a
/// review that already has this many change nothing.
pub const MAX_REPORTERS: usize = 100;

/// What a review is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// One product of an order (one review per order line).
    Product,
    /// The shop that sold an order.
    Shop,
    /// The shipper who delivered an order.
    Shipper,
}

impl ReviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Product => "product",
            ReviewKind::Shop => "shop",
            ReviewKind::Shipper => "shipper",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for an admin (manual moderation, edited, or reported).
    Pending,
    /// Public and counted in the rating summary.
    Approved,
    /// Hidden and not counted.
    Rejected,
}

/// The merchant's answer to a review (one per review).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewReply {
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A review as the review actor keeps it (shown as a `ReviewView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    pub id: String,
    pub kind: ReviewKind,
    /// The product, shop or shipper reviewed.
    pub subject_id: String,
    pub order_id: OrderId,
    pub shop_id: ShopId,
    pub author_id: UserId,
    /// The order was a real purchase ([`verified_purchase`]): carried by
    /// a shipper who is neither the shop's merchant nor the customer, or
    /// (nothing to ship) paid online. A review of an order the merchant
    /// delivered themselves is shown with `false`.
    pub verified_purchase: bool,
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    /// May be empty (a rating without words).
    pub text: String,
    /// Paths of images on this host.
    pub images: Vec<String>,
    pub status: ReviewStatus,
    /// Why an admin rejected it (or approved it after reports).
    pub moderation_note: Option<String>,
    pub reply: Option<ReviewReply>,
    /// Distinct people who reported it since an admin last approved it.
    pub reports: u32,
    /// The author may edit it until then.
    pub editable_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How the author is shown (`display_name` of their name when they
    /// wrote it; `Deleted user` once they erased their account).
    #[serde(default)]
    pub author_name: String,
}

impl Review {
    /// What the review adds to its subject's rating summary.
    pub fn counts(&self) -> Option<u8> {
        (self.status == ReviewStatus::Approved).then_some(self.stars)
    }

    /// Whether `caller` may see it: its author, the shop's merchant (or
    /// the reviewed shipper) and admins always; once approved, everyone a
    /// product's or shop's, and a shipper's only merchants (as the
    /// shipper's rating: nobody else rates shippers).
    pub fn visible_to(&self, caller: Option<&Caller>, merchant_id: &str) -> bool {
        let involved = caller.is_some_and(|c| {
            c.role == Role::Admin
                || c.user_id == self.author_id
                || c.user_id == merchant_id
                || (self.kind == ReviewKind::Shipper && c.user_id == self.subject_id)
        });
        let approved = self.status == ReviewStatus::Approved;
        match self.kind {
            ReviewKind::Shipper => {
                involved || (approved && caller.is_some_and(|c| c.role == Role::Merchant))
            }
            ReviewKind::Product | ReviewKind::Shop => involved || approved,
        }
    }
}

/// A new review of a product or shop, as the customer sends it: the order
/// and `DeliveryReviewInput`'s fields (spelled out, since serde cannot
/// refuse unknown fields of a flattened struct).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// The delivered order the review is about.
    pub order_id: OrderId,
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub text: String,
    /// Paths of images on this host (`/…`), at most 6.
    #[serde(default)]
    pub images: Vec<String>,
}

impl ReviewInput {
    /// The order and the review's content.
    pub fn split(self) -> (OrderId, DeliveryReviewInput) {
        (
            self.order_id,
            DeliveryReviewInput {
                stars: self.stars,
                text: self.text,
                images: self.images,
            },
        )
    }
}

/// A new review of a delivery (the order is in the path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReviewInput {
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub text: String,
    /// Paths of images on this host (`/…`), at most 6.
    #[serde(default)]
    pub images: Vec<String>,
}

/// A change of a review by its author, within the edit window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewEdit {
    #[schema(minimum = 1, maximum = 5)]
    pub stars: Option<u8>,
    #[schema(max_length = 2000)]
    pub text: Option<String>,
    pub images: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    #[schema(min_length = 1, max_length = 1000)]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    #[schema(min_length = 1, max_length = 300)]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationInput {
    #[schema(min_length = 1, max_length = 300)]
    pub note: Option<String>,
}

/// The checked content of a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub stars: u8,
    pub text: String,
    pub images: Vec<String>,
}

/// How reviews are moderated (configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReviewPolicy {
    /// Approve new and edited reviews at once (`review_moderation = auto`);
    /// otherwise each waits for an admin.
    pub auto_approve: bool,
    /// This many distinct reports send an approved review back to pending.
    pub report_threshold: u32,
    /// How long the author may edit a review.
    pub edit_window_secs: u64,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        ReviewPolicy {
            auto_approve: true,
            report_threshold: 3,
            edit_window_secs: 7 * 24 * 3600,
        }
    }
}

impl ReviewPolicy {
    fn first_status(&self) -> ReviewStatus {
        match self.auto_approve {
            true => ReviewStatus::Approved,
            false => ReviewStatus::Pending,
        }
    }
}

fn check_stars(stars: u8) -> Result<u8, DomainError> {
    match stars {
        1..=5 => Ok(stars),
        _ => Err(DomainError::invalid(
            "stars",
            "stars must be between 1 and 5",
        )),
    }
}

/// Free text of several lines: line breaks allowed, other control
/// characters not; may be empty when `optional`.
fn check_paragraphs(
    field: &'static str,
    s: &str,
    max: usize,
    optional: bool,
) -> Result<String, DomainError> {
    let t = s.trim();
    if t.is_empty() && optional {
        return Ok(String::new());
    }
    if s.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    let flat = t.replace(['\r', '\n'], " ");
    check_text(field, &flat, max)?;
    Ok(t.replace("\r\n", "\n"))
}

/// Image paths on this host: `/…`, no scheme or other host, no spaces or
/// control characters, at most `MAX_IMAGES`.
fn check_images(images: &[String]) -> Result<Vec<String>, DomainError> {
    let field = "images";
    if images.len() > MAX_IMAGES {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_IMAGES} images"),
        ));
    }
    images
        .iter()
        .map(|p| {
            let ok = p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= MAX_IMAGE_PATH
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
            match ok {
                true => Ok(p.clone()),
                false => Err(DomainError::invalid(
                    field,
                    "each image must be a path on this host (starting with one '/', no spaces), at most 300 characters",
                )),
            }
        })
        .collect()
}

pub fn check_draft(input: &DeliveryReviewInput) -> Result<Draft, DomainError> {
    Ok(Draft {
        stars: check_stars(input.stars)?,
        text: check_paragraphs("text", &input.text, MAX_REVIEW_TEXT, true)?,
        images: check_images(&input.images)?,
    })
}

/// The content after an edit: absent (or null) fields keep their value.
pub fn check_edit(current: &Review, edit: &ReviewEdit) -> Result<Draft, DomainError> {
    check_draft(&DeliveryReviewInput {
        stars: edit.stars.unwrap_or(current.stars),
        text: edit.text.clone().unwrap_or_else(|| current.text.clone()),
        images: edit
            .images
            .clone()
            .unwrap_or_else(|| current.images.clone()),
    })
}

pub fn check_reply(input: &ReplyInput) -> Result<String, DomainError> {
    check_paragraphs("text", &input.text, MAX_REPLY_TEXT, false)
}

pub fn check_reason(input: &ReportInput) -> Result<String, DomainError> {
    check_text("reason", &input.reason, MAX_REPORT_REASON)
}

pub fn check_note(input: &ModerationInput) -> Result<Option<String>, DomainError> {
    input
        .note
        .as_deref()
        .map(|n| check_text("note", n, MAX_MODERATION_NOTE))
        .transpose()
}

/// What a review is of, taken from the order it is written for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub kind: ReviewKind,
    pub subject_id: String,
    pub order_id: OrderId,
    pub shop_id: ShopId,
    /// Who may reply: the shop's merchant.
    pub merchant_id: UserId,
    /// The order was a real purchase ([`verified_purchase`]).
    #[serde(default)]
    pub verified: bool,
}

/// The order was received: delivered (also when a return followed).
pub fn received(o: &Order) -> bool {
    o.delivered_at.is_some()
        && matches!(
            o.status,
            OrderStatus::Delivered
                | OrderStatus::ReturnRequested
                | OrderStatus::Returned
                | OrderStatus::Refunded
        )
}

/// The verified-purchase rule: an order is a real purchase when a shipper
/// who is neither the shop's merchant nor the customer carried it, or,
/// with nothing to ship, when it was paid online. An order the merchant
/// delivered themselves (self-delivery, cash or not) never is: the money
/// and the parcel went only between two accounts one person may hold.
pub fn verified_purchase(o: &Order) -> bool {
    match &o.delivery.shipper_id {
        Some(s) => *s != o.merchant_id && *s != o.customer_id,
        None => o.digital && !o.is_cod(),
    }
}

/// Who may review what of order `o` (`subject_id` names the product for a
/// product review): its customer, once it is delivered, and never their
/// own shop.
pub fn subject_of(
    o: &Order,
    caller: &Caller,
    kind: ReviewKind,
    subject_id: &str,
) -> Result<Subject, DomainError> {
    if caller.user_id != o.customer_id {
        return Err(DomainError::Forbidden(
            "only the customer of this order may review it".into(),
        ));
    }
    if o.customer_id == o.merchant_id {
        return Err(DomainError::Forbidden(
            "nobody reviews their own shop".into(),
        ));
    }
    if !received(o) {
        return Err(DomainError::conflict(
            "not_delivered",
            format!(
                "the order is {}: it can be reviewed once it is delivered",
                o.status.as_str()
            ),
        ));
    }
    let ok = match kind {
        ReviewKind::Product => o.lines.iter().any(|l| l.product_id == subject_id),
        ReviewKind::Shop => o.shop_id == subject_id,
        ReviewKind::Shipper => o.delivery.shipper_id.as_deref() == Some(subject_id),
    };
    if !ok {
        return Err(DomainError::invalid(
            "order_id",
            format!("this order has no {} {subject_id}", kind.as_str()),
        ));
    }
    Ok(Subject {
        kind,
        subject_id: subject_id.to_owned(),
        order_id: o.id.clone(),
        shop_id: o.shop_id.clone(),
        merchant_id: o.merchant_id.clone(),
        verified: verified_purchase(o),
    })
}

/// The id a review of `kind` of `subject_id` in `order_id` had before
/// review ids were random (derived from those ids, so computable by
/// anyone holding them). Reviews written since have random ids recorded
/// by their order; this one is still looked up for older reviews.
pub fn legacy_review_id(order_id: &str, kind: ReviewKind, subject_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("review|{order_id}|{}|{subject_id}", kind.as_str()));
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A review's whole state: the public record and what only the actor needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    pub review: Review,
    pub merchant_id: UserId,
    /// Who reported it, each once (at most `MAX_REPORTERS`).
    pub reporters: Vec<UserId>,
    /// Raised each time what the review counts (`Review::counts`) changes.
    pub revision: u64,
    /// The newest revision the subject's rating summary has been told; the
    /// review is unsettled while it is behind `revision`.
    pub counted: u64,
}

impl ReviewRecord {
    /// Whether `viewer` is shown who wrote the review and from which
    /// order: its author, the reviewed shop's merchant and admins. (The
    /// reviewed shipper is not: a rating of them is not a way to find the
    /// customer.)
    pub fn shows_parties(&self, viewer: Option<&Caller>) -> bool {
        viewer.is_some_and(|c| {
            c.role == Role::Admin
                || c.user_id == self.review.author_id
                || c.user_id == self.merchant_id
        })
    }

    /// The review as `viewer` is shown it.
    pub fn view_for(self, viewer: Option<&Caller>) -> ReviewView {
        let parties = self.shows_parties(viewer);
        self.review.view(parties)
    }

    pub fn new(
        id: &str,
        subject: Subject,
        author: &Caller,
        author_name: String,
        draft: Draft,
        policy: &ReviewPolicy,
        now: DateTime<Utc>,
    ) -> Self {
        ReviewRecord {
            review: Review {
                id: id.to_owned(),
                author_name,
                kind: subject.kind,
                subject_id: subject.subject_id,
                order_id: subject.order_id,
                shop_id: subject.shop_id,
                author_id: author.user_id.clone(),
                verified_purchase: subject.verified,
                stars: draft.stars,
                text: draft.text,
                images: draft.images,
                status: policy.first_status(),
                moderation_note: None,
                reply: None,
                reports: 0,
                editable_until: now
                    + chrono::Duration::seconds(
                        policy.edit_window_secs.min(i64::MAX as u64 / 1000) as i64,
                    ),
                created_at: now,
                updated_at: now,
            },
            merchant_id: subject.merchant_id,
            reporters: Vec::new(),
            revision: 0,
            counted: 0,
        }
        .revised()
    }

    /// The summary still needs telling.
    pub fn unsettled(&self) -> bool {
        self.counted < self.revision
    }

    /// Takes `review` as the new record, raising the revision when what
    /// it counts changed (a new record counts from nothing).
    pub fn take(&mut self, review: Review) {
        let before = self.review.counts();
        self.review = review;
        if self.review.counts() != before {
            self.revision += 1;
        }
    }

    fn revised(mut self) -> Self {
        if self.review.counts().is_some() {
            self.revision = 1;
        }
        self
    }

    /// The author's edit: within the window. Moderation is a state the
    /// author cannot leave: an approved review is approved again at once
    /// under auto moderation (pending under manual); a pending one (waiting
    /// for an admin, or held by reports) stays pending; a rejected one
    /// stays rejected, with the admin's note. Only an admin approves.
    /// `None` when it changes nothing.
    pub fn edit(
        &self,
        caller: &Caller,
        draft: Draft,
        policy: &ReviewPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Review>, DomainError> {
        if caller.user_id != self.review.author_id {
            return Err(DomainError::Forbidden(
                "only its author may edit a review".into(),
            ));
        }
        if now > self.review.editable_until {
            return Err(DomainError::conflict(
                "edit_window_closed",
                format!(
                    "this review could be edited until {}",
                    self.review.editable_until.to_rfc3339()
                ),
            ));
        }
        let r = &self.review;
        if (r.stars, &r.text, &r.images) == (draft.stars, &draft.text, &draft.images) {
            return Ok(None);
        }
        let (status, moderation_note) = match r.status {
            ReviewStatus::Approved => (policy.first_status(), None),
            held => (held, r.moderation_note.clone()),
        };
        Ok(Some(Review {
            stars: draft.stars,
            text: draft.text,
            images: draft.images,
            status,
            moderation_note,
            updated_at: now,
            ..self.review.clone()
        }))
    }

    /// The shop's merchant answers once.
    pub fn reply(
        &self,
        caller: &Caller,
        text: String,
        now: DateTime<Utc>,
    ) -> Result<Review, DomainError> {
        if caller.user_id != self.merchant_id {
            return Err(DomainError::Forbidden(
                "only the shop's merchant may reply to its reviews".into(),
            ));
        }
        if self.review.reply.is_some() {
            return Err(DomainError::conflict(
                "already_replied",
                "this review already has a reply",
            ));
        }
        Ok(Review {
            reply: Some(ReviewReply { text, at: now }),
            updated_at: now,
            ..self.review.clone()
        })
    }

    /// A report by someone other than the author and the reviewed shop's
    /// merchant: a person's report of a review counts once, ever; at the
    /// threshold an approved review goes back to pending. The count is of
    /// reports since the last approval (an admin's approval sets it to 0).
    /// `None` when it changes nothing (reported before, or reporters full).
    pub fn report(
        &self,
        caller: &Caller,
        policy: &ReviewPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Review>, DomainError> {
        if caller.user_id == self.review.author_id {
            return Err(DomainError::conflict(
                "own_review",
                "you cannot report your own review",
            ));
        }
        if caller.user_id == self.merchant_id {
            return Err(DomainError::Forbidden(
                "the reviewed shop's merchant cannot report its reviews; reply to it instead"
                    .into(),
            ));
        }
        if self.reporters.contains(&caller.user_id) || self.reporters.len() >= MAX_REPORTERS {
            return Ok(None);
        }
        let reports = self.review.reports + 1;
        let status = match self.review.status {
            ReviewStatus::Approved if reports >= policy.report_threshold.max(1) => {
                ReviewStatus::Pending
            }
            s => s,
        };
        Ok(Some(Review {
            reports,
            status,
            updated_at: now,
            ..self.review.clone()
        }))
    }

    /// An admin approves or rejects.
    pub fn moderate(
        &self,
        caller: &Caller,
        to: ReviewStatus,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Review, DomainError> {
        if caller.role != Role::Admin {
            return Err(DomainError::Forbidden(
                "only admins moderate reviews".into(),
            ));
        }
        if self.review.status == to {
            return Err(DomainError::conflict(
                match to {
                    ReviewStatus::Approved => "already_approved",
                    _ => "already_rejected",
                },
                "the review is already in that state",
            ));
        }
        // Reports count from the last approval: the admin has read them.
        let reports = match to {
            ReviewStatus::Approved => 0,
            _ => self.review.reports,
        };
        Ok(Review {
            status: to,
            moderation_note: note,
            reports,
            updated_at: now,
            ..self.review.clone()
        })
    }
}

/// A subject's ratings: average, count and the count of each star.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingSummary {
    /// `product:{id}`, `shop:{id}` or `shipper:{id}`.
    pub subject: String,
    /// Approved reviews counted.
    pub count: u64,
    /// Mean stars, rounded to two decimals (0 without reviews).
    pub average: f64,
    /// How many approved reviews gave 1, 2, 3, 4 and 5 stars.
    #[schema(min_items = 5, max_items = 5)]
    pub distribution: [u64; 5],
}

/// What one review adds to a summary, as of one of its revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub revision: u64,
    pub stars: Option<u8>,
}

/// The rating entity's state: the distribution and what each review adds
/// to it, by revision: telling it a revision twice, or an older revision
/// after a newer one (two settlements racing), changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratings {
    pub subject: String,
    pub by_review: BTreeMap<String, Held>,
    pub distribution: [u64; 5],
}

fn slot(stars: u8) -> usize {
    usize::from(stars.clamp(1, 5)) - 1
}

impl Ratings {
    /// Whether revision `held.revision` of `review` would change anything.
    pub fn news(&self, review: &str, held: Held) -> bool {
        self.by_review
            .get(review)
            .is_none_or(|h| h.revision < held.revision)
    }

    /// The distribution once `review` adds what `held` says (unchanged
    /// unless it is news).
    pub fn distribution_after(&self, review: &str, held: Held) -> [u64; 5] {
        let mut d = self.distribution;
        if self.news(review, held) {
            if let Some(old) = self.by_review.get(review).and_then(|h| h.stars) {
                d[slot(old)] -= 1;
            }
            if let Some(s) = held.stars {
                d[slot(s)] += 1;
            }
        }
        d
    }

    /// Takes what `review` adds as of `held` (unless it holds a newer one).
    pub fn set(&mut self, review: &str, held: Held) {
        if self.news(review, held) {
            self.distribution = self.distribution_after(review, held);
            self.by_review.insert(review.to_owned(), held);
        }
    }

    pub fn summary(&self) -> RatingSummary {
        summarize(&self.subject, self.distribution)
    }
}

/// The summary of a distribution of stars.
pub fn summarize(subject: &str, distribution: [u64; 5]) -> RatingSummary {
    let count: u64 = distribution.iter().sum();
    let sum: u64 = distribution
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64 + 1) * n)
        .sum();
    let average = match count {
        0 => 0.0,
        n => (sum as f64 / n as f64 * 100.0).round() / 100.0,
    };
    RatingSummary {
        subject: subject.to_owned(),
        count,
        average,
        distribution,
    }
}

mod view;
pub use view::{display_name, ReviewView, ERASED_AUTHOR};

#[cfg(test)]
mod tests;
