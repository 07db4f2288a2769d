//! The in-process topic bus. Entity actors publish each persisted event a
//! person may watch on its topic (`user:{id}`, …) with the event's journal
//! sequence number; WebSocket sessions subscribe. A topic exists only while
//! someone subscribes to it, and each topic's buffer is bounded: a
//! subscriber that falls further behind is told it lagged (and resumes from
//! the journal with `since`). Shipper positions are not journal events:
//! each topic keeps only the newest one (a `watch` slot), so a watcher can
//! never fall behind on them. Across nodes this becomes Redis pub/sub.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Message;
use dashmap::DashMap;
use tokio::sync::{broadcast, watch};

use super::protocol::{Codec, ServerMsg};
use crate::domain::shipping::Position;

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicEvent {
    pub topic: Arc<str>,
    pub seq: u64,
    pub data: Arc<serde_json::Value>,
}

/// A position as published on one topic, with its `location` frame
/// encoded at most once per codec however many sessions watch the topic.
#[derive(Debug)]
pub struct PositionFrame {
    pub topic: Arc<str>,
    pub position: Arc<Position>,
    /// JSON and MessagePack frames, encoded by the first session that needs
    /// each.
    encoded: [OnceLock<Message>; 2],
}

impl PositionFrame {
    pub fn new(topic: &str, position: Arc<Position>) -> Self {
        PositionFrame {
            topic: topic.into(),
            position,
            encoded: Default::default(),
        }
    }

    /// The `location` frame in `codec` (a cheap clone of shared bytes).
    pub fn message(&self, codec: Codec) -> Message {
        let slot = match codec {
            Codec::Json => &self.encoded[0],
            Codec::MsgPack => &self.encoded[1],
        };
        slot.get_or_init(|| {
            super::session::encode(
                codec,
                &ServerMsg::Location {
                    topic: self.topic.to_string(),
                    data: Box::new((*self.position).clone()),
                },
            )
        })
        .clone()
    }
}

/// The newest position published on a topic.
pub type PositionSlot = watch::Receiver<Option<Arc<PositionFrame>>>;

struct Channels {
    events: broadcast::Sender<Arc<TopicEvent>>,
    positions: watch::Sender<Option<Arc<PositionFrame>>>,
}

/// What one subscriber receives from a topic.
pub struct Subscription {
    pub events: broadcast::Receiver<Arc<TopicEvent>>,
    /// Marked changed at once when the topic already has a position.
    pub positions: PositionSlot,
}

pub struct Bus {
    topics: DashMap<String, Channels>,
    /// Events buffered per topic for its slowest subscriber.
    capacity: usize,
    /// Ended auth sessions, per user who has live connections: how every
    /// socket of a logged-out (reset, reused, revoked) session learns it.
    revoked: DashMap<String, watch::Sender<Revoked>>,
}

/// What an entity event ends, sent on the bus once the event is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One auth session (`sid`) of the user.
    Session(String),
    /// Every session the user has now (a password reset).
    AllSessions,
}

/// Recently ended sessions of one user, as the user's connections see it.
#[derive(Debug, Clone, Default)]
pub struct Revoked {
    /// Bumped by every revocation.
    pub generation: u64,
    /// The generation of the latest "every session" revocation.
    pub all_at: u64,
    /// The newest ended session ids (at most `REVOKED_KEPT`).
    pub sids: std::collections::VecDeque<String>,
}

/// Ended session ids remembered per watched user: enough for the sessions
/// a user can hold at once (10) and the ones ended while a connection was
/// re-authenticating.
const REVOKED_KEPT: usize = 32;

impl Revoked {
    /// Whether a connection of session `sid`, opened when the user's
    /// revocations were at `opened_at`, has to end.
    pub fn ends(&self, sid: &str, opened_at: u64) -> bool {
        self.all_at > opened_at || self.sids.iter().any(|s| s == sid)
    }
}

