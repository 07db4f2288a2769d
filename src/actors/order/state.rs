//! The order actor's state and the data it keeps.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::domain::order::Order;

/// Webhook event ids remembered per order for deduplication.
pub const MAX_SEEN_EVENTS: usize = 64;

pub struct OrderEntity;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub order: Option<Order>,
    /// Recently processed webhook event ids, newest last.
    pub seen_events: VecDeque<String>,
}
