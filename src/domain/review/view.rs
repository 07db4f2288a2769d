//! How a review is shown: its author by a display name, and who wrote it
//! and from which order only to those who may know.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Review, ReviewKind, ReviewReply, ReviewStatus};
use crate::domain::ids::{OrderId, ShopId, UserId};

/// What a public review shows of its author once they erased their account.
pub const ERASED_AUTHOR: &str = "Deleted user";

/// How an author is shown on a review: the first word of their name and
/// the last word's initial ("Lan Nguyen" → "Lan N."), at most 40
/// characters; "A customer" for an empty name.
pub fn display_name(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first = |w: &str| w.chars().take(40).collect::<String>();
    match words.as_slice() {
        [] => "A customer".into(),
        [one] => first(one),
        [one, .., last] => format!(
            "{} {}.",
            first(one),
            last.chars().next().expect("a word has a first character")
        ),
    }
}

/// A review as one viewer is shown it. Who wrote it (`author_id`) and
/// from which order (`order_id`, a UUIDv7, so the purchase time) are shown
/// only to its author, the reviewed shop's merchant and admins; everyone
/// else, and every public listing, shows `author_name` alone, so one
/// person's reviews do not link into a purchase history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: String,
    pub kind: ReviewKind,
    /// The product, shop or shipper reviewed.
    pub subject_id: String,
    pub shop_id: ShopId,
    /// The author's display name, as of writing.
    pub author_name: String,
    /// Only for the author, the shop's merchant and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_id: Option<UserId>,
    /// Only for the author, the shop's merchant and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// See `Review::verified_purchase`.
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
}

impl Review {
    /// The review as shown: with its author's and order's ids when
    /// `parties` (see `ReviewRecord::shows_parties`), else without.
    pub fn view(self, parties: bool) -> ReviewView {
        ReviewView {
            author_name: if self.author_name.is_empty() {
                display_name("")
            } else {
                self.author_name
            },
            author_id: parties.then_some(self.author_id),
            order_id: parties.then_some(self.order_id),
            id: self.id,
            kind: self.kind,
            subject_id: self.subject_id,
            shop_id: self.shop_id,
            verified_purchase: self.verified_purchase,
            stars: self.stars,
            text: self.text,
            images: self.images,
            status: self.status,
            moderation_note: self.moderation_note,
            reply: self.reply,
            reports: self.reports,
            editable_until: self.editable_until,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// As a public listing shows it.
    pub fn public(self) -> ReviewView {
        self.view(false)
    }
}
