//! The order actor's state and the data it keeps.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::domain::order::Order;

/// Webhook event ids remembered per order for deduplication.
pub const MAX_SEEN_EVENTS: usize = 64;
/// Reviews one order may have: one per product line, its shop and its
/// shipper (far fewer than this).
pub const MAX_REVIEWS: usize = 128;

pub struct OrderEntity;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub order: Option<Order>,
    /// Recently processed webhook event ids, newest last.
    pub seen_events: VecDeque<String>,
    /// The reviews written of the order, one per subject: the order is
    /// where a second review of one line is refused, so review ids can be
    /// random (not derived from the order's and subject's ids).
    #[serde(default)]
    pub reviews: Vec<ReviewRef>,
}

/// A review written of one subject of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRef {
    /// `{kind}:{subject_id}` (`product:…`, `shop:…`, `shipper:…`).
    pub subject: String,
    pub review_id: String,
}