/// One connection's view of its user's revocations; unregisters on drop.
/// (The receiver is dropped after `Drop::drop` runs, so the count there
/// still includes it.)
pub struct RevocationWatch {
    bus: Arc<Bus>,
    user_id: String,
    /// The generation when the connection registered.
    pub opened_at: u64,
    pub rx: watch::Receiver<Revoked>,
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        self.bus
            .revoked
            .remove_if(&self.user_id, |_, tx| tx.receiver_count() <= 1);
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        Bus {
            topics: DashMap::new(),
            capacity: capacity.max(1),
            revoked: DashMap::new(),
        }
    }

    /// Ends `what` of `user_id` on every connection watching it. A user
    /// with no live connection costs one map lookup.
    pub fn revoke(&self, user_id: &str, what: Revocation) {
        if let Some(tx) = self.revoked.get(user_id) {
            tx.send_modify(|r| {
                r.generation += 1;
                match what {
                    Revocation::AllSessions => r.all_at = r.generation,
                    Revocation::Session(sid) => {
                        r.sids.push_back(sid);
                        while r.sids.len() > REVOKED_KEPT {
                            r.sids.pop_front();
                        }
                    }
                }
            });
        }
    }

    /// Registers a connection of `user_id`: revocations from now on reach
    /// it. Register before checking that the session is live, so none is
    /// missed in between.
    pub fn watch_revocations(self: &Arc<Self>, user_id: &str) -> RevocationWatch {
        let rx = self
            .revoked
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(Revoked::default()).0)
            .subscribe();
        let opened_at = rx.borrow().generation;
        RevocationWatch {
            bus: self.clone(),
            user_id: user_id.to_owned(),
            opened_at,
            rx,
        }
    }

    /// Users with at least one connection watching revocations.
    pub fn revocation_watchers(&self) -> usize {
        self.revoked.len()
    }

    /// Delivers to the topic's current subscribers; a topic nobody watches
    /// costs one map lookup.
    pub fn publish(&self, topic: &str, seq: u64, data: serde_json::Value) {
        if let Some(ch) = self.topics.get(topic) {
            let _ = ch.events.send(Arc::new(TopicEvent {
                topic: topic.into(),
                seq,
                data: Arc::new(data),
            }));
        }
    }

    /// Replaces the topic's newest position (when someone watches it).
    pub fn publish_position(&self, topic: &str, position: Arc<Position>) {
        if let Some(ch) = self.topics.get(topic) {
            ch.positions
                .send_replace(Some(Arc::new(PositionFrame::new(topic, position))));
        }
    }

    pub fn subscribe(&self, topic: &str) -> Subscription {
        let ch = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| Channels {
                events: broadcast::channel(self.capacity).0,
                positions: watch::channel(None).0,
            });
        let mut positions = ch.positions.subscribe();
        if positions.borrow().is_some() {
            positions.mark_changed();
        }
        Subscription {
            events: ch.events.subscribe(),
            positions,
        }
    }

    /// Forgets `topic` once its last subscriber is gone.
    pub fn release(&self, topic: &str) {
        self.topics.remove_if(topic, |_, ch| {
            ch.events.receiver_count() == 0 && ch.positions.receiver_count() == 0
        });
    }

    /// Topics with at least one subscriber (or not yet released).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_forgets_unwatched_topics() {
        let bus = Bus::new(8);
        bus.publish("user:1", 1, serde_json::json!({"a": 1}));
        assert_eq!(
            bus.topic_count(),
            0,
            "publishing to an unwatched topic creates nothing"
        );
        let mut rx = bus.subscribe("user:1").events;
        bus.publish("user:1", 2, serde_json::json!({"a": 2}));
        bus.publish("user:2", 3, serde_json::json!({"a": 3}));
        bus.publish("user:1", 4, serde_json::json!({"a": 4}));
        assert_eq!(rx.recv().await.unwrap().seq, 2);
        assert_eq!(rx.recv().await.unwrap().seq, 4);
        bus.release("user:1");
        assert_eq!(bus.topic_count(), 1, "still subscribed");
        drop(rx);
        bus.release("user:1");
        assert_eq!(bus.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = Bus::new(2);
        let mut rx = bus.subscribe("t").events;
        for seq in 1..=5 {
            bus.publish("t", seq, serde_json::Value::Null);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
    }

    #[tokio::test]
    async fn positions_keep_only_the_newest() {
        let bus = Bus::new(2);
        let pos = |ts| {
            Arc::new(Position {
                shipper_id: "s".into(),
                order_id: None,
                lat: 1.0,
                lng: 2.0,
                heading: None,
                speed: None,
                ts,
                distance_m: None,
                eta_s: None,
                arriving: false,
            })
        };
        let mut sub = bus.subscribe("shipper:s");
        for ts in 1..=100 {
            bus.publish_position("shipper:s", pos(ts));
        }
        sub.positions.changed().await.unwrap();
        assert_eq!(
            sub.positions
                .borrow_and_update()
                .as_ref()
                .unwrap()
                .position
                .ts,
            100
        );
        assert!(
            sub.events.try_recv().is_err(),
            "positions never fill the event buffer"
        );
        // A late subscriber sees the current position at once.
        let mut late = bus.subscribe("shipper:s");
        late.positions.changed().await.unwrap();
        assert_eq!(late.positions.borrow().as_ref().unwrap().position.ts, 100);
    }

    #[test]
    fn a_position_frame_is_encoded_once_per_codec_for_every_watcher() {
        let frame = PositionFrame::new(
            "order:o",
            Arc::new(Position {
                shipper_id: "s".into(),
                order_id: Some("o".into()),
                lat: 1.0,
                lng: 2.0,
                heading: None,
                speed: Some(3.0),
                ts: 7,
                distance_m: Some(10.0),
                eta_s: Some(4),
                arriving: false,
            }),
        );
        let (Message::Text(a), Message::Text(b)) =
            (frame.message(Codec::Json), frame.message(Codec::Json))
        else {
            panic!("JSON frames are text");
        };
        assert_eq!(
            a.as_str().as_ptr(),
            b.as_str().as_ptr(),
            "one encoding, shared"
        );
        let v: serde_json::Value = serde_json::from_str(a.as_str()).unwrap();
        assert_eq!(
            (
                v["type"].as_str(),
                v["topic"].as_str(),
                v["data"]["ts"].as_i64()
            ),
            (Some("location"), Some("order:o"), Some(7))
        );
        assert!(matches!(frame.message(Codec::MsgPack), Message::Binary(_)));
    }
}
