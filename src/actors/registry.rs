//! The registry: the only way to reach an entity. It hands out the one live
//! actor of an entity id, spawning and recovering it on first use, and owns
//! the supervisor that restarts a crashed entity actor from the journal.
//!
//! One writer per entity is kept three ways: a per-id slot whose async mutex
//! serialises spawning; passivation that retires a slot only when no command
//! is queued for it; and ractor's global name registry, which refuses a
//! second live actor under the same `{instance}/{kind}/{id}` name.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use super::entity::{stream_id, CallError, Entity, EntityActor, EntityArgs, EntityMsg, Reply};
use super::Runtime;
use crate::metrics::KindLabels;
use crate::store::Seq;

/// A live actor and the count of commands sent to it but not yet handled.
pub(crate) struct Live<E: Entity> {
    actor: ActorRef<EntityMsg<E>>,
    pending: Arc<AtomicUsize>,
}

impl<E: Entity> Clone for Live<E> {
    fn clone(&self) -> Self {
        Live {
            actor: self.actor.clone(),
            pending: self.pending.clone(),
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

    /// Spawns and recovers the actor of `id`. Waits out a previous actor of
    /// the same id that is still finishing its stop.
    async fn spawn(
        self: &Arc<Self>,
        id: &str,
        slot: &Arc<Slot<E>>,
    ) -> Result<Live<E>, CallError<E::Rejection>> {
        let supervisor = self
            .supervisor
            .get()
            .cloned()
            .ok_or_else(|| CallError::Unavailable("registry is shut down".into()))?;
        let name = self.actor_name(id);
        for _ in 0..1000 {
            let pending = Arc::new(AtomicUsize::new(0));
            let args = EntityArgs {
                id: id.to_owned(),
                shared: self.clone(),
                slot: slot.clone(),
                pending: pending.clone(),
            };
            match Actor::spawn_linked(
                Some(name.clone()),
                EntityActor::<E>::default(),
                args,
                supervisor.clone(),
            )
            .await
            {
                Ok((actor, _)) => return Ok(Live { actor, pending }),
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
            match shared.spawn(&id, &slot).await {
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
        Ok(Registry { shared, supervisor })
    }

    /// The live actor of `id`, spawned and recovered if needed, with its
    /// pending count already raised for the command about to be sent.
    async fn live(&self, id: &str) -> Result<Live<E>, CallError<E::Rejection>> {
        loop {
            let slot = match self.shared.slots.get(id) {
                Some(s) => s.clone(),
                None => {
                    if self.shared.slots.len() >= self.shared.rt.max_live {
                        return Err(CallError::Overloaded(format!(
                            "too many live {} entities",
                            E::KIND
                        )));
                    }
                    self.shared.slots.entry(id.to_owned()).or_default().clone()
                }
            };
            let mut g = slot.state.lock().await;
            if g.retired {
                continue;
            }
            if g.live.is_none() {
                g.live = Some(self.shared.spawn(id, &slot).await?);
            }
            let live = g.live.clone().expect("just ensured");
            if live.pending.fetch_add(1, Ordering::AcqRel) >= self.shared.rt.max_pending {
                live.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(CallError::Overloaded(format!(
                    "{} {id} has too many commands waiting",
                    E::KIND
                )));
            }
            return Ok(live);
        }
    }

    /// Sends one command to entity `id` and waits (bounded by the call
    /// timeout) for its reply, which comes only after its events are durable.
    pub async fn call(&self, id: &str, cmd: E::Command) -> Reply<E> {
        let live = self.live(id).await?;
        match live
            .actor
            .call(
                |port| EntityMsg::Command(cmd, port),
                Some(self.shared.rt.call_timeout),
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

    /// The live sequence number and state of `id` (spawning it if needed).
    pub async fn inspect(&self, id: &str) -> Result<(Seq, E::State), CallError<E::Rejection>> {
        let live = self.live(id).await?;
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
