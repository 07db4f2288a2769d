//! The registry: the only way to reach an entity. It hands out the one live
//! actor of an entity id, spawning and recovering it on first use, and owns
//! the supervisor that restarts a crashed entity actor from the journal.
//!
//! One writer per entity is kept three ways: a per-id slot whose async mutex
//! serialises spawning; passivation that retires a slot only when no command
//! is queued for it; and ractor's global name registry, which refuses a
//! second live actor under the same `{instance}/{kind}/{id}` name.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use super::entity::{stream_id, CallError, Entity, EntityActor, EntityArgs, EntityMsg, Reply};
use super::Runtime;
use crate::cluster::wire::{Outcome, SendError};
use crate::cluster::{shard_of, RemoteHandler, Route, ShardHost};
use crate::metrics::KindLabels;
use crate::store::{Fence, Seq, StoreError};

/// A live actor, the count of commands sent to it but not yet handled, its
/// appends not yet durable, and the shard lease it writes under.
pub(crate) struct Live<E: Entity> {
    actor: ActorRef<EntityMsg<E>>,
    pending: Arc<AtomicUsize>,
    inflight: Arc<AtomicUsize>,
    fence: Option<Fence>,
}

impl<E: Entity> Clone for Live<E> {
    fn clone(&self) -> Self {
        Live {
            actor: self.actor.clone(),
            pending: self.pending.clone(),
            inflight: self.inflight.clone(),
            fence: self.fence,
        }
    }
}

struct SlotState<E: Entity> {
    live: Option<Live<E>>,
    /// Removed from the map by passivation; callers must fetch a new slot.
    retired: bool,
}

/// The per-entity-id cell of the registry.
pub struct Slot<E: Entity> {
    state: tokio::sync::Mutex<SlotState<E>>,
}

impl<E: Entity> Default for Slot<E> {
    fn default() -> Self {
        Slot {
            state: tokio::sync::Mutex::new(SlotState {
                live: None,
                retired: false,
            }),
        }
    }
}

/// What the registry, its supervisor and its actors share.
pub struct RegistryShared<E: Entity> {
    pub(crate) rt: Runtime,
    slots: DashMap<String, Arc<Slot<E>>>,
    supervisor: OnceLock<ActorCell>,
}

impl<E: Entity> RegistryShared<E> {
    fn actor_name(&self, id: &str) -> String {
        format!("{}/{}/{}", self.rt.instance, E::KIND, id)
    }

    /// In cluster mode, the lease this node holds the shard of `id` under;
    /// `Moved` when it holds none. `None` on a single node.
    fn fence(&self, id: &str) -> Result<Option<Fence>, CallError<E::Rejection>> {
        let Some(cluster) = &self.rt.cluster else {
            return Ok(None);
        };
        match cluster.route(&stream_id::<E>(id)) {
            Route::Local(f) => Ok(Some(f)),
            _ => Err(CallError::Moved(format!(
                "{} {id} is not served by this node now",
                E::KIND
            ))),
        }
    }

    /// Spawns and recovers the actor of `id`, under `fence` (recovery reads
    /// the journal after the lease was taken, so what it reads is final).
    /// Waits out a previous actor of the same id still finishing its stop.
    async fn spawn(
        self: &Arc<Self>,
        id: &str,
        slot: &Arc<Slot<E>>,
        fence: Option<Fence>,
    ) -> Result<Live<E>, CallError<E::Rejection>> {
        let supervisor = self
            .supervisor
            .get()
            .cloned()
            .ok_or_else(|| CallError::Unavailable("registry is shut down".into()))?;
        let name = self.actor_name(id);
        for _ in 0..1000 {
            let pending = Arc::new(AtomicUsize::new(0));
            let inflight = Arc::new(AtomicUsize::new(0));
            let args = EntityArgs {
                id: id.to_owned(),
                shared: self.clone(),
                slot: slot.clone(),
                pending: pending.clone(),
                inflight: inflight.clone(),
                fence,
            };
            match Actor::spawn_linked(
                Some(name.clone()),
                EntityActor::<E>::default(),
                args,
                supervisor.clone(),
            )
            .await
            {
                Ok((actor, _)) => {
                    return Ok(Live {
                        actor,
                        pending,
                        inflight,
                        fence,
                    })
                }
                Err(SpawnErr::ActorAlreadyRegistered(_)) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => {
                    return Err(CallError::Unavailable(format!(
                        "{} {id} could not be recovered: {e}",
                        E::KIND
                    )))
                }
            }
        }
        Err(CallError::Unavailable(format!(
            "{} {id}: previous actor did not stop",
            E::KIND
        )))
    }

