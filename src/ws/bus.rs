//! The in-process topic bus. Entity actors publish each persisted event a
//! person may watch on its topic (`user:{id}`, …) with the event's journal
//! sequence number; WebSocket sessions subscribe. A topic exists only while
//! someone subscribes to it, and each topic's buffer is bounded: a
//! subscriber that falls further behind is told it lagged (and resumes from
//! the journal with `since`). Across nodes this becomes Redis pub/sub.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::broadcast;

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicEvent {
    pub topic: Arc<str>,
    pub seq: u64,
    pub data: Arc<serde_json::Value>,
}

pub struct Bus {
    topics: DashMap<String, broadcast::Sender<Arc<TopicEvent>>>,
    /// Events buffered per topic for its slowest subscriber.
    capacity: usize,
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        Bus {
            topics: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Delivers to the topic's current subscribers; a topic nobody watches
    /// costs one map lookup.
    pub fn publish(&self, topic: &str, seq: u64, data: serde_json::Value) {
        if let Some(tx) = self.topics.get(topic) {
            let _ = tx.send(Arc::new(TopicEvent {
                topic: topic.into(),
                seq,
                data: Arc::new(data),
            }));
        }
    }

    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<TopicEvent>> {
        self.topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Forgets `topic` once its last subscriber is gone.
    pub fn release(&self, topic: &str) {
        self.topics
            .remove_if(topic, |_, tx| tx.receiver_count() == 0);
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
        let mut rx = bus.subscribe("user:1");
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
        let mut rx = bus.subscribe("t");
        for seq in 1..=5 {
            bus.publish("t", seq, serde_json::Value::Null);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
    }
}
