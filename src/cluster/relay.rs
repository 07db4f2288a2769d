//! Live events across nodes: the bus's `Uplink` over Redis pub/sub (fred).
//!
//! - What a node publishes (an event after its commit, a shipper position,
//!   a session ending) goes to its own subscribers at once and, through a
//!   bounded queue, to Redis: channel `surge:{topic}` for a topic's events
//!   and positions, `surge:revoke` for session endings, `surge:fleet` for
//!   shippers' fixes and statuses (every node's dispatch looks for the
//!   nearest shipper among all of them). Messages are
//!   MessagePack, tagged with the sending node (which skips its own).
//! - A node subscribes to the channel of each topic one of its WebSocket
//!   clients watches, and unsubscribes when the last one leaves: the
//!   subscriber reconciles Redis with the bus's watched topics whenever it
//!   is woken, so subscribe/unsubscribe never pile up or reorder.
//! - Redis pub/sub is at-most-once. Each event carries the sequence number
//!   of the topic's previous event from the same owner; a subscriber that
//!   did not see it fills the gap from the journal first (`Prev`). After a
//!   reconnect, and after a topic is newly subscribed, every subscriber of
//!   the topics concerned checks the journal (`Bus::resync`), and so does
//!   every watched topic when a member stops heartbeating without draining
//!   (`Cluster::departures`): a node killed between its commit and its
//!   publish leaves a topic's *last* event with no later one to reveal the
//!   gap. So a client
//!   sees every event in order, with no hole and no duplicate; when Redis
//!   is down, commands keep working and live delivery resumes with the
//!   journal catch-up once it is back. Positions stay newest-only.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use crate::domain::shipping::Position;
use crate::live::{Bus, FleetUpdate, LiveEvent, Prev, Published, Revocation, Topic, Uplink};
use crate::metrics::Metrics;

/// Messages queued for Redis; beyond it publications are dropped (and
/// counted): subscribers catch up from the journal at the next event.
const QUEUE: usize = 65_536;
/// Most messages sent in one pipeline.
const BATCH: usize = 512;
const REVOKE_CHANNEL: &str = "surge:revoke";
/// Shippers' fixes and statuses, for every node's dispatch.
const FLEET_CHANNEL: &str = "surge:fleet";

fn channel(topic: &Topic) -> String {
    format!("surge:{topic}")
}

#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    Event {
        node: String,
        topic: String,
        seq: u64,
        kind: Published,
        data: LiveEvent,
    },
    Position {
        node: String,
        topic: String,
        position: Position,
    },
    Revoke {
        node: String,
        user: String,
        /// `None`: every session of the user.
        sid: Option<String>,
    },
    Fleet {
        node: String,
        update: FleetUpdate,
    },
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[error("redis_url: {0}")]
pub struct RelayError(String);

/// This node's link to the others' live events.
pub struct RedisRelay {
    node: String,
    out: mpsc::Sender<(String, Vec<u8>)>,
    wake: Notify,
    subscriber: SubscriberClient,
    publisher: Client,
    metrics: Arc<Metrics>,
}

impl RedisRelay {
    /// Connects (in the background: a Redis that is down now only delays
    /// live delivery across nodes) and attaches to `bus`.
    pub async fn start(
        url: &str,
        node: &str,
        bus: &Arc<Bus>,
        metrics: Arc<Metrics>,
        departures: tokio::sync::watch::Receiver<u64>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Arc<RedisRelay>, RelayError> {
        let mut config = Config::from_url(url).map_err(|e| RelayError(e.to_string()))?;
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(2);
                p.broadcast_channel_capacity = 4096;
            });
        let publisher = builder.build().map_err(|e| RelayError(e.to_string()))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| RelayError(e.to_string()))?;
        publisher.connect();
        subscriber.connect();
        let (out, rx) = mpsc::channel(QUEUE);
        let relay = Arc::new(RedisRelay {
            node: node.to_owned(),
            out,
            wake: Notify::new(),
            subscriber,
            publisher,
            metrics,
        });
        bus.attach(relay.clone());
        tokio::spawn(publish_loop(
            relay.publisher.clone(),
            rx,
            relay.metrics.clone(),
        ));
        tokio::spawn(receive_loop(relay.clone(), Arc::downgrade(bus), departures));
        tokio::spawn(reconcile_loop(
            Arc::downgrade(&relay),
            Arc::downgrade(bus),
            stop,
        ));
        relay.wake.notify_one();
        Ok(relay)
    }

    fn send(&self, channel: String, msg: &Wire) {
        let bytes = rmp_serde::to_vec_named(msg).expect("live messages always encode");
        if self.out.try_send((channel, bytes)).is_err() {
            self.metrics.relay_dropped.inc();
        }
    }

    /// Closes both connections.
    pub async fn close(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.publisher.quit().await;
    }
}