    /// The live actor of `id`, spawned and recovered if needed, with its
    /// pending count already raised for the command about to be sent. In
    /// cluster mode `fence` is the lease the shard is held under now; an
    /// actor left from an earlier lease of the shard is replaced.
    async fn live(
        self: &Arc<Self>,
        id: &str,
        fence: Option<Fence>,
    ) -> Result<Live<E>, CallError<E::Rejection>> {
        loop {
            let slot = match self.slots.get(id) {
                Some(s) => s.clone(),
                None => {
                    if self.slots.len() >= self.rt.max_live {
                        return Err(CallError::Overloaded(format!(
                            "too many live {} entities",
                            E::KIND
                        )));
                    }
                    self.slots.entry(id.to_owned()).or_default().clone()
                }
            };
            let mut g = slot.state.lock().await;
            if g.retired {
                continue;
            }
            if let Some(stale) = g.live.as_ref().filter(|l| l.fence != fence) {
                // Its appends would be refused (its epoch is gone).
                stale
                    .actor
                    .stop(Some("shard lease renewed under a new epoch".into()));
                g.live = None;
            }
            if g.live.is_none() {
                g.live = Some(self.spawn(id, &slot, fence).await?);
            }
            let live = g.live.clone().expect("just ensured");
            if live.pending.fetch_add(1, Ordering::AcqRel) >= self.rt.max_pending {
                live.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(CallError::Overloaded(format!(
                    "{} {id} has too many commands waiting",
                    E::KIND
                )));
            }
            return Ok(live);
        }
    }

    /// Sends `cmd` to a live actor and waits for the reply.
    async fn send(&self, live: Live<E>, cmd: E::Command) -> Reply<E> {
        match live
            .actor
            .call(
                |port| EntityMsg::Command(cmd, port, tracing::Span::current()),
                Some(self.rt.call_timeout),
            )
            .await
        {
            Ok(CallResult::Success(reply)) => reply,
            Ok(CallResult::Timeout) => Err(CallError::Timeout),
            Ok(CallResult::SenderError) => Err(CallError::Unavailable(
                "the entity stopped while handling the command".into(),
            )),
            Err(e) => {
                live.pending.fetch_sub(1, Ordering::AcqRel);
                Err(CallError::Unavailable(e.to_string()))
            }
        }
    }

    /// Called by an idle actor: retires its slot if no command is queued for
    /// it and nobody holds the slot. Returns whether the actor may stop.
    pub(crate) fn try_retire(&self, id: &str, slot: &Arc<Slot<E>>, pending: &AtomicUsize) -> bool {
        let Ok(mut g) = slot.state.try_lock() else {
            return false;
        };
        if pending.load(Ordering::Acquire) != 0 {
            return false;
        }
        g.live = None;
        g.retired = true;
        drop(g);
        self.slots.remove_if(id, |_, s| Arc::ptr_eq(s, slot));
        true
    }
}

/// The supervisor of one entity kind's actors.
struct Supervisor<E: Entity>(std::marker::PhantomData<E>);

