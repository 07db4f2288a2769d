//! One WebSocket session, written against any `Sink`/`Stream` of messages so
//! it can be driven by a real socket or by channels in a test.
//!
//! Everything the client is sent goes through one bounded queue, so replies,
//! replayed events and live events keep their order. A subscription is
//! subscribed to the bus first, then its task replays the journal after
//! `since` up to the stream's head, announces `subscribed` with that head,
//! and forwards live events above it — no gap, no duplicate. A client that
//! cannot keep up (queue full, or the bus buffer lapped it) is disconnected
//! with close code 4008 and resumes with `since`.
//!
//! Shipper positions are the exception: they bypass the queue. Each topic's
//! newest position waits in the bus's slot for that topic, which the
//! session task polls itself once the topic's `subscribed` is written: a
//! new position wakes the session once, and a slow reader gets fewer,
//! newer positions instead of being disconnected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::FutureExt;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamMap;

use super::protocol::{close, encode, ClientMsg, Codec, ServerMsg};
use crate::domain::shipping::Fix;
use crate::live::{
    Bus, LiveEvent, PositionFrame, PositionSlot, Prev, RevocationWatch, Topic, TopicError,
    TopicEvent,
};
use crate::service::AuthUser;

/// What of a topic a subscriber may see: `None`, everything; `Some(order)`,
/// only events and positions about that order (a customer watching the
/// shipper who delivers their order). A scoped subscription ends when
/// that delivery does (`released`).
pub use crate::service::platform::topics::Scope;

fn in_scope(scope: &Scope, data: &LiveEvent) -> bool {
    scope
        .as_deref()
        .is_none_or(|order| data.order_id() == Some(order))
}

/// Most queued frames written together before one flush.
const WRITE_BATCH: usize = 64;

/// The position slots the session polls, by the topic as the client
/// spelled it.
type Positions = StreamMap<String, WatchStream<Option<Arc<PositionFrame>>>>;

/// Where topics come from: who may watch them, their journal head, and the
/// replay of what a client missed.
#[async_trait]
pub trait TopicSource: Send + Sync + 'static {
    /// `Err` carries the error frame to send (forbidden, unknown topic…).
    async fn authorize(&self, user: &AuthUser, topic: &Topic) -> Result<Scope, ServerMsg>;
    /// The sequence number of the topic's latest event.
    async fn head(&self, topic: &Topic) -> Result<u64, String>;
    /// One page of the topic's journal after `after` (up to `until`): the
    /// published events in it, in order, and the last sequence number the
    /// page covered (`after` when the journal has nothing more).
    async fn replay(
        &self,
        topic: &Topic,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, LiveEvent)>, u64), String>;
    /// An `auth` frame's token: the user it authenticates (with a live
    /// session), or the error frame to send.
    async fn reauthenticate(&self, _token: &str) -> Result<AuthUser, ServerMsg> {
        Err(ServerMsg::error(
            "unsupported",
            "this server does not renew tokens on a connection",
        ))
    }
    /// A `location` frame from `user`.
    async fn location(&self, _user: &AuthUser, _fix: Fix) -> Result<(), ServerMsg> {
        Err(ServerMsg::error(
            "unsupported",
            "this server does not take locations",
        ))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Frames queued for a client before it counts as a slow consumer.
    pub out_queue: usize,
    pub max_subscriptions: usize,
    /// Close a connection that sent nothing (not even a pong) for this long.
    pub idle: Duration,
    /// Server ping interval.
    pub ping_every: Duration,
    /// A frame the client's connection cannot take within this long means
    /// it stopped reading: the connection is dropped.
    pub write_timeout: Duration,
    /// Largest message a client may send; a bigger one closes with 1009.
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            out_queue: 256,
            max_subscriptions: 32,
            idle: Duration::from_secs(90),
            ping_every: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
        }
    }
}

pub struct SessionCtx {
    pub user: AuthUser,
    /// The user's ended auth sessions; the connection closes (4001) when
    /// its own is among them.
    pub revocations: RevocationWatch,
    pub codec: Codec,
    pub bus: Arc<Bus>,
    pub topics: Arc<dyn TopicSource>,
    pub limits: Limits,
    /// Becomes `true` when the server shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Topics (and `since`) subscribed from the start, as if the client had
    /// sent `subscribe` first (the single-topic paths).
    pub initial: Vec<(String, Option<u64>)>,
    /// Where open sessions, subscriptions and slow-consumer closes count.
    pub metrics: Arc<crate::metrics::Metrics>,
}

