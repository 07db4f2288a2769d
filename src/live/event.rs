//! What live subscribers are sent about each entity: typed payloads, one
//! enum per topic kind, each tagged by `kind`. The entity decides which of
//! its events become which payload (`Entity::publish`); the gateway encodes
//! them for the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::OrderId;
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::order::{OrderStatus, Party, Step};
use crate::domain::user::Address;
use crate::domain::Role;

/// One published event's data, whatever its topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveEvent {
    User(UserLive),
    Order(OrderLive),
    Shipper(ShipperLive),
    Queue(QueueLive),
    Product(ProductLive),
    Stats(StatsLive),
}

impl LiveEvent {
    /// The order an event is about, for subscribers scoped to one order
    /// (a customer watching the shipper who carries their order).
    pub fn order_id(&self) -> Option<&str> {
        match self {
            LiveEvent::Shipper(
                ShipperLive::Assigned { order_id, .. } | ShipperLive::Released { order_id, .. },
            ) => Some(order_id),
            _ => None,
        }
    }

    /// The delivery a scoped subscription follows is over.
    pub fn ends_delivery(&self) -> bool {
        matches!(self, LiveEvent::Shipper(ShipperLive::Released { .. }))
    }
}

/// On `user:{id}`: profile, role, address, notification and session-end
/// changes. Never a password hash or a refresh-token id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserLive {
    ProfileUpdated {
        name: String,
        phone: Option<String>,
        at: DateTime<Utc>,
    },
    RoleChanged {
        role: Role,
        at: DateTime<Utc>,
    },
    SessionEnded {
        sid: String,
        reason: String,
        at: DateTime<Utc>,
    },
    AddressAdded {
        address: Address,
    },
    AddressUpdated {
        address: Address,
    },
    AddressRemoved {
        id: String,
    },
    DefaultAddressSet {
        id: String,
    },
    Notification {
        notification: Notification,
    },
    NotificationRead {
        id: String,
        at: DateTime<Utc>,
    },
    #[serde(rename = "notifications_read")]
    AllNotificationsRead {
        at: DateTime<Utc>,
    },
    #[serde(rename = "mail_preferences")]
    MailPreferences {
        email: MailPrefs,
    },
    PasswordChanged {
        at: DateTime<Utc>,
    },
}

/// On `order:{id}` (its customer, its shop's merchant, its shipper,
/// admins): status changes and what happened to the money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderLive {
    Placed {
        status: OrderStatus,
        at: DateTime<Utc>,
    },
    Status {
        status: OrderStatus,
        step: Step,
        by: Party,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    PaymentReceived {
        amount: u64,
        at: DateTime<Utc>,
    },
    /// The gateway declined the checkout's payment; it can be paid again
    /// until the deadline.
    PaymentDeclined {
        at: DateTime<Utc>,
    },
    /// The checkout's payment has a new link (attempt `attempt`).
    PaymentReopened {
        attempt: u32,
        at: DateTime<Utc>,
    },
    CashCollected {
        at: DateTime<Utc>,
    },
    EscrowReleased {
        at: DateTime<Utc>,
    },
    Refunded {
        at: DateTime<Utc>,
    },
    RefundDue {
        at: DateTime<Utc>,
    },
    ShipperAssigned {
        shipper_id: crate::domain::ids::UserId,
        at: DateTime<Utc>,
    },
    Arriving {
        at: DateTime<Utc>,
    },
}

/// On `shipper:{id}`: online/offline and the start and end of each
/// delivery (with its order id, so watchers scoped to one order can tell
/// theirs from the next).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShipperLive {
    Online {
        at: DateTime<Utc>,
    },
    Offline {
        at: DateTime<Utc>,
    },
    Assigned {
        order_id: OrderId,
        at: DateTime<Utc>,
    },
    Released {
        order_id: OrderId,
        at: DateTime<Utc>,
    },
}

/// On `queue:{id}`: a flash sale's or course's counters (at most every
/// 100 ms, and once when its window opens; a late subscriber is sent the
/// current ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueLive {
    Capacity {
        capacity: u32,
        confirmed: u32,
        remaining: u32,
        waitlisted: u32,
        /// Its window when published: a scheduled sale's subscribers are
        /// sent `open` the moment it opens.
        state: crate::domain::window::WindowState,
    },
}

/// On `product:{id}`: the product's rating summary after each review that
/// changes it (a late subscriber is sent the current one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProductLive {
    Rating {
        summary: crate::domain::review::RatingSummary,
    },
}

/// On `admin:stats` (admins): today's platform counters (UTC), after each
/// round of the statistics worker that counted something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatsLive {
    Today {
        day: String,
        #[serde(flatten)]
        counters: crate::domain::stats::Counters,
    },
}