impl<E: Entity> Actor for Supervisor<E> {
    type Msg = ();
    type State = Arc<RegistryShared<E>>;
    type Arguments = Arc<RegistryShared<E>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        shared: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        shared: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        let labels = KindLabels { kind: E::KIND };
        shared.rt.metrics.actors_live.get_or_create(&labels).dec();
        shared
            .rt
            .metrics
            .actor_restarts
            .get_or_create(&labels)
            .inc();
        let prefix = shared.actor_name("");
        let Some(id) = cell
            .get_name()
            .and_then(|n| n.strip_prefix(&prefix).map(str::to_owned))
        else {
            return Ok(());
        };
        tracing::error!(kind = E::KIND, %id, error = %err, "entity actor crashed; restarting from the journal");
        let Some(slot) = shared.slots.get(&id).map(|s| s.clone()) else {
            return Ok(());
        };
        let mut g = slot.state.lock().await;
        let is_current = g
            .live
            .as_ref()
            .is_some_and(|l| l.actor.get_id() == cell.get_id());
        if is_current && !g.retired {
            g.live = None;
            // Restarted only while this node still serves its shard.
            let spawned = match shared.fence(&id) {
                Ok(fence) => shared.spawn(&id, &slot, fence).await,
                Err(e) => Err(e),
            };
            match spawned {
                Ok(live) => g.live = Some(live),
                Err(e) => {
                    tracing::error!(kind = E::KIND, %id, error = %e, "restart failed; next call retries")
                }
            }
        }
        Ok(())
    }
}

/// Hands out entity actors of kind `E`.
pub struct Registry<E: Entity> {
    shared: Arc<RegistryShared<E>>,
    supervisor: ActorRef<()>,
}

impl<E: Entity> Clone for Registry<E> {
    fn clone(&self) -> Self {
        Registry {
            shared: self.shared.clone(),
            supervisor: self.supervisor.clone(),
        }
    }
}