fn decode(codec: Codec, msg: &Message) -> Option<Result<ClientMsg, String>> {
    match msg {
        Message::Text(t) => Some(ClientMsg::from_text(t.as_str())),
        Message::Binary(b) => Some(ClientMsg::from_binary(codec, b)),
        _ => None,
    }
}

/// One subscription: its topic, what of it the client may see, and the
/// task that replays and forwards its events.
struct Subscribed {
    topic: Topic,
    scope: Scope,
    task: JoinHandle<()>,
}

/// The client's subscriptions and where their tasks deliver.
struct Subscriptions {
    /// By the topic as the client spelled it.
    tasks: HashMap<String, Subscribed>,
    /// Position slots of topics whose `subscribed` is not written yet.
    waiting: HashMap<String, PositionSlot>,
    /// Position slots the session polls.
    positions: Positions,
    outlet: Outlet,
    /// The node's count of live subscriptions.
    live: prometheus_client::metrics::gauge::Gauge,
}

impl Subscriptions {
    fn new(
        out: mpsc::Sender<Box<ServerMsg>>,
        close: mpsc::Sender<(u16, &'static str)>,
        live: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Subscriptions {
            tasks: HashMap::new(),
            waiting: HashMap::new(),
            positions: Positions::new(),
            outlet: Outlet { out, close },
            live,
        }
    }

    /// Stops what the session had of `topic` (its task, its positions).
    async fn drop_topic(&mut self, topic: &str) -> Option<Topic> {
        self.waiting.remove(topic);
        self.positions.remove(topic);
        let old = self.tasks.remove(topic)?;
        self.live.dec();
        old.task.abort();
        let _ = old.task.await;
        Some(old.topic)
    }

    /// `topic`'s `subscribed` was written: its positions flow from now on.
    fn announced(&mut self, msg: &ServerMsg) {
        if let ServerMsg::Subscribed { topic, .. } = msg {
            if let Some(slot) = self.waiting.remove(topic) {
                self.positions.insert(topic.clone(), WatchStream::new(slot));
            }
        }
    }

    /// Whether `frame` of the topic the client calls `name` is for it:
    /// positions flow while the topic's task does (a scoped subscription
    /// ends with its delivery), and only those about the scoped order.
    fn wants(&self, name: &str, frame: &PositionFrame) -> bool {
        self.tasks.get(name).is_some_and(|s| {
            !s.task.is_finished()
                && (s.scope.is_none() || frame.position.order_id.as_deref() == s.scope.as_deref())
        })
    }

    async fn subscribe(
        &mut self,
        ctx: &SessionCtx,
        topic: String,
        since: Option<u64>,
    ) -> Option<ServerMsg> {
        self.drop_topic(&topic).await;
        if self.tasks.len() >= ctx.limits.max_subscriptions {
            return Some(ServerMsg::error(
                "too_many_subscriptions",
                format!(
                    "at most {} topics per connection",
                    ctx.limits.max_subscriptions
                ),
            ));
        }
        let parsed = match topic.parse::<Topic>() {
            Err(e @ TopicError::Forbidden(_)) => {
                return Some(ServerMsg::error("forbidden", e.to_string()))
            }
            Err(e @ TopicError::Unknown(_)) => {
                return Some(ServerMsg::error("unknown_topic", e.to_string()))
            }
            Ok(parsed) => parsed,
        };
        match ctx.topics.authorize(&ctx.user, &parsed).await {
            Err(e) => Some(e),
            Ok(scope) => {
                // Subscribe before the task reads the head: every event
                // after the head is then in `events`, so the hand-over from
                // replay to live has no gap.
                let sub = ctx.bus.subscribe(&parsed);
                let feed = Feed {
                    topic: parsed.clone(),
                    name: topic.clone(),
                    scope: scope.clone(),
                    topics: ctx.topics.clone(),
                    outlet: self.outlet.clone(),
                };
                self.waiting.insert(topic.clone(), sub.positions);
                let task = tokio::spawn(feed.run(sub.events, since));
                self.live.inc();
                self.tasks.insert(
                    topic,
                    Subscribed {
                        topic: parsed,
                        scope,
                        task,
                    },
                );
                None
            }
        }
    }

    async fn unsubscribe(&mut self, bus: &Bus, topic: String) -> ServerMsg {
        match self.drop_topic(&topic).await {
            Some(parsed) => {
                bus.release(&parsed);
                ServerMsg::Unsubscribed { topic }
            }
            None => ServerMsg::error("not_subscribed", format!("not subscribed to {topic}")),
        }
    }

    async fn end(&mut self, bus: &Bus) {
        self.waiting.clear();
        self.positions.clear();
        for (_, s) in self.tasks.drain() {
            self.live.dec();
            s.task.abort();
            let _ = s.task.await;
            bus.release(&s.topic);
        }
    }
}

/// What a client's frame is answered with (`None`: nothing, or the
/// subscription task answers).
async fn on_client_msg(
    ctx: &mut SessionCtx,
    subs: &mut Subscriptions,
    msg: Result<ClientMsg, String>,
) -> Option<ServerMsg> {
    match msg {
        Err(e) => Some(ServerMsg::error("invalid_message", e)),
        Ok(ClientMsg::Ping) => Some(ServerMsg::Pong),
        Ok(ClientMsg::Auth { token }) => match ctx.topics.reauthenticate(&token).await {
            Ok(user) if user.id == ctx.user.id => {
                let reply = ServerMsg::AuthOk {
                    expires_at: user.expires_at,
                    expires_in: user.expires_at - chrono::Utc::now().timestamp(),
                };
                ctx.user = user;
                Some(reply)
            }
            Ok(_) => Some(ServerMsg::error("forbidden", "the token is another user's")),
            Err(e) => Some(e),
        },
        Ok(ClientMsg::Location(fix)) => ctx.topics.location(&ctx.user, fix).await.err(),
        Ok(ClientMsg::Unsubscribe { topic }) => Some(subs.unsubscribe(&ctx.bus, topic).await),
        Ok(ClientMsg::Subscribe { topic, since }) => subs.subscribe(ctx, topic, since).await,
    }
}

/// The topics subscribed from the start, as `subscribe` frames.
fn initial_frames<E>(initial: &[(String, Option<u64>)]) -> Vec<Result<Message, E>> {
    initial
        .iter()
        .map(|(topic, since)| {
            let msg = ClientMsg::Subscribe {
                topic: topic.clone(),
                since: *since,
            };
            Ok(Message::Text(
                serde_json::to_string(&msg)
                    .expect("client messages serialize")
                    .into(),
            ))
        })
        .collect()
}

/// How a session's loop ended.
enum Ending {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client left, or its connection failed: just close.
    Quietly,
    /// The client stopped reading: nothing more can be sent.
    Stalled,
}

/// A frame from the client: its answer, or how the session ends.
async fn on_frame(
    ctx: &mut SessionCtx,
    subs: &mut Subscriptions,
    frame: Message,
) -> Result<Option<ServerMsg>, Ending> {
    let size = match &frame {
        Message::Close(_) => return Err(Ending::Quietly),
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    };
    if size > ctx.limits.max_message {
        return Err(Ending::Close(close::TOO_BIG, "message too big"));
    }
    match decode(ctx.codec, &frame) {
        Some(decoded) => Ok(on_client_msg(ctx, subs, decoded).await),
        None => Ok(None),
    }
}

/// Writes `first` and whatever else is queued in one flush.
async fn write_queued<S: Sink<Message> + Unpin>(
    sink: &mut S,
    codec: Codec,
    first: &ServerMsg,
    queue: &mut mpsc::Receiver<Box<ServerMsg>>,
    subs: &mut Subscriptions,
) -> Result<(), S::Error> {
    sink.feed(encode(codec, first)).await?;
    subs.announced(first);
    for _ in 1..WRITE_BATCH {
        let Ok(msg) = queue.try_recv() else { break };
        sink.feed(encode(codec, &msg)).await?;
        subs.announced(&msg);
    }
    sink.flush().await
}

/// Writes `first` and the newest position of every other topic that has
/// one ready: frames encoded once per topic, shared by its watchers; one
/// flush for all.
async fn write_positions<S: Sink<Message> + Unpin>(
    sink: &mut S,
    codec: Codec,
    first: (String, Option<Arc<PositionFrame>>),
    subs: &mut Subscriptions,
) -> Result<(), S::Error> {
    let mut next = Some(first);
    for _ in 0..WRITE_BATCH {
        let Some((name, newest)) = next else { break };
        if let Some(frame) = newest.filter(|f| subs.wants(&name, f)) {
            sink.feed(super::protocol::location_frame(&frame, codec))
                .await?;
        }
        next = subs.positions.next().now_or_never().flatten();
    }
    sink.flush().await
}

/// Runs the session until the client leaves, misbehaves past recovery, or
/// falls behind.
pub async fn run<S, R, E>(mut sink: S, stream: R, mut ctx: SessionCtx)
where
    S: Sink<Message> + Unpin + Send,
    R: Stream<Item = Result<Message, E>> + Unpin + Send,
    E: Send,
{
    let mut stream = futures_util::stream::iter(initial_frames(&ctx.initial)).chain(stream);
    // Boxed: the channel allocates its slots in blocks of 32, and an idle
    // session should not hold 32 whole messages' worth of memory.
    let (out_tx, mut out_rx) = mpsc::channel::<Box<ServerMsg>>(ctx.limits.out_queue.max(1));
    // A subscription task that sees the client fall behind asks for a close.
    let (close_tx, mut close_rx) = mpsc::channel::<(u16, &'static str)>(1);
    let mut subs = Subscriptions::new(
        out_tx.clone(),
        close_tx,
        ctx.metrics.ws_subscriptions.clone(),
    );
    ctx.metrics.ws_sessions.inc();
    let mut last_heard = Instant::now();
    let mut server_down = std::pin::pin!(server_down(ctx.shutdown.clone()));
    let mut ping = tokio::time::interval(ctx.limits.ping_every);
    ping.tick().await;
    let mut expires_at = ctx.user.expires_at;
    let mut expiry = std::pin::pin!(tokio::time::sleep(until_unix(expires_at)));
    let limits = ctx.limits;
    let ending = loop {
        if ctx
            .revocations
            .rx
            .borrow_and_update()
            .ends(&ctx.user.sid, ctx.revocations.opened_at)
        {
            break Ending::Close(close::SESSION_ENDED, "session ended: log in again");
        }
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break Ending::Quietly };
                last_heard = Instant::now();
                let reply = match on_frame(&mut ctx, &mut subs, frame).await {
                    Ok(reply) => reply,
                    Err(ending) => break ending,
                };
                if ctx.user.expires_at != expires_at {
                    // A renewed token moves the deadline.
                    expires_at = ctx.user.expires_at;
                    expiry.as_mut().reset(tokio::time::Instant::now() + until_unix(expires_at));
                }
                if let Some(reply) = reply {
                    if out_tx.try_send(Box::new(reply)).is_err() {
                        break Ending::Close(close::SLOW_CONSUMER, "too slow: reconnect and resubscribe with since");
                    }
                }
            }
            Some(msg) = out_rx.recv() => {
                let write = write_queued(&mut sink, ctx.codec, &msg, &mut out_rx, &mut subs);
                if let Some(ending) = write_failed(limits.write_timeout, write).await {
                    break ending;
                }
            }
            Some(newest) = subs.positions.next() => {
                let write = write_positions(&mut sink, ctx.codec, newest, &mut subs);
                if let Some(ending) = write_failed(limits.write_timeout, write).await {
                    break ending;
                }
            }
            Some((code, reason)) = close_rx.recv() => break Ending::Close(code, reason),
            // Checked at the top of the loop.
            Ok(()) = ctx.revocations.rx.changed() => {}
            _ = &mut expiry => break Ending::Close(close::TOKEN_EXPIRED, "token expired: renew it with an auth frame before it expires"),
            _ = &mut server_down => break Ending::Close(close::GOING_AWAY, "server shutting down"),
            _ = ping.tick() => {
                if last_heard.elapsed() >= limits.idle {
                    break Ending::Close(close::IDLE, "idle timeout");
                }
                if write_failed(limits.write_timeout, sink.send(Message::Ping(Default::default()))).await.is_some() {
                    break Ending::Stalled;
                }
            }
        }
    };
    subs.end(&ctx.bus).await;
    ctx.metrics.ws_sessions.dec();
    if matches!(ending, Ending::Close(close::SLOW_CONSUMER, _)) {
        ctx.metrics.ws_slow_closes.inc();
    }
    finish(sink, ending, limits.write_timeout).await;
}