impl Uplink for RedisRelay {
    fn event(&self, topic: &Topic, seq: u64, kind: Published, data: &LiveEvent) {
        self.send(
            channel(topic),
            &Wire::Event {
                node: self.node.clone(),
                topic: topic.to_string(),
                seq,
                kind,
                data: data.clone(),
            },
        );
    }

    fn position(&self, topic: &Topic, position: &Arc<Position>) {
        self.send(
            channel(topic),
            &Wire::Position {
                node: self.node.clone(),
                topic: topic.to_string(),
                position: (**position).clone(),
            },
        );
    }

    fn revoke(&self, user_id: &str, what: &Revocation) {
        self.send(
            REVOKE_CHANNEL.to_owned(),
            &Wire::Revoke {
                node: self.node.clone(),
                user: user_id.to_owned(),
                sid: match what {
                    Revocation::Session(sid) => Some(sid.clone()),
                    Revocation::AllSessions => None,
                },
            },
        );
    }

    fn fleet(&self, update: &FleetUpdate) {
        self.send(
            FLEET_CHANNEL.to_owned(),
            &Wire::Fleet {
                node: self.node.clone(),
                update: update.clone(),
            },
        );
    }

    fn watch(&self, _topic: &Topic) {
        self.wake.notify_one();
    }

    fn unwatch(&self, _topic: &Topic) {
        self.wake.notify_one();
    }
}

/// Sends queued messages, many per pipeline, in queue order.
async fn publish_loop(
    publisher: Client,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let pipe = publisher.pipeline();
        for (channel, bytes) in batch.drain(..) {
            let _: Result<(), _> = pipe.publish(channel, bytes).await;
        }
        let sent: Result<Vec<Value>, Error> = pipe.all().await;
        match sent {
            Ok(_) => {
                metrics.relay_published.inc();
            }
            Err(e) => {
                metrics.relay_failed.inc();
                tracing::debug!(error = %e, "live events not published to Redis");
            }
        }
    }
}

/// Delivers other nodes' messages to this node's subscribers; after each
/// reconnect, subscribes again and has every watched topic checked, as
/// after each departure of a member.
async fn receive_loop(
    relay: Arc<RedisRelay>,
    bus: Weak<Bus>,
    mut departures: tokio::sync::watch::Receiver<u64>,
) {
    let mut messages = relay.subscriber.message_rx();
    let mut reconnects = relay.subscriber.reconnect_rx();
    // Until the cluster is gone (this node shutting down).
    let mut cluster = true;
    loop {
        tokio::select! {
            r = departures.changed(), if cluster => {
                if r.is_err() {
                    cluster = false;
                    continue;
                }
                let Some(bus) = bus.upgrade() else { return };
                bus.resync_all();
            }
            m = messages.recv() => {
                let message = match m {
                    Ok(m) => m,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // Missed some: every watched topic checks the journal.
                        tracing::warn!(missed = n, "live relay lagged");
                        let Some(bus) = bus.upgrade() else { return };
                        bus.resync_all();
                        continue;
                    }
                    Err(_) => return,
                };
                let Some(bus) = bus.upgrade() else { return };
                let Some(bytes) = message.value.as_bytes() else { continue };
                match rmp_serde::from_slice::<Wire>(bytes) {
                    Ok(wire) => deliver(&bus, &relay.node, wire),
                    Err(e) => tracing::warn!(error = %e, "undecodable live message"),
                }
            }
            r = reconnects.recv() => {
                if r.is_err() {
                    return;
                }
                if let Err(e) = relay.subscriber.resubscribe_all().await {
                    tracing::warn!(error = %e, "live relay: resubscribing failed");
                }
                let Some(bus) = bus.upgrade() else { return };
                bus.resync_all();
                relay.metrics.relay_reconnects.inc();
            }
        }
    }
}