impl<E: Entity> Registry<E> {
    pub async fn start(rt: Runtime) -> Result<Self, SpawnErr> {
        let shared = Arc::new(RegistryShared {
            rt,
            slots: DashMap::new(),
            supervisor: OnceLock::new(),
        });
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor::<E>(std::marker::PhantomData),
            shared.clone(),
        )
        .await?;
        let _ = shared.supervisor.set(supervisor.get_cell());
        if let Some(cluster) = &shared.rt.cluster {
            let hosted = Arc::new(Hosted(Arc::downgrade(&shared)));
            cluster.register(E::KIND, hosted.clone(), hosted);
        }
        Ok(Registry { shared, supervisor })
    }

    /// Sends one command to entity `id` and waits (bounded by the call
    /// timeout) for its reply, which comes only after its events are durable.
    ///
    /// In cluster mode the command goes to the node holding the entity's
    /// shard: here, the local actor; elsewhere, forwarded (`cluster::wire`).
    /// While nobody holds the shard (a handoff, a failover) or its holder
    /// answers "moved", it is retried with bounded back-off until the call
    /// timeout; a forwarded command whose reply is lost is `Timeout` (its
    /// outcome is unknown, and a client retries with its idempotency key).
    pub async fn call(&self, id: &str, cmd: E::Command) -> Reply<E> {
        // A span per command (debug: kept only when traces are exported).
        let span = tracing::debug_span!("command", kind = E::KIND, entity = %id);
        tracing::Instrument::instrument(self.route(id, cmd), span).await
    }

    /// [`Registry::call`]'s work: the local actor, or the owning node.
    async fn route(&self, id: &str, cmd: E::Command) -> Reply<E> {
        let Some(cluster) = self.shared.rt.cluster.clone() else {
            let live = self.shared.live(id, None).await?;
            return self.shared.send(live, cmd).await;
        };
        let stream = stream_id::<E>(id);
        let deadline = Instant::now() + self.shared.rt.call_timeout;
        let mut backoff = Duration::from_millis(5);
        // Kept encoded: a command refused because the shard moved (nothing
        // written) is sent again, here or to the new owner.
        let body = rmp_serde::to_vec(&cmd)
            .map_err(|e| CallError::Unavailable(format!("command not encodable: {e}")))?;
        let mut cmd = Some(cmd);
        let mut last = String::from("no node holds its shard");
        loop {
            match cluster.route(&stream) {
                Route::Local(fence) => match self.shared.live(id, Some(fence)).await {
                    Ok(live) => {
                        let c = match cmd.take() {
                            Some(c) => c,
                            None => rmp_serde::from_slice(&body).map_err(|e| {
                                CallError::Unavailable(format!("command not decodable: {e}"))
                            })?,
                        };
                        match self.shared.send(live, c).await {
                            Err(CallError::Moved(why)) => last = why,
                            other => return other,
                        }
                    }
                    Err(CallError::Moved(why)) => last = why,
                    Err(e) => return Err(e),
                },
                Route::Remote(addr) => {
                    let budget = deadline.saturating_duration_since(Instant::now());
                    let bytes = body.clone();
                    self.shared
                        .rt
                        .metrics
                        .forwarded
                        .get_or_create(&KindLabels { kind: E::KIND })
                        .inc();
                    let span = tracing::debug_span!("forward", kind = E::KIND, to = %addr);
                    let carried = span.in_scope(crate::context::Carried::current);
                    let sent = cluster
                        .peers()
                        .call(&addr, E::KIND, id, bytes, budget, carried);
                    match tracing::Instrument::instrument(sent, span).await {
                        Ok(Outcome::Moved) => last = format!("{addr} no longer serves it"),
                        Err(SendError::NotSent(why)) => last = why,
                        Ok(outcome) => return reply_of::<E>(outcome),
                        Err(SendError::Lost(_)) => return Err(CallError::Timeout),
                    }
                }
                Route::Unknown => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Unavailable(format!(
                    "{} {id}: {last}; retry shortly",
                    E::KIND
                )));
            }
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// The live sequence number and state of `id` (spawning it if needed).
    /// Local only: in cluster mode, `Moved` unless this node serves it.
    pub async fn inspect(&self, id: &str) -> Result<(Seq, E::State), CallError<E::Rejection>> {
        let live = self.shared.live(id, self.shared.fence(id)?).await?;
        let out = live
            .actor
            .call(EntityMsg::Inspect, Some(self.shared.rt.call_timeout))
            .await;
        live.pending.fetch_sub(1, Ordering::AcqRel);
        match out {
            Ok(CallResult::Success(s)) => Ok(s),
            Ok(CallResult::Timeout) => Err(CallError::Timeout),
            _ => Err(CallError::Unavailable("the entity stopped".into())),
        }
    }

    /// The ractor actor id currently serving `id`, if one is live.
    pub async fn live_actor(&self, id: &str) -> Option<ActorCell> {
        let slot = self.shared.slots.get(id)?.clone();
        let g = slot.state.lock().await;
        g.live.as_ref().map(|l| l.actor.get_cell())
    }

    /// Whether entity `id` has ever been written: it has a live actor or a
    /// journal.
    pub async fn exists(&self, id: &str) -> Result<bool, crate::store::StoreError> {
        if self.live_actor(id).await.is_some() {
            return Ok(true);
        }
        Ok(self.shared.rt.store.head(&stream_id::<E>(id)).await? > 0)
    }

    /// Number of entity ids with a slot (live or spawning).
    pub fn live_count(&self) -> usize {
        self.shared.slots.len()
    }

    /// Stops every actor of this kind and the supervisor. In-flight commands
    /// should be drained first (the HTTP server does so on shutdown).
    pub async fn shutdown(&self) {
        self.supervisor
            .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
            .await;
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
            .await;
        self.shared.slots.clear();
    }
}

/// The reply of a forwarded command, as the caller's registry returns it.
fn reply_of<E: Entity>(outcome: Outcome) -> Reply<E> {
    match outcome {
        Outcome::Done(bytes) => {
            match rmp_serde::from_slice::<Result<E::Reply, E::Rejection>>(&bytes) {
                Ok(answer) => answer.map_err(CallError::Rejected),
                Err(e) => Err(CallError::Storage(StoreError::Backend(format!(
                    "a forwarded {} reply could not be decoded: {e}",
                    E::KIND
                )))),
            }
        }
        Outcome::Moved => Err(CallError::Moved("moved".into())),
        Outcome::Busy(m) => Err(CallError::Overloaded(m)),
        Outcome::Timeout => Err(CallError::Timeout),
        Outcome::Failed {
            transient: true,
            message,
        } => Err(CallError::Unavailable(message)),
        Outcome::Failed { message, .. } => Err(CallError::Storage(StoreError::Backend(message))),
    }
}

