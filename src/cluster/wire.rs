//! The inter-node channel: commands forwarded to the node that owns their
//! entity, over persistent TCP connections carrying length-delimited
//! MessagePack frames (`tokio-util`'s `LengthDelimitedCodec`, at most
//! `MAX_FRAME` bytes each).
//!
//! - A connection is TLS 1.3 with both sides' certificates checked
//!   (`tls`; plaintext only when allowed for development), within
//!   `HANDSHAKE`.
//! - Then comes a challenge: the listener sends a random
//!   nonce, the caller answers with its node name and an HMAC-SHA256 of the
//!   nonce under the cluster secret, within `HANDSHAKE` (else it is
//!   closed). Nothing else is read before that.
//! - Then the caller sends `Request` frames (an id, the entity kind and id,
//!   the caller's remaining time, the encoded command) and the listener
//!   answers `Reply` frames in any order; many requests share a connection.
//! - Bounds: `MAX_IN_FLIGHT` requests per connection (beyond: `Busy`),
//!   `MAX_CONNECTIONS` inbound connections, a deadline on connecting, on the
//!   handshake and on every request (the caller's own).
//! - A reply that never comes (the connection dropped after the request was
//!   written, or the deadline passed) is an *unknown outcome*: the command
//!   may have run. The caller reports it as such (HTTP 503 `timeout`) and a
//!   client retries with its idempotency key; a request that was never
//!   written (`NotSent`) is safe to retry at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::tls::{Io, Transport};
use super::Cluster;

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 16 << 20;
/// Requests one connection may have waiting for a reply.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Inbound connections one node accepts.
pub const MAX_CONNECTIONS: usize = 256;
/// Peer addresses remembered before the closed ones are forgotten.
const MAX_PEERS: usize = 64;
/// Bound of connecting and of the handshake.
pub const HANDSHAKE: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    Challenge {
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
    },
    Hello {
        node: String,
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
    },
    Welcome,
    Request {
        id: u64,
        kind: String,
        entity: String,
        budget_ms: u64,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
        /// The id of the request that caused it (`crate::context`).
        #[serde(default)]
        request_id: Option<String>,
        /// Its trace context (W3C `traceparent`), when traces are on.
        #[serde(default)]
        traceparent: Option<String>,
    },
    Reply {
        id: u64,
        outcome: Outcome,
    },
}

/// What the owner answers a forwarded command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The entity's answer, encoded: `Result<Reply, Rejection>`.
    Done(#[serde(with = "serde_bytes")] Vec<u8>),
    /// This node does not hold the entity's shard (any more): not run.
    Moved,
    /// Too much queued here; not run.
    Busy(String),
    /// Ran, or may have: no answer within the caller's time.
    Timeout,
    /// Could not be run now (store down, actor failing); `transient`
    /// failures are worth retrying later.
    Failed { transient: bool, message: String },
}

impl Outcome {
    /// What it was, for a log line.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Moved => "moved",
            Outcome::Busy(_) => "busy",
            Outcome::Timeout => "timeout",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// Why a forwarded call has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request never left: no connection, or its queue was full.
    #[error("not sent to {0}")]
    NotSent(String),
    /// Sent, but the connection ended or the deadline passed before the
    /// reply: the command may or may not have run.
    #[error("no reply from {0}: the outcome is unknown")]
    Lost(String),
}

fn encode(frame: &Frame) -> Bytes {
    Bytes::from(rmp_serde::to_vec(frame).expect("frames always encode"))
}

fn decode(bytes: &[u8]) -> Option<Frame> {
    rmp_serde::from_slice(bytes).ok()
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

fn proof(secret: &[u8], nonce: &[u8], node: &str) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"surge-cluster\0");
    mac.update(nonce);
    mac.update(node.as_bytes());
    mac
}

async fn next_frame(
    framed: &mut Framed<Box<dyn Io>, LengthDelimitedCodec>,
    within: Duration,
) -> Option<Frame> {
    match tokio::time::timeout(within, framed.next()).await {
        Ok(Some(Ok(bytes))) => decode(&bytes),
        _ => None,
    }
}

/// One open connection to a peer.
struct Conn {
    out: mpsc::Sender<Bytes>,
    pending: Arc<DashMap<u64, oneshot::Sender<Outcome>>>,
}

