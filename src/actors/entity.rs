//! The `Entity` trait (a pure decide/apply pair) and the generic ractor actor
//! that runs one entity: recover (snapshot + tail), decide in memory, persist,
//! then reply.

use crate::live::{LiveEvent, Topic};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{de::DeserializeOwned, Serialize};

use super::registry::{RegistryShared, Slot};
use crate::metrics::KindLabels;
use crate::store::{
    codec, AppendRequest, AppendTicket, Fence, IndexOp, Seq, Snapshot, Store, StoreError,
};
use tokio::sync::mpsc;

/// What a command handler may know besides the state: who it is and when.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub id: &'a str,
    pub now: DateTime<Utc>,
}

/// An event-sourced entity. `decide` and `apply` are pure; the actor does
/// all I/O around them.
pub trait Entity: Send + Sync + Sized + 'static {
    /// Stream prefix and metrics label (`user`, `shop`, …).
    const KIND: &'static str;
    /// Schema version of events and snapshots; bump on incompatible change.
    const VERSION: u16 = 1;
    type State: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Commands and replies are plain data (serde), so a command can be
    /// sent to the node that owns the entity and its reply sent back.
    type Command: Serialize + DeserializeOwned + Send + 'static;
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// A business rejection (sold out, not the owner…): a normal answer,
    /// never an actor failure.
    type Rejection: Serialize + DeserializeOwned + Send + std::fmt::Debug + 'static;

    /// Decides what a command does: the events to persist and the reply to
    /// send once they are durable. No events means a read-only command.
    fn decide(state: &Self::State, cmd: Self::Command, ctx: &Ctx<'_>) -> Decision<Self>;

    /// Folds one event into the state. Must not fail: events are facts.
    fn apply(state: &mut Self::State, event: &Self::Event);

    /// Read-table rows to write atomically with `events`, given the state
    /// before and after them.
    fn index(
        _id: &str,
        _before: &Self::State,
        _after: &Self::State,
        _events: &[Self::Event],
    ) -> Vec<IndexOp> {
        Vec::new()
    }

    /// The live topic and public payload of an event, if people may watch
    /// it. Sent after the event is durable, tagged with its sequence number.
    fn publish(_id: &str, _event: &Self::Event) -> Option<(Topic, LiveEvent)> {
        None
    }

    /// The auth sessions an event ends (logout, reset…): every live
    /// connection of them is closed once the event is durable.
    fn revokes(_event: &Self::Event) -> Option<crate::live::Revocation> {
        None
    }

    /// Applies `events` to `state` in place and answers the read-table
    /// rows to write with them. By default a copy of the state before them
    /// is kept for `index`; an entity whose `index` needs only a little of
    /// that state overrides this, so that its persistent collections are
    /// changed in place instead of copied node by node (the queue in a
    /// burst). Must leave `state` and the rows as `evolve` then `index`
    /// would.
    fn advance(id: &str, state: &mut Self::State, events: &[Self::Event]) -> Vec<IndexOp> {
        let before = state.clone();
        for e in events {
            Self::apply(state, e);
        }
        Self::index(id, &before, state, events)
    }

    /// The state after `events`, leaving `state` untouched.
    fn evolve(state: &Self::State, events: &[Self::Event]) -> Self::State {
        let mut next = state.clone();
        for e in events {
            Self::apply(&mut next, e);
        }
        next
    }
}

/// What `decide` answers: events to persist and the reply, or a rejection.
pub type Decision<E> =
    Result<(Vec<<E as Entity>::Event>, <E as Entity>::Reply), <E as Entity>::Rejection>;

/// The read-table row of an entity whose whole state is one record: `row`
/// encoded under `id`, or nothing while the entity does not exist.
pub fn record_row<T: Serialize>(
    table: &'static str,
    id: &str,
    version: u16,
    row: Option<&T>,
) -> Vec<IndexOp> {
    row.map(|r| IndexOp::Put {
        table,
        key: id.to_owned(),
        value: codec::encode(version, r).expect("plain records always encode"),
    })
    .into_iter()
    .collect()
}