fn deliver(bus: &Bus, me: &str, wire: Wire) {
    match wire {
        Wire::Event {
            node,
            topic,
            seq,
            kind,
            data,
        } if node != me => {
            if let Ok(topic) = topic.parse::<Topic>() {
                let prev = match kind {
                    Published::Snapshot => Prev::Local,
                    Published::Event(Some(p)) => Prev::Seq(p),
                    Published::Event(None) => Prev::Unknown,
                };
                bus.deliver(&topic, seq, prev, data);
            }
        }
        Wire::Position {
            node,
            topic,
            position,
        } if node != me => {
            if let Ok(topic) = topic.parse::<Topic>() {
                bus.deliver_position(&topic, Arc::new(position));
            }
        }
        Wire::Fleet { node, update } if node != me => bus.deliver_fleet(update),
        Wire::Revoke { node, user, sid } if node != me => bus.deliver_revoke(
            &user,
            match sid {
                Some(sid) => Revocation::Session(sid),
                None => Revocation::AllSessions,
            },
        ),
        _ => {}
    }
}

/// Keeps Redis subscribed to exactly the watched topics (and the session
/// channel); topics newly subscribed are checked against the journal, for
/// what was published before the subscription took effect.
async fn reconcile_loop(
    relay: Weak<RedisRelay>,
    bus: Weak<Bus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (Some(relay), Some(bus)) = (relay.upgrade(), bus.upgrade()) else {
            return;
        };
        let mut want: BTreeSet<String> = bus.watched().iter().map(channel).collect();
        want.insert(REVOKE_CHANNEL.to_owned());
        want.insert(FLEET_CHANNEL.to_owned());
        let have: BTreeSet<String> = relay
            .subscriber
            .tracked_channels()
            .into_iter()
            .map(|c| c.to_string())
            .collect();
        let add: Vec<String> = want.difference(&have).cloned().collect();
        let drop_: Vec<String> = have.difference(&want).cloned().collect();
        let mut retry = false;
        if !add.is_empty() {
            match relay.subscriber.subscribe(add.clone()).await {
                Ok(()) => {
                    for c in &add {
                        if let Some(t) = c.strip_prefix("surge:").and_then(|t| t.parse().ok()) {
                            bus.resync(&t);
                        }
                    }
                }
                Err(e) => {
                    retry = true;
                    tracing::debug!(error = %e, "live relay: subscribe failed; retrying");
                }
            }
        }
        if !drop_.is_empty() {
            if let Err(e) = relay.subscriber.unsubscribe(drop_).await {
                retry = true;
                tracing::debug!(error = %e, "live relay: unsubscribe failed; retrying");
            }
        }
        let wake = relay.clone();
        drop((relay, bus));
        tokio::select! {
            _ = wake.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(if retry { 1 } else { 30 })) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::QueueLive;

    #[test]
    fn messages_round_trip() {
        let wire = Wire::Event {
            node: "n1".into(),
            topic: "queue:0192a2b3-0000-7000-8000-00000000000a".into(),
            seq: 7,
            kind: Published::Event(Some(5)),
            data: LiveEvent::Queue(QueueLive::Capacity {
                capacity: 3,
                confirmed: 1,
                remaining: 2,
                waitlisted: 0,
                state: crate::domain::window::WindowState::Open,
            }),
        };
        let bytes = rmp_serde::to_vec_named(&wire).unwrap();
        match rmp_serde::from_slice::<Wire>(&bytes).unwrap() {
            Wire::Event {
                seq: 7,
                kind: Published::Event(Some(5)),
                data,
                ..
            } => {
                assert!(matches!(
                    data,
                    LiveEvent::Queue(QueueLive::Capacity { capacity: 3, .. })
                ))
            }
            other => panic!("{other:?}"),
        }
    }
}