/// Outbound connections to the other nodes, one per address, opened on
/// first use and again after they drop.
pub struct Peers {
    node: String,
    secret: Vec<u8>,
    transport: Transport,
    conns: DashMap<String, Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>>,
    next_id: AtomicU64,
}

impl Peers {
    pub fn new(node: String, secret: Vec<u8>, transport: Transport) -> Peers {
        Peers {
            node,
            secret,
            transport,
            conns: DashMap::new(),
            next_id: AtomicU64::new(1),
        }
    }

    async fn connect(&self, addr: &str) -> Result<Arc<Conn>, SendError> {
        let not_sent = |why: String| SendError::NotSent(format!("{addr} ({why})"));
        let stream = tokio::time::timeout(HANDSHAKE, TcpStream::connect(addr))
            .await
            .map_err(|_| not_sent("connect timed out".into()))?
            .map_err(|e| not_sent(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream = tokio::time::timeout(HANDSHAKE, self.transport.connect(stream))
            .await
            .map_err(|_| not_sent("TLS handshake timed out".into()))?
            .map_err(|e| not_sent(format!("TLS handshake failed: {e}")))?;
        let mut framed = Framed::new(stream, codec());
        let Some(Frame::Challenge { nonce }) = next_frame(&mut framed, HANDSHAKE).await else {
            return Err(not_sent("no challenge".into()));
        };
        let hello = Frame::Hello {
            node: self.node.clone(),
            proof: proof(&self.secret, &nonce, &self.node)
                .finalize()
                .into_bytes()
                .to_vec(),
        };
        framed
            .send(encode(&hello))
            .await
            .map_err(|e| not_sent(e.to_string()))?;
        let Some(Frame::Welcome) = next_frame(&mut framed, HANDSHAKE).await else {
            return Err(not_sent(
                "handshake refused (cluster secret differs?)".into(),
            ));
        };
        let (mut sink, mut stream) = framed.split();
        let (out, mut rx) = mpsc::channel::<Bytes>(MAX_IN_FLIGHT);
        let pending: Arc<DashMap<u64, oneshot::Sender<Outcome>>> = Arc::default();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        });
        let replies = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(bytes)) = stream.next().await {
                if let Some(Frame::Reply { id, outcome }) = decode(&bytes) {
                    if let Some((_, tx)) = replies.remove(&id) {
                        let _ = tx.send(outcome);
                    }
                }
            }
            // The connection ended: every waiting caller learns it now,
            // and the connection counts as closed (`out.is_closed()`).
            writer.abort();
            replies.clear();
        });
        Ok(Arc::new(Conn { out, pending }))
    }

    async fn conn(&self, addr: &str) -> Result<Arc<Conn>, SendError> {
        if self.conns.len() > MAX_PEERS && !self.conns.contains_key(addr) {
            // Addresses of nodes that left (a rollout gives pods new IPs):
            // forget every one without an open connection.
            self.conns.retain(|_, cell| {
                cell.try_lock()
                    .map_or(true, |c| c.as_ref().is_some_and(|c| !c.out.is_closed()))
            });
        }
        let cell = self.conns.entry(addr.to_owned()).or_default().clone();
        let mut slot = cell.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.out.is_closed()) {
            return Ok(c.clone());
        }
        let c = self.connect(addr).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends one command to the node at `addr` and waits at most `budget`
    /// for its outcome.
    pub async fn call(
        &self,
        addr: &str,
        kind: &str,
        entity: &str,
        body: Vec<u8>,
        budget: Duration,
        carried: crate::context::Carried,
    ) -> Result<Outcome, SendError> {
        let conn = tokio::time::timeout(budget, self.conn(addr))
            .await
            .map_err(|_| SendError::NotSent(format!("{addr} (connect timed out)")))??;
        if conn.pending.len() >= MAX_IN_FLIGHT {
            return Err(SendError::NotSent(format!(
                "{addr} (too many requests waiting)"
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.insert(id, tx);
        let frame = encode(&Frame::Request {
            id,
            kind: kind.to_owned(),
            entity: entity.to_owned(),
            budget_ms: budget.as_millis().min(u64::MAX as u128) as u64,
            body,
            request_id: carried.request_id.map(|id| id.to_string()),
            traceparent: carried.traceparent,
        });
        if conn.out.try_send(frame).is_err() {
            conn.pending.remove(&id);
            return Err(SendError::NotSent(format!(
                "{addr} (connection closed or full)"
            )));
        }
        match tokio::time::timeout(budget, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(SendError::Lost(addr.to_owned())),
            Err(_) => {
                conn.pending.remove(&id);
                Err(SendError::Lost(addr.to_owned()))
            }
        }
    }
}

/// Accepts peers' connections until `stop` turns true and serves their
/// requests with `cluster`'s handlers.
pub async fn serve(
    listener: TcpListener,
    cluster: Weak<Cluster>,
    secret: Vec<u8>,
    transport: Transport,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let secret: Arc<[u8]> = secret.into();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropped: the caller reconnects later
        };
        let (cluster, secret, stop) = (cluster.clone(), secret.clone(), stop.clone());
        let transport = transport.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE, transport.accept(stream)).await {
                Ok(Ok(stream)) => serve_conn(stream, cluster, &secret, stop).await,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "inter-node connection refused: TLS handshake failed")
                }
                Err(_) => tracing::warn!("inter-node connection refused: no TLS handshake in time"),
            }
            drop(permit);
        });
    }
}