/// A registry as the cluster sees it: actors to evict by shard, and the
/// server side of forwarded commands. Weak, so the cluster does not keep
/// a stopped app's registries alive.
struct Hosted<E: Entity>(Weak<RegistryShared<E>>);

#[async_trait::async_trait]
impl<E: Entity> ShardHost for Hosted<E> {
    async fn evict(&self, shards: &HashSet<u32>) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let Some(n) = shared.rt.cluster.as_ref().map(|c| c.shards()) else {
            return;
        };
        let doomed: Vec<(String, Arc<Slot<E>>)> = shared
            .slots
            .iter()
            .filter(|e| shards.contains(&shard_of(&stream_id::<E>(e.key()), n)))
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        let stops = doomed.into_iter().map(|(id, slot)| {
            let shared = shared.clone();
            async move {
                let mut g = slot.state.lock().await;
                g.retired = true;
                let live = g.live.take();
                drop(g);
                shared.slots.remove_if(&id, |_, s| Arc::ptr_eq(s, &slot));
                if let Some(live) = live {
                    // Commands already queued are handled (the lease still
                    // holds), then the actor stops; then its appends land.
                    let _ = live
                        .actor
                        .drain_and_wait(Some(shared.rt.call_timeout))
                        .await;
                    let until = Instant::now() + shared.rt.call_timeout;
                    while live.inflight.load(Ordering::Acquire) > 0 && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        });
        futures_util::future::join_all(stops).await;
    }
}

#[async_trait::async_trait]
impl<E: Entity> RemoteHandler for Hosted<E> {
    async fn handle(&self, entity: &str, body: &[u8], _budget: Duration) -> Outcome {
        let Some(shared) = self.0.upgrade() else {
            return Outcome::Moved;
        };
        let fence = match shared.fence(entity) {
            Ok(f) => f,
            Err(_) => return Outcome::Moved,
        };
        let cmd: E::Command = match rmp_serde::from_slice(body) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    transient: false,
                    message: format!("a forwarded {} command could not be decoded: {e}", E::KIND),
                }
            }
        };
        let live = match shared.live(entity, fence).await {
            Ok(l) => l,
            Err(CallError::Moved(_)) => return Outcome::Moved,
            Err(e) => return outcome_of::<E>(Err(e)),
        };
        let outcome = outcome_of::<E>(shared.send(live, cmd).await);
        tracing::debug!(kind = E::KIND, %entity, outcome = outcome.label(), "served a forwarded command");
        outcome
    }
}

/// A local reply as a forwarded command's outcome.
fn outcome_of<E: Entity>(reply: Reply<E>) -> Outcome {
    let done = |answer: Result<E::Reply, E::Rejection>| match rmp_serde::to_vec(&answer) {
        Ok(bytes) => Outcome::Done(bytes),
        Err(e) => Outcome::Failed {
            transient: false,
            message: format!("a {} reply could not be encoded: {e}", E::KIND),
        },
    };
    match reply {
        Ok(r) => done(Ok(r)),
        Err(CallError::Rejected(r)) => done(Err(r)),
        Err(CallError::Timeout) => Outcome::Timeout,
        Err(CallError::Moved(_)) => Outcome::Moved,
        Err(CallError::Overloaded(m)) => Outcome::Busy(m),
        Err(CallError::Unavailable(m)) => Outcome::Failed {
            transient: true,
            message: m,
        },
        Err(CallError::Storage(StoreError::Fenced { .. })) => Outcome::Moved,
        Err(CallError::Storage(e)) => Outcome::Failed {
            transient: matches!(e, StoreError::Unavailable(_) | StoreError::Closed),
            message: e.to_string(),
        },
    }
}