/// The statistics feed row of `fact`, which happened at `at`; `key` names
/// it uniquely (`order:{id}:paid`), so the statistics count it once.
pub fn stats_fact(at: DateTime<Utc>, key: &str, fact: &crate::domain::stats::Fact) -> IndexOp {
    IndexOp::Put {
        table: crate::store::tables::STATS_FEED,
        key: format!("{:020}|{key}", at.timestamp_millis().max(0)),
        value: codec::encode(1, fact).expect("facts encode"),
    }
}

/// The catalog feed row saying that `{kind}:{id}` changed at `at` (the
/// search indexers tail the feed).
pub fn catalog_change(kind: &str, id: &str, at: DateTime<Utc>) -> IndexOp {
    IndexOp::Put {
        table: crate::store::tables::CATALOG_FEED,
        key: format!("{:020}|{kind}:{id}", at.timestamp_millis().max(0)),
        value: Vec::new(),
    }
}

/// The journal stream of an entity.
pub fn stream_id<E: Entity>(id: &str) -> String {
    format!("{}:{}", E::KIND, id)
}

/// Why a call to an entity did not produce a business answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError<R: std::fmt::Debug> {
    #[error("rejected: {0:?}")]
    Rejected(R),
    #[error("the entity did not answer in time; the outcome is unknown")]
    Timeout,
    #[error("the entity is unavailable: {0}")]
    Unavailable(String),
    /// Too much is queued for this entity (or too many are live): retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// Cluster mode: this node does not (or no longer) serve the entity's
    /// shard, and nothing was written. Retry through routing.
    #[error("moved: {0}")]
    Moved(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

pub type Reply<E> = Result<<E as Entity>::Reply, CallError<<E as Entity>::Rejection>>;

/// The closed message set of an entity actor.
pub enum EntityMsg<E: Entity> {
    /// A command, its reply port, and the span of the request that sent
    /// it (the actor decides inside it, so its log lines name the request).
    Command(E::Command, RpcReplyPort<Reply<E>>, tracing::Span),
    /// The live sequence and state (for diagnostics and tests).
    Inspect(RpcReplyPort<(Seq, E::State)>),
    /// Periodic: passivate when idle.
    IdleCheck,
    /// An append failed: the in-memory state ran ahead of the journal.
    /// The actor fails so its supervisor restarts it from the journal.
    Poisoned(String),
}

/// An entity as recovered: its head, its state, and the sequence of the
/// snapshot it started from (0: replayed from the start).
pub struct Recovered<S> {
    pub seq: Seq,
    pub state: S,
    pub snapshot_seq: Seq,
    /// The size of that snapshot and of the events replayed after it.
    pub snapshot_bytes: u64,
    pub tail_bytes: u64,
}

/// Recovers an entity from the store: latest snapshot (when `use_snapshot`
/// and its version is readable) plus every event after it.
pub async fn recover<E: Entity>(
    store: &dyn Store,
    id: &str,
    use_snapshot: bool,
) -> Result<Recovered<E::State>, StoreError> {
    const PAGE: usize = 1024;
    let stream = stream_id::<E>(id);
    let (mut seq, mut state) = (0, E::State::default());
    let (mut snapshot_bytes, mut tail_bytes) = (0, 0);
    if use_snapshot {
        if let Some(snap) = store.load_snapshot(&stream).await? {
            match codec::decode_snapshot::<E::State>(E::VERSION, &snap.payload) {
                Ok(s) => {
                    (seq, state) = (snap.seq, s);
                    snapshot_bytes = snap.payload.len() as u64;
                }
                Err(e) => tracing::warn!(%stream, error = %e, "snapshot ignored; replaying"),
            }
        }
    }
    let snapshot_seq = seq;
    loop {
        let page = store.read(&stream, seq, PAGE).await?;
        let n = page.len();
        for rec in page {
            let event: E::Event = codec::decode(E::VERSION, &rec.payload)?;
            E::apply(&mut state, &event);
            tail_bytes += rec.payload.len() as u64;
            seq = rec.seq;
        }
        if n < PAGE {
            return Ok(Recovered {
                seq,
                state,
                snapshot_seq,
                snapshot_bytes,
                tail_bytes,
            });
        }
    }
}

/// Startup arguments of an entity actor.
pub struct EntityArgs<E: Entity> {
    pub id: String,
    pub shared: Arc<RegistryShared<E>>,
    pub slot: Arc<Slot<E>>,
    pub pending: Arc<AtomicUsize>,
    /// Appends queued but not yet durable (shared with the registry, which
    /// waits for them before handing the shard over).
    pub inflight: Arc<AtomicUsize>,
    /// Cluster mode: the shard lease every append is made under.
    pub fence: Option<Fence>,
}

pub struct EntityState<E: Entity> {
    id: String,
    stream: String,
    /// Sequence and state including decisions not yet durable.
    seq: Seq,
    state: E::State,
    last_snapshot: Seq,
    /// The size of the last snapshot, and of the events appended since.
    snapshot_bytes: u64,
    tail_bytes: u64,
    last_active: Instant,
    shared: Arc<RegistryShared<E>>,
    slot: Arc<Slot<E>>,
    pending: Arc<AtomicUsize>,
    /// Appends queued but not yet durable.
    inflight: Arc<AtomicUsize>,
    completions: mpsc::Sender<Completion<E>>,
    fence: Option<Fence>,
}

/// Most bytes a snapshot's buffer starts with (it grows beyond if needed).
const MAX_SNAPSHOT_PREALLOCATION: u64 = 64 << 20;

/// Most decisions one entity may have waiting for durability.
const MAX_INFLIGHT: usize = 4096;

/// Work for the completer, in decision order.
enum Completion<E: Entity> {
    /// An append: once durable, publish, snapshot, reply.
    Append {
        ticket: AppendTicket,
        reply: RpcReplyPort<Reply<E>>,
        answer: E::Reply,
        publish: Vec<(Topic, Seq, LiveEvent)>,
        revoke: Vec<crate::live::Revocation>,
        snapshot: Option<Snapshot>,
        /// From submission until durable (closed when dropped).
        commit: tracing::Span,
    },
    /// A reply with no events of its own, sent once everything decided
    /// before it is durable (so it never reveals a decision that may fail).
    After {
        reply: RpcReplyPort<Reply<E>>,
        answer: Result<E::Reply, E::Rejection>,
    },
}

/// Resolves an actor's appends strictly in order. After the first failure
/// every later decision fails too (their expected sequence can no longer
/// hold) and the actor is told to restart from the journal.
async fn complete<E: Entity>(
    mut rx: mpsc::Receiver<Completion<E>>,
    shared: Arc<RegistryShared<E>>,
    (id, stream): (String, String),
    inflight: Arc<AtomicUsize>,
    myself: ActorRef<EntityMsg<E>>,
) {
    let mut failed = false;
    // The last event this actor published per topic: subscribers elsewhere
    // tell from it whether they missed one (a new actor starts unknown).
    let mut published: std::collections::HashMap<Topic, Seq> = Default::default();
    while let Some(item) = rx.recv().await {
        match item {
            Completion::After { reply, answer } => {
                let _ = reply.send(if failed {
                    Err(CallError::Unavailable(
                        "an earlier decision failed; recovering".into(),
                    ))
                } else {
                    answer.map_err(CallError::Rejected)
                });
            }
            Completion::Append {
                ticket,
                reply,
                answer,
                publish,
                revoke,
                snapshot,
                commit,
            } => {
                let result = if failed {
                    Err(StoreError::Backend("an earlier append failed".into()))
                } else {
                    ticket.await.unwrap_or(Err(StoreError::Closed))
                };
                drop(commit);
                match result {
                    Ok(_) => {
                        for (topic, seq, data) in publish {
                            if published.len() >= 64 {
                                published.clear();
                            }
                            let prev = published.insert(topic.clone(), seq);
                            shared.rt.bus.publish_event(&topic, seq, prev, data);
                        }
                        for what in revoke {
                            shared.rt.bus.revoke(&id, what);
                        }
                        if let Some(snap) = snapshot {
                            let (store, stream) = (shared.rt.store.clone(), stream.clone());
                            tokio::spawn(async move {
                                if let Err(e) = store.save_snapshot(&stream, snap).await {
                                    tracing::warn!(%stream, error = %e, "snapshot not saved");
                                }
                            });
                        }
                        let _ = reply.send(Ok(answer));
                    }
                    Err(e) => {
                        let err = match &e {
                            StoreError::Conflict { .. } => {
                                CallError::Unavailable("stream moved; recovering".into())
                            }
                            StoreError::Fenced { shard, epoch, .. } => {
                                if let Some(c) = &shared.rt.cluster {
                                    c.lost(Fence {
                                        shard: *shard,
                                        epoch: *epoch,
                                    });
                                }
                                CallError::Moved(e.to_string())
                            }
                            _ => CallError::Storage(e),
                        };
                        let _ = reply.send(Err(err));
                        if !failed {
                            failed = true;
                            let _ = myself.send_message(EntityMsg::Poisoned(format!(
                                "{stream}: an append failed"
                            )));
                        }
                    }
                }
                inflight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

pub struct EntityActor<E: Entity>(std::marker::PhantomData<E>);

impl<E: Entity> Default for EntityActor<E> {
    fn default() -> Self {
        EntityActor(std::marker::PhantomData)
    }
}

impl<E: Entity> EntityActor<E> {
    /// Decides in memory, queues the append, and hands the reply to the
    /// completer, which sends it once the events are durable. The actor
    /// goes on deciding meanwhile, so a burst on one entity is
    /// group-committed instead of waiting one fsync per command.
    async fn handle_command(
        &self,
        st: &mut EntityState<E>,
        cmd: E::Command,
        reply: RpcReplyPort<Reply<E>>,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = Ctx {
            id: &st.id,
            now: Utc::now(),
        };
        let decided = E::decide(&st.state, cmd, &ctx);
        let (events, answer) = match decided {
            Ok((events, answer)) if !events.is_empty() => (events, answer),
            other => {
                let answer = other.map(|(_, a)| a);
                if st.inflight.load(Ordering::Acquire) == 0 {
                    let _ = reply.send(answer.map_err(CallError::Rejected));
                } else {
                    st.completions
                        .send(Completion::After { reply, answer })
                        .await
                        .map_err(|_| "the completer stopped")?;
                }
                return Ok(());
            }
        };
        let mut encoded = Vec::with_capacity(events.len());
        for e in &events {
            encoded.push(codec::encode(E::VERSION, e)?);
        }
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        // From here the state holds the decision (not yet durable).
        let index = E::advance(&st.id, &mut st.state, &events);
        let req = AppendRequest {
            stream: st.stream.clone(),
            expected: st.seq,
            events: encoded,
            index,
            fence: st.fence,
        };
        let commit =
            tracing::debug_span!("journal_commit", stream = %st.stream, events = events.len());
        let ticket = match st.shared.rt.store.submit(req).await {
            Ok(t) => t,
            Err(e) => {
                // Not queued (the store's writer is gone), but the state
                // already holds it: the actor stops, without deciding
                // anything more, and the next command activates it again
                // from its journal.
                let why = format!("{}: an append was not queued: {e}", st.stream);
                let _ = reply.send(Err(CallError::Storage(e)));
                return Err(why.into());
            }
        };
        let first = st.seq + 1;
        let publish = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                E::publish(&st.id, e).map(|(topic, data)| (topic, first + i as u64, data))
            })
            .collect();
        let revoke = events.iter().filter_map(E::revokes).collect();
        st.seq += events.len() as u64;
        st.tail_bytes += bytes as u64;
        let snapshot = self.snapshot_due(st);
        st.inflight.fetch_add(1, Ordering::AcqRel);
        st.completions
            .send(Completion::Append {
                ticket,
                reply,
                answer,
                publish,
                revoke,
                snapshot,
                commit,
            })
            .await
            .map_err(|_| "the completer stopped")?;
        Ok(())
    }

    /// The snapshot to save once the current decision is durable, if one
    /// is due: after `snapshot_every` events, and only once the events
    /// since the last snapshot are at least as large as it. A snapshot
    /// costs the size of the state, so a large state (a queue with
    /// thousands of claims) is written after proportionally more events:
    /// the cost per event stays constant instead of growing with the state,
    /// and a recovery still reads at most about twice a snapshot's bytes.
    fn snapshot_due(&self, st: &mut EntityState<E>) -> Option<Snapshot> {
        let every = st.shared.rt.snapshot_every;
        if every == 0 || st.seq - st.last_snapshot < every || st.tail_bytes < st.snapshot_bytes {
            return None;
        }
        // About the last snapshot and the events since (capped: an event
        // need not grow the state).
        let estimate = st.snapshot_bytes.saturating_add(st.tail_bytes);
        let capacity = estimate.min(MAX_SNAPSHOT_PREALLOCATION) as usize + 256;
        match codec::encode_sized(E::VERSION, &st.state, capacity) {
            Ok(payload) => {
                st.last_snapshot = st.seq;
                st.snapshot_bytes = payload.len() as u64;
                st.tail_bytes = 0;
                st.shared
                    .rt
                    .metrics
                    .entity_snapshots
                    .get_or_create(&KindLabels { kind: E::KIND })
                    .inc();
                Some(Snapshot {
                    seq: st.seq,
                    payload,
                })
            }
            Err(e) => {
                tracing::warn!(stream = %st.stream, error = %e, "snapshot not encoded");
                None
            }
        }
    }
}

impl<E: Entity> Actor for EntityActor<E> {
    type Msg = EntityMsg<E>;
    type State = EntityState<E>;
    type Arguments = EntityArgs<E>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Activation = fence, then recover: what is read after the fence is
        // final (no stale owner can append behind it).
        if let Some(fence) = args.fence {
            let fenced = args
                .shared
                .rt
                .store
                .fence_stream(&stream_id::<E>(&args.id), fence)
                .await;
            if let Err(e) = fenced {
                if let (StoreError::Fenced { .. }, Some(c)) = (&e, &args.shared.rt.cluster) {
                    c.lost(fence);
                }
                return Err(e.into());
            }
        }
        let Recovered {
            seq,
            state,
            snapshot_seq,
            snapshot_bytes,
            tail_bytes,
        } = recover::<E>(args.shared.rt.store.as_ref(), &args.id, true).await?;
        args.shared
            .rt
            .metrics
            .actors_live
            .get_or_create(&KindLabels { kind: E::KIND })
            .inc();
        let stream = stream_id::<E>(&args.id);
        let inflight = args.inflight.clone();
        let (completions, rx) = mpsc::channel(MAX_INFLIGHT);
        tokio::spawn(complete(
            rx,
            args.shared.clone(),
            (args.id.clone(), stream.clone()),
            inflight.clone(),
            myself,
        ));
        Ok(EntityState {
            stream,
            inflight,
            completions,
            id: args.id,
            seq,
            state,
            // A long replay is snapshotted at the next decision, not only
            // after `snapshot_every` more events.
            last_snapshot: snapshot_seq,
            snapshot_bytes,
            tail_bytes,
            last_active: Instant::now(),
            shared: args.shared,
            slot: args.slot,
            pending: args.pending,
            fence: args.fence,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let period = (st.shared.rt.idle_after / 4).max(std::time::Duration::from_millis(10));
        myself.send_interval(period, || EntityMsg::IdleCheck);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EntityMsg::Command(cmd, reply, span) => {
                st.last_active = Instant::now();
                let result =
                    tracing::Instrument::instrument(self.handle_command(st, cmd, reply), span)
                        .await;
                st.pending.fetch_sub(1, Ordering::AcqRel);
                result
            }
            EntityMsg::Poisoned(why) => Err(why.into()),
            EntityMsg::Inspect(reply) => {
                let _ = reply.send((st.seq, st.state.clone()));
                Ok(())
            }
            EntityMsg::IdleCheck => {
                if st.last_active.elapsed() >= st.shared.rt.idle_after
                    && st.inflight.load(Ordering::Acquire) == 0
                    && st.shared.try_retire(&st.id, &st.slot, &st.pending)
                {
                    st.shared
                        .rt
                        .metrics
                        .actor_passivations
                        .get_or_create(&KindLabels { kind: E::KIND })
                        .inc();
                    myself.stop(Some("passivated".into()));
                }
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        st.shared
            .rt
            .metrics
            .actors_live
            .get_or_create(&KindLabels { kind: E::KIND })
            .dec();
        Ok(())
    }
}