async fn serve_conn(
    stream: Box<dyn Io>,
    cluster: Weak<Cluster>,
    secret: &[u8],
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut framed = Framed::new(stream, codec());
    let mut nonce = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    if framed
        .send(encode(&Frame::Challenge {
            nonce: nonce.to_vec(),
        }))
        .await
        .is_err()
    {
        return;
    }
    let Some(Frame::Hello { node, proof: given }) = next_frame(&mut framed, HANDSHAKE).await else {
        return;
    };
    if proof(secret, &nonce, &node).verify_slice(&given).is_err() {
        tracing::warn!(%node, "inter-node handshake refused: wrong cluster secret");
        return;
    }
    if framed.send(encode(&Frame::Welcome)).await.is_err() {
        return;
    }
    let (mut sink, mut frames) = framed.split();
    let (out, mut rx) = mpsc::channel::<Bytes>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let next = tokio::select! {
            f = frames.next() => f,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(Ok(bytes)) = next else { break };
        let Some(Frame::Request {
            id,
            kind,
            entity,
            budget_ms,
            body,
            request_id,
            traceparent,
        }) = decode(&bytes)
        else {
            break; // a peer speaking something else: close
        };
        let out = out.clone();
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let _ = out.try_send(encode(&Frame::Reply {
                id,
                outcome: Outcome::Busy("too many forwarded requests".into()),
            }));
            continue;
        };
        let cluster = cluster.clone();
        // Served as part of the caller's request: its id in this node's
        // context and log lines.
        let request_id = request_id
            .as_deref()
            .and_then(crate::context::accepted)
            .unwrap_or_else(crate::context::new_id);
        let span = tracing::info_span!(
            "forwarded",
            request_id = %request_id,
            from = %node,
            kind = %kind,
        );
        if let Some(parent) = &traceparent {
            crate::telemetry::continue_trace(&span, parent);
        }
        let serve = async move {
            let budget = Duration::from_millis(budget_ms);
            let outcome = match cluster.upgrade().and_then(|c| c.handler(&kind)) {
                None => Outcome::Failed {
                    transient: false,
                    message: format!("no entity kind '{kind}' here"),
                },
                Some(h) => tokio::time::timeout(budget, h.handle(&entity, &body, budget))
                    .await
                    .unwrap_or(Outcome::Timeout),
            };
            let _ = out.send(encode(&Frame::Reply { id, outcome })).await;
            drop(permit);
        };
        tokio::spawn(crate::context::scope(
            request_id,
            tracing::Instrument::instrument(serve, span),
        ));
    }
    drop(out);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = Frame::Reply {
            id: 7,
            outcome: Outcome::Done(vec![1, 2, 3]),
        };
        match decode(&encode(&f)) {
            Some(Frame::Reply { id: 7, outcome }) => {
                assert_eq!(outcome, Outcome::Done(vec![1, 2, 3]))
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"\xff\x00garbage").is_none());
    }
}
