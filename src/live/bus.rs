//! The in-process topic bus. Entity actors publish each persisted event a
//! person may watch on its topic (`user:{id}`, …) with the event's journal
//! sequence number; WebSocket sessions subscribe. A topic exists only while
//! someone subscribes to it, and each topic's buffer is bounded: a
//! subscriber that falls further behind is told it lagged (and resumes from
//! the journal with `since`). Shipper positions are not journal events:
//! each topic keeps only the newest one (a `watch` slot), so a watcher can
//! never fall behind on them.
//!
//! Across nodes (cluster mode) an `Uplink` is attached: what this node
//! publishes is also sent to the other nodes (Redis pub/sub, `relay`),
//! and what they publish arrives through `deliver*`. Remote events carry
//! the sequence number of the topic's previous event (`Prev`), so a
//! subscriber that sees a gap fills it from the journal; `resync` asks
//! every subscriber of a topic to check the journal (after a reconnect).

use std::any::Any;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use tokio::sync::{broadcast, watch};

use super::{LiveEvent, Topic};
use crate::domain::shipping::Position;

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicEvent {
    pub seq: u64,
    /// `None` only for a `Prev::Resync` marker.
    pub data: Option<Arc<LiveEvent>>,
    /// What preceded it on the topic, for gap detection.
    pub prev: Prev,
}

/// What a subscriber knows about the event before this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prev {
    /// Published in this process: nothing between can be missing.
    Local,
    /// From another node: the topic's previous event had this sequence
    /// number. A subscriber that last saw less missed something.
    Seq(u64),
    /// From another node that does not know the previous one (it just
    /// took the entity over): check the journal.
    Unknown,
    /// Not an event: something may have been missed (Redis reconnected,
    /// the topic was just subscribed there). Check the journal up to its
    /// head. `seq` and `data` carry nothing.
    Resync,
}

/// Where this node's publications go besides its own subscribers, and
/// which topics it wants from the other nodes (cluster mode).
pub trait Uplink: Send + Sync {
    fn event(&self, topic: &Topic, seq: u64, kind: Published, data: &LiveEvent);
    fn position(&self, topic: &Topic, position: &Arc<Position>);
    fn revoke(&self, user_id: &str, what: &Revocation);
    fn fleet(&self, update: &FleetUpdate);
    /// The first local subscriber of `topic` arrived / the last one left.
    fn watch(&self, topic: &Topic);
    fn unwatch(&self, topic: &Topic);
}

/// A shipper as the nodes' dispatch sees it across the cluster: its newest
/// accepted fix and whether it was available for an offer then, or that it
/// went offline (`at: None`). Sent by the node that took the fix.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetUpdate {
    pub shipper_id: String,
    /// `(lat, lng, device time ms)`; `None`: offline (or, with
    /// `revision`, where it is is not known to the sender).
    pub at: Option<(f64, f64, i64)>,
    pub available: bool,
    /// The revision of the shipper actor's state the sender just saw
    /// (`Shipper::revision`): a node whose slot knows an older state reads
    /// the actor again before the shipper's next fix, so a delivery bound
    /// (or ended) on another node is the one its positions are published on.
    #[serde(default)]
    pub revision: Option<u64>,
}

/// Where fleet updates from other nodes go (the dispatch's tracker).
pub type FleetSink = Arc<dyn Fn(FleetUpdate) + Send + Sync>;

/// What a publication is, for subscribers on other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Published {
    /// A state snapshot: the newest replaces the rest.
    Snapshot,
    /// A journal event, and the publisher's previous one on the topic.
    Event(Option<u64>),
}
use Published::{Event, Snapshot};

/// Wire encodings a position frame can be cached in (the gateway's codecs).
pub const WIRE_FORMATS: usize = 2;

/// A position as published on one topic. Its wire frame is encoded at most
/// once per format however many sessions watch the topic; the bus does not
/// know the formats or their frame type, only that there are
/// `WIRE_FORMATS` of them.
#[derive(Debug)]
pub struct PositionFrame {
    pub topic: Arc<str>,
    pub position: Arc<Position>,
    encoded: [OnceLock<Box<dyn Any + Send + Sync>>; WIRE_FORMATS],
}

impl PositionFrame {
    pub fn new(topic: &Topic, position: Arc<Position>) -> Self {
        PositionFrame {
            topic: topic.to_string().into(),
            position,
            encoded: Default::default(),
        }
    }

