//! What a live session may watch and what it missed: topic authorization
//! over the entities (an order's parties, the customer a shipper is
//! delivering to, admins), a topic's head, and the replay of what it
//! published after `since` from the journal. The WebSocket transport
//! (`http::ws`) asks; it holds none of these rules.

use std::sync::Arc;

use crate::actors::entity::stream_id;
use crate::actors::order::OrderEntity;
use crate::actors::rating::RatingEntity;
use crate::actors::shipper::ShipperEntity;
use crate::actors::user::User;
use crate::actors::Entity;
use crate::domain::review::ReviewKind;
use crate::domain::Role;
use crate::live::{LiveEvent, Topic};
use crate::service::{AuthUser, ServiceError, Services};
use crate::store::codec;

/// What of a topic a subscriber sees: everything (`None`), or only what
/// is about one order.
pub type Scope = Option<String>;

/// Why a topic may not be watched: a code and a sentence, as the client
/// is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// Journal records read per replay page.
pub const REPLAY_PAGE: usize = 1024;

/// Topic authorization, heads and replay over the entities.
pub struct Topics {
    services: Arc<Services>,
}

impl Topics {
    pub fn new(services: Arc<Services>) -> Self {
        Topics { services }
    }
}

/// One page of `E`'s stream `id` after `after`: its published events and
/// the last sequence number read.
async fn replay_page<E: Entity>(
    store: &dyn crate::store::Store,
    id: &str,
    after: u64,
    until: u64,
) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
    let limit = REPLAY_PAGE.min(until.saturating_sub(after) as usize);
    let page = store
        .read(&stream_id::<E>(id), after, limit)
        .await
        .map_err(|e| e.to_string())?;
    let mut covered = after;
    let mut out = Vec::with_capacity(page.len());
    for rec in page {
        covered = rec.seq;
        let event: E::Event = codec::decode(E::VERSION, &rec.payload).map_err(|e| e.to_string())?;
        if let Some((_, data)) = E::publish(id, &event) {
            out.push((rec.seq, data));
        }
    }
    Ok((out, covered))
}

impl Topics {
    /// Whether `user` may watch `topic`, and what of it (a shipper's
    /// topic is scoped to the order a customer is waiting for).
    pub async fn authorize(&self, user: &AuthUser, topic: &Topic) -> Result<Scope, Refusal> {
        let forbidden = || Refusal::new("forbidden", format!("you may not watch {topic}"));
        let decided = |r: Result<Scope, ServiceError>| match r {
            Ok(scope) => Ok(scope),
            Err(ServiceError::Domain(_)) => Err(forbidden()),
            Err(e) => Err(Refusal::new("unavailable", e.to_string())),
        };
        match topic {
            Topic::User(id) if user.id == *id || user.role == Role::Admin => Ok(None),
            Topic::User(_) => Err(forbidden()),
            // The order actor decides: its customer, its shop's merchant,
            // its shipper, admins.
            Topic::Order(id) => decided(
                self.services
                    .orders
                    .get_order(&user.caller(), id)
                    .await
                    .map(|_| None),
            ),
            Topic::Shipper(id) => decided(
                self.services
                    .shipping
                    .shipper_topic_scope(&user.caller(), id)
                    .await,
            ),
            // Capacity counters are public to every signed-in user.
            Topic::Queue(id) => match self.services.queues.watchable(id).await {
                Ok(()) => Ok(None),
                Err(ServiceError::Domain(_)) => {
                    Err(Refusal::new("not_found", format!("no such queue: {id}")))
                }
                Err(e) => Err(Refusal::new("unavailable", e.to_string())),
            },
            Topic::AdminStats if user.role == Role::Admin => Ok(None),
            Topic::AdminStats => Err(forbidden()),
            // A product's rating is public to every signed-in user.
            Topic::Product(id) => match self
                .services
                .catalog
                .product_for(Some(&user.caller()), id)
                .await
            {
                Ok(_) => Ok(None),
                Err(ServiceError::Domain(_)) => {
                    Err(Refusal::new("not_found", format!("no such product: {id}")))
                }
                Err(e) => Err(Refusal::new("unavailable", e.to_string())),
            },
        }
    }

    /// The topic's head: its stream's last sequence number (a queue's and
    /// the statistics' counters have their own).
    pub async fn head(&self, topic: &Topic) -> Result<u64, String> {
        let stream = match topic {
            Topic::User(id) => stream_id::<User>(id),
            Topic::Order(id) => stream_id::<OrderEntity>(id),
            Topic::Shipper(id) => stream_id::<ShipperEntity>(id),
            Topic::Product(id) => stream_id::<RatingEntity>(&format!("product:{id}")),
            Topic::AdminStats => {
                return self
                    .services
                    .stats
                    .applied()
                    .await
                    .map_err(|e| e.to_string())
            }
            // A split queue's counters move with its parts' journals too.
            Topic::Queue(id) => {
                return self
                    .services
                    .queue_work
                    .queue_seq(id)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        self.services
            .store
            .head(&stream)
            .await
            .map_err(|e| e.to_string())
    }

    /// What the topic published after `after`, up to `until` (a page at
    /// a time), and how far it read.
    pub async fn replay(
        &self,
        topic: &Topic,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
        let store = self.services.store.as_ref();
        match topic {
            Topic::User(id) => replay_page::<User>(store, id, after, until).await,
            Topic::Order(id) => replay_page::<OrderEntity>(store, id, after, until).await,
            Topic::Shipper(id) => replay_page::<ShipperEntity>(store, id, after, until).await,
            // Counters, not a log: what was missed is the state at the head.
            Topic::Queue(id) => {
                let status = self
                    .services
                    .queues
                    .queue_status(id)
                    .await
                    .map_err(|e| e.to_string())?;
                let counters = crate::service::queue::work::counters(&status);
                Ok((vec![(until, counters)], until))
            }
            // Counters, not a log: what was missed is today's now.
            Topic::AdminStats => {
                let today = self
                    .services
                    .stats
                    .today()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((vec![(until, today)], until))
            }
            // A summary, not a log: what was missed is the one at the head.
            Topic::Product(id) => {
                let summary =
                    crate::service::products::ratings::rating_of(store, ReviewKind::Product, id)
                        .await
                        .map_err(|e| e.to_string())?;
                let data = LiveEvent::Product(crate::live::ProductLive::Rating { summary });
                Ok((vec![(until, data)], until))
            }
        }
    }
}