/// Says goodbye as the ending allows.
async fn finish<S: Sink<Message> + Unpin>(mut sink: S, ending: Ending, limit: Duration) {
    match ending {
        Ending::Stalled => return,
        Ending::Close(code, reason) => {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(limit, sink.send(frame)).await;
        }
        Ending::Quietly => {}
    }
    let _ = tokio::time::timeout(limit, sink.close()).await;
}

/// Resolves when the server starts shutting down (never, once no one can
/// signal it any more).
async fn server_down(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Time left until the Unix second `at` (zero when past).
fn until_unix(at: i64) -> Duration {
    let ms = at.saturating_mul(1000) - chrono::Utc::now().timestamp_millis();
    Duration::from_millis(ms.max(0) as u64)
}

/// Runs a write bounded by `limit`: `None` when it went through, otherwise
/// how the session ends: the client stalled (stopped reading: a close frame
/// would not get through either), or the connection failed.
async fn write_failed<E>(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> Option<Ending> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(Ending::Quietly),
        Err(_) => Some(Ending::Stalled),
    }
}

/// Where a subscription delivers.
#[derive(Clone)]
struct Outlet {
    out: mpsc::Sender<Box<ServerMsg>>,
    close: mpsc::Sender<(u16, &'static str)>,
}

impl Outlet {
    /// Asks the session to close: the client fell behind.
    fn too_slow(&self) {
        let _ = self.close.try_send((
            close::SLOW_CONSUMER,
            "too slow: reconnect and resubscribe with since",
        ));
    }
}

/// One subscription's task: a topic's events, what of them the client may
/// see, and where they go.
struct Feed {
    topic: Topic,
    /// The topic as the client spelled it.
    name: String,
    scope: Scope,
    topics: Arc<dyn TopicSource>,
    outlet: Outlet,
}

impl Feed {
    /// `live` was subscribed before this reads the head.
    async fn run(self, live: broadcast::Receiver<Arc<TopicEvent>>, since: Option<u64>) {
        let head = match self.topics.head(&self.topic).await {
            Ok(h) => h,
            Err(e) => {
                let _ = self
                    .outlet
                    .out
                    .send(Box::new(ServerMsg::error("unavailable", e)))
                    .await;
                return;
            }
        };
        if self.replay(since.unwrap_or(head), head).await.is_none() {
            return;
        }
        let subscribed = ServerMsg::Subscribed {
            topic: self.name.clone(),
            seq: head,
        };
        if self.outlet.out.send(Box::new(subscribed)).await.is_err() {
            return;
        }
        self.forward(head, live).await;
    }