    /// The frame in wire format `format` (`< WIRE_FORMATS`), encoded by
    /// `encode` the first time it is asked for (a cheap clone after).
    /// Every caller of one format must ask for the same frame type `F`
    /// (the gateway's codec decides both).
    pub fn encoded<F: Clone + Send + Sync + 'static>(
        &self,
        format: usize,
        encode: impl FnOnce(&PositionFrame) -> F,
    ) -> F {
        self.encoded[format]
            .get_or_init(|| Box::new(encode(self)))
            .downcast_ref::<F>()
            .expect("one frame type per wire format")
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
    topics: DashMap<Topic, Channels>,
    /// Events buffered per topic for its slowest subscriber.
    capacity: usize,
    /// Ended auth sessions, per user who has live connections: how every
    /// socket of a logged-out (reset, reused, revoked) session learns it.
    revoked: DashMap<String, watch::Sender<Revoked>>,
    uplink: OnceLock<Arc<dyn Uplink>>,
    fleet: OnceLock<FleetSink>,
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
    user_id: crate::domain::ids::UserId,
    /// The generation when the connection registered.
    pub opened_at: u64,
    pub rx: watch::Receiver<Revoked>,
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        self.bus
            .revoked
            .remove_if(self.user_id.as_str(), |_, tx| tx.receiver_count() <= 1);
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        Bus {
            topics: DashMap::new(),
            capacity: capacity.max(1),
            revoked: DashMap::new(),
            uplink: OnceLock::new(),
            fleet: OnceLock::new(),
        }
    }

    /// Cluster mode: sends this node's publications to the other nodes too.
    pub fn attach(&self, uplink: Arc<dyn Uplink>) {
        let _ = self.uplink.set(uplink);
    }

    /// Ends `what` of `user_id` on every connection watching it. A user
    /// with no live connection costs one map lookup.
    pub fn revoke(&self, user_id: &str, what: Revocation) {
        if let Some(up) = self.uplink.get() {
            up.revoke(user_id, &what);
        }
        self.revoke_here(user_id, what);
    }

    /// A shipper's fix or status taken here, for the other nodes' dispatch
    /// (cluster mode; nothing on one node).
    pub fn publish_fleet(&self, update: FleetUpdate) {
        if let Some(up) = self.uplink.get() {
            up.fleet(&update);
        }
    }

    /// Where fleet updates from other nodes go.
    pub fn on_fleet(&self, sink: FleetSink) {
        let _ = self.fleet.set(sink);
    }

    /// A fleet update from another node.
    pub fn deliver_fleet(&self, update: FleetUpdate) {
        if let Some(sink) = self.fleet.get() {
            sink(update);
        }
    }

    /// A revocation made on another node.
    pub fn deliver_revoke(&self, user_id: &str, what: Revocation) {
        self.revoke_here(user_id, what);
    }

    fn revoke_here(&self, user_id: &str, what: Revocation) {
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
            user_id: user_id.into(),
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
    /// Publishes a state snapshot (a queue's counters): each one replaces
    /// the last, so a subscriber that missed some needs nothing filled in.
    pub fn publish(&self, topic: &Topic, seq: u64, data: LiveEvent) {
        if let Some(up) = self.uplink.get() {
            up.event(topic, seq, Snapshot, &data);
        }
        self.deliver(topic, seq, Prev::Local, data);
    }

    /// Publishes a journal event of the entity that owns `topic`, once it
    /// is durable. `prev` is the sequence number of the event this same
    /// actor published on the topic before (`None`: it has not since it
    /// started). In cluster mode subscribers use it to notice what they
    /// missed, here or on another node (after a handoff the new owner's
    /// first event has no `prev`, and subscribers check the journal).
    pub fn publish_event(&self, topic: &Topic, seq: u64, prev: Option<u64>, data: LiveEvent) {
        let Some(up) = self.uplink.get() else {
            return self.deliver(topic, seq, Prev::Local, data);
        };
        up.event(topic, seq, Event(prev), &data);
        self.deliver(topic, seq, prev.map_or(Prev::Unknown, Prev::Seq), data);
    }

    /// Delivers to this node's subscribers of `topic` (an event published
    /// here, or by another node).
    pub fn deliver(&self, topic: &Topic, seq: u64, prev: Prev, data: LiveEvent) {
        if let Some(ch) = self.topics.get(topic) {
            let _ = ch.events.send(Arc::new(TopicEvent {
                seq,
                data: Some(Arc::new(data)),
                prev,
            }));
        }
    }

    /// Tells `topic`'s subscribers to check the journal for what they may
    /// have missed.
    pub fn resync(&self, topic: &Topic) {
        if let Some(ch) = self.topics.get(topic) {
            let _ = ch.events.send(Arc::new(TopicEvent {
                seq: 0,
                data: None,
                prev: Prev::Resync,
            }));
        }
    }

    /// `resync` on every topic with a subscriber here.
    pub fn resync_all(&self) {
        let topics: Vec<Topic> = self.topics.iter().map(|e| e.key().clone()).collect();
        for t in topics {
            self.resync(&t);
        }
    }

    /// Topics with a subscriber here.
    pub fn watched(&self) -> Vec<Topic> {
        self.topics.iter().map(|e| e.key().clone()).collect()
    }

    /// Replaces the topic's newest position (when someone watches it).
    pub fn publish_position(&self, topic: &Topic, position: Arc<Position>) {
        if let Some(up) = self.uplink.get() {
            up.position(topic, &position);
        }
        self.deliver_position(topic, position);
    }

    /// A position published here or on another node.
    pub fn deliver_position(&self, topic: &Topic, position: Arc<Position>) {
        if let Some(ch) = self.topics.get(topic) {
            ch.positions
                .send_replace(Some(Arc::new(PositionFrame::new(topic, position))));
        }
    }

    pub fn subscribe(&self, topic: &Topic) -> Subscription {
        let ch = self.topics.entry(topic.clone()).or_insert_with(|| {
            if let Some(up) = self.uplink.get() {
                up.watch(topic);
            }
            Channels {
                events: broadcast::channel(self.capacity).0,
                positions: watch::channel(None).0,
            }
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
    pub fn release(&self, topic: &Topic) {
        let removed = self.topics.remove_if(topic, |_, ch| {
            ch.events.receiver_count() == 0 && ch.positions.receiver_count() == 0
        });
        if let (Some(_), Some(up)) = (removed, self.uplink.get()) {
            up.unwatch(topic);
        }
    }

    /// Topics with at least one subscriber (or not yet released).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::QueueLive;

    const A: &str = "0192a2b3-0000-7000-8000-00000000000a";
    const B: &str = "0192a2b3-0000-7000-8000-00000000000b";

    fn counters(n: u32) -> LiveEvent {
        LiveEvent::Queue(QueueLive::Capacity {
            capacity: n,
            confirmed: 0,
            remaining: n,
            waitlisted: 0,
            state: crate::domain::window::WindowState::Open,
        })
    }

    #[tokio::test]
    async fn delivers_in_order_and_forgets_unwatched_topics() {
        let bus = Bus::new(8);
        bus.publish(&Topic::user(A), 1, counters(1));
        assert_eq!(
            bus.topic_count(),
            0,
            "publishing to an unwatched topic creates nothing"
        );
        let mut rx = bus.subscribe(&Topic::user(A)).events;
        bus.publish(&Topic::user(A), 2, counters(2));
        bus.publish(&Topic::user(B), 3, counters(3));
        bus.publish(&Topic::user(A), 4, counters(4));
        assert_eq!(rx.recv().await.unwrap().seq, 2);
        assert_eq!(rx.recv().await.unwrap().seq, 4);
        bus.release(&Topic::user(A));
        assert_eq!(bus.topic_count(), 1, "still subscribed");
        drop(rx);
        bus.release(&Topic::user(A));
        assert_eq!(bus.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = Bus::new(2);
        let mut rx = bus.subscribe(&Topic::queue(A)).events;
        for seq in 1..=5 {
            bus.publish(&Topic::queue(A), seq, counters(1));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
    }

    #[tokio::test]
    async fn positions_keep_only_the_newest() {
        let bus = Bus::new(2);
        let pos = |ts| Arc::new(Position::sample(ts));
        let mut sub = bus.subscribe(&Topic::shipper(A));
        for ts in 1..=100 {
            bus.publish_position(&Topic::shipper(A), pos(ts));
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
        let mut late = bus.subscribe(&Topic::shipper(A));
        late.positions.changed().await.unwrap();
        assert_eq!(late.positions.borrow().as_ref().unwrap().position.ts, 100);
    }
}
