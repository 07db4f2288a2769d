//! The baseline for WebSocket scenarios: a plain tokio-tungstenite
//! broadcast server, written the way we would write one without Surge.
//!
//! Protocol (JSON text frames): `{"type":"subscribe","topic":T}` adds the
//! connection to topic T; `{"type":"location","topic":T,"lat":…,"lng":…,
//! "ts":…}` is serialized once as `{"type":"location","topic":T,"data":{…}}`
//! and queued to every subscriber of T. Each connection has a writer task
//! draining a bounded queue (256 frames, like Surge's), flushing once per
//! batch; a full queue drops the frame for that subscriber. No
//! authentication, no persistence, no rules: the ceiling of this machine
//! for fan-out over WebSockets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const QUEUE: usize = 256;

type Subscribers = Vec<(u64, mpsc::Sender<Message>)>;

#[derive(Default)]
struct Hub {
    topics: RwLock<HashMap<String, Subscribers>>,
    next_id: AtomicU64,
}

impl Hub {
    fn subscribe(&self, topic: &str, id: u64, tx: mpsc::Sender<Message>) {
        let mut topics = self.topics.write().expect("hub lock");
        topics.entry(topic.to_owned()).or_default().push((id, tx));
    }

    fn unsubscribe_all(&self, topics_of_conn: &[String], id: u64) {
        let mut topics = self.topics.write().expect("hub lock");
        for t in topics_of_conn {
            if let Some(subs) = topics.get_mut(t) {
                subs.retain(|(i, _)| *i != id);
                if subs.is_empty() {
                    topics.remove(t);
                }
            }
        }
    }

    fn publish(&self, topic: &str, frame: Message) {
        let topics = self.topics.read().expect("hub lock");
        if let Some(subs) = topics.get(topic) {
            for (_, tx) in subs {
                // A subscriber that cannot keep up misses this frame.
                let _ = tx.try_send(frame.clone());
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum In {
    Subscribe {
        topic: String,
    },
    Location {
        topic: String,
        lat: f64,
        lng: f64,
        ts: i64,
    },
    Ping,
}

#[derive(Serialize)]
struct Out<'a> {
    r#type: &'static str,
    topic: &'a str,
    data: Data,
}

#[derive(Serialize)]
struct Data {
    lat: f64,
    lng: f64,
    ts: i64,
}

/// Serves until `stop` fires.
pub async fn serve(listener: TcpListener, stop: oneshot::Receiver<()>) -> anyhow::Result<()> {
    let hub = Arc::new(Hub::default());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, hub.clone()));
            }
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, hub: Arc<Hub>) {
    // Like Surge: a 2 KiB read buffer (tungstenite's 128 KiB default is
    // zeroed before each read, so it would all be resident).
    let config = WebSocketConfig::default().read_buffer_size(2 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let mut mine: Vec<String> = Vec::new();
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        match serde_json::from_str::<In>(text.as_str()) {
            Ok(In::Subscribe { topic }) => {
                if mine.len() < 32 && !mine.contains(&topic) {
                    hub.subscribe(&topic, id, tx.clone());
                    mine.push(topic);
                }
            }
            Ok(In::Location {
                topic,
                lat,
                lng,
                ts,
            }) => {
                let out = Out {
                    r#type: "location",
                    topic: &topic,
                    data: Data { lat, lng, ts },
                };
                if let Ok(json) = serde_json::to_string(&out) {
                    hub.publish(&topic, Message::Text(json.into()));
                }
            }
            Ok(In::Ping) => {
                let _ = tx.try_send(Message::Text(r#"{"type":"pong"}"#.into()));
            }
            Err(_) => {}
        }
    }
    hub.unsubscribe_all(&mine, id);
    drop(tx);
    writer.abort();
}