    /// Replays page by page from `pos` up to the head; `send().await` makes
    /// a slow reader slow the replay down instead of growing a buffer.
    /// `None` when the subscription is over.
    async fn replay(&self, mut pos: u64, head: u64) -> Option<()> {
        let out = &self.outlet.out;
        while pos < head {
            let (events, covered) = match self.topics.replay(&self.topic, pos, head).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = out.send(Box::new(ServerMsg::error("unavailable", e))).await;
                    return None;
                }
            };
            for (seq, data) in events.into_iter().filter(|(_, d)| in_scope(&self.scope, d)) {
                let event = ServerMsg::Event {
                    topic: self.name.clone(),
                    seq,
                    data: Box::new(data),
                };
                out.send(Box::new(event)).await.ok()?;
            }
            if covered <= pos {
                break;
            }
            pos = covered;
        }
        Some(())
    }

    /// Live events above the head. An event from another node whose
    /// predecessor this subscriber did not see (`Prev`), or a resync
    /// marker, first fills the gap from the journal, so the client never
    /// sees a hole or a duplicate.
    async fn forward(&self, head: u64, mut live: broadcast::Receiver<Arc<TopicEvent>>) {
        let mut last = head;
        loop {
            let ev = match live.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.outlet.too_slow();
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let missed_before = match ev.prev {
                Prev::Local => None,
                Prev::Seq(p) if p <= last => None,
                Prev::Seq(_) | Prev::Unknown => Some(ev.seq.saturating_sub(1)),
                Prev::Resync => self.topics.head(&self.topic).await.ok(),
            };
            if let Some(until) = missed_before.filter(|u| *u > last) {
                if self.replay(last, until).await.is_none() {
                    return;
                }
                last = until;
            }
            let Some(data) = &ev.data else { continue };
            if ev.seq <= last || !in_scope(&self.scope, data) {
                last = last.max(ev.seq);
                continue;
            }
            last = ev.seq;
            let ended = self.scope.is_some() && data.ends_delivery();
            let msg = ServerMsg::Event {
                topic: self.name.clone(),
                seq: ev.seq,
                data: Box::new((**data).clone()),
            };
            if self.outlet.out.try_send(Box::new(msg)).is_err() {
                self.outlet.too_slow();
                return;
            }
            if ended {
                let over = ServerMsg::error(
                    "access_ended",
                    format!("the delivery is over: no more updates from {}", self.name),
                );
                let _ = self.outlet.out.send(Box::new(over)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
