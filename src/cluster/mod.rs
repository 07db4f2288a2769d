//! Cluster mode: several Surge nodes on one shared store (PostgreSQL),
//! exactly one fenced owner per entity.
//!
//! - **Placement**: an entity's stream lives in one of a fixed number of
//!   shards (`shard_of`, xxHash3 of the stream id: stable across builds and
//!   machines). The node a shard *should* live on is chosen by rendezvous
//!   hashing over the live members (`owner_of`): when a member joins or
//!   leaves, only the shards it wins or held move.
//! - **Membership** is the store's `members` table: each node heartbeats
//!   every round; a member silent for a lease TTL is no longer placed
//!   anything (no gossip protocol of our own).
//! - **Ownership**: a node serves a shard only while it holds the shard's
//!   lease in the store (`store::lease`). Every round it renews what it
//!   holds, releases at most `shards / 8` shards that now belong elsewhere
//!   (after stopping their actors, so their appends are flushed first), and
//!   takes the free or expired shards that belong to it, each under a new
//!   epoch. Every append names the epoch (`AppendRequest::fence`) and the
//!   store refuses a stale one: a paused or partitioned node cannot write
//!   once its lease was taken over, whatever it believes.
//! - **Routing** (`Route`): a command for an entity of a shard held here
//!   goes to the local actor; one held elsewhere is forwarded to its owner
//!   over the inter-node channel (`wire`); a shard held by nobody yet is
//!   retried with bounded back-off until the caller's deadline.

pub mod relay;
pub mod tls;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use twox_hash::XxHash3_64;

use crate::metrics::Metrics;
use crate::store::lease::{Coordination, Lease, Member};
use crate::store::{Fence, Store, StoreError};

/// The shard of a stream: stable across processes, builds and machines.
pub fn shard_of(stream: &str, shards: u32) -> u32 {
    (XxHash3_64::oneshot(stream.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// The node a shard belongs on among `nodes`: the one with the highest
/// hash of (shard, node) — rendezvous hashing. Adding a node moves only the
/// shards it wins; removing one moves only the shards it held.
pub fn owner_of<'a>(shard: u32, nodes: &[&'a str]) -> Option<&'a str> {
    nodes
        .iter()
        .max_by_key(|n| {
            (
                XxHash3_64::oneshot_with_seed(u64::from(shard), n.as_bytes()),
                **n,
            )
        })
        .copied()
}

/// How a node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster and stable across restarts
    /// (a restarted node takes its own leases back at once).
    pub node: String,
    /// Where other nodes reach this node's inter-node listener.
    pub advertise: String,
    /// The shard count this node is configured with; must match the
    /// cluster's (fixed by its first node).
    pub shards: u32,
    /// How long a lease lasts unless renewed.
    pub lease_ttl: Duration,
    /// How often leases are renewed and placement reconsidered.
    pub renew_every: Duration,
    /// Shared by every node (derived from the JWT secret): the inter-node
    /// channel admits only peers that prove they know it.
    pub secret: Vec<u8>,
    /// TLS (or, for development, plain TCP) under the handshake.
    pub transport: tls::Transport,
}

/// Where a command for an entity goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node holds the shard under this epoch.
    Local(Fence),
    /// Another node holds it; this is its inter-node address.
    Remote(String),
    /// Nobody holds it now (a handoff or a failover in progress).
    Unknown,
}

/// Something holding entity actors: told to stop every actor of some
/// shards (and wait for their appends) before this node gives them up.
#[async_trait]
pub trait ShardHost: Send + Sync {
    async fn evict(&self, shards: &HashSet<u32>);
}

/// Serves forwarded commands for one entity kind: decodes the command,
/// runs it on the local actor, encodes the reply.
#[async_trait]
pub trait RemoteHandler: Send + Sync {
    async fn handle(&self, entity: &str, body: &[u8], budget: Duration) -> wire::Outcome;
}

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    /// Local deadline: the lease's TTL counted from before it was asked
    /// for or renewed, less a margin for clock rate differences.
    until: Instant,
}

#[derive(Debug, Default)]
struct View {
    /// Per shard: its holder as last read from the store.
    owners: Vec<Option<String>>,
    epochs: Vec<u64>,
    /// Inter-node address of each member.
    addrs: HashMap<String, String>,
    members: Vec<Member>,
    /// The members serving (heartbeating, not draining) at the last round.
    serving: Vec<String>,
    held: HashMap<u32, Held>,
}

/// Which node runs the background work that belongs to an entity (its
/// timers, its queue work, a mail): the owner of its shard, so each runs
/// on one node, and after a handoff on the new owner. On a single node,
/// this node.
#[derive(Clone, Default)]
pub struct Duty(Option<Arc<Cluster>>);

impl Duty {
    pub fn new(cluster: Option<Arc<Cluster>>) -> Duty {
        Duty(cluster)
    }

    /// Whether this node runs the work of `stream`.
    pub fn mine(&self, stream: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|c| matches!(c.route(stream), Route::Local(_)))
    }

    /// Whether this node runs the cluster-wide chores (expiring old
    /// tracks): the holder of shard 0.
    pub fn chores(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|c| matches!(c.route_shard(0), Route::Local(_)))
    }
}

/// A cluster status report (`surge cluster status`, `/metrics`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub node: String,
    pub shards: u32,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberStatus {
    pub node: String,
    pub addr: String,
    pub draining: bool,
    pub silent_ms: u64,
    /// Shards it holds now, and the highest epoch among them.
    pub shards: usize,
    pub max_epoch: u64,
}

/// This node's part in the cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    view: RwLock<View>,
    hosts: Mutex<Vec<Arc<dyn ShardHost>>>,
    handlers: dashmap::DashMap<String, Arc<dyn RemoteHandler>>,
    peers: wire::Peers,
    draining: AtomicBool,
    ready: AtomicBool,
    /// Counts members that stopped heartbeating while serving (`departed`).
    departures: tokio::sync::watch::Sender<u64>,
}

/// Why a node cannot join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cluster mode needs a shared store that fences appends (postgres, or scylla with scylla_lwt); this one cannot")]
    Unsupported,
    #[error("the cluster was created with {fixed} shards; this node is configured with {configured} (the count is fixed for the cluster's life)")]
    Shards { fixed: u32, configured: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Cluster {
    /// Checks the store can coordinate and the shard count matches.
    pub async fn new(
        cfg: ClusterConfig,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, JoinError> {
        let coord = store.coordination().ok_or(JoinError::Unsupported)?;
        let fixed = coord.init_shards(cfg.shards).await?;
        if fixed != cfg.shards {
            return Err(JoinError::Shards {
                fixed,
                configured: cfg.shards,
            });
        }
        let n = cfg.shards as usize;
        let peers = wire::Peers::new(cfg.node.clone(), cfg.secret.clone(), cfg.transport.clone());
        Ok(Arc::new(Cluster {
            view: RwLock::new(View {
                owners: vec![None; n],
                epochs: vec![0; n],
                ..View::default()
            }),
            cfg,
            store,
            metrics,
            hosts: Mutex::new(Vec::new()),
            handlers: dashmap::DashMap::new(),
            peers,
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            departures: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// Changes each time a member is seen to have stopped heartbeating
    /// while it served: whatever it committed last may never have been
    /// published (a `kill -9` between its commit and its publish), so the
    /// live relay has every watched topic checked against the journal.
    pub fn departures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.departures.subscribe()
    }

    /// How the inter-node channel's connections are secured.
    pub fn transport(&self) -> &tls::Transport {
        &self.cfg.transport
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    pub fn shards(&self) -> u32 {
        self.cfg.shards
    }

    pub fn renew_every(&self) -> Duration {
        self.cfg.renew_every
    }

    /// The deadline of a forwarded call and of handshakes.
    pub fn peers(&self) -> &wire::Peers {
        &self.peers
    }

    fn coord(&self) -> &dyn Coordination {
        self.store
            .coordination()
            .expect("checked when the cluster was joined")
    }

    /// Registers the actors of one entity kind: evicted on shard loss,
    /// reachable by forwarded commands.
    pub fn register(&self, kind: &str, host: Arc<dyn ShardHost>, handler: Arc<dyn RemoteHandler>) {
        self.hosts.lock().expect("hosts").push(host);
        self.handlers.insert(kind.to_owned(), handler);
    }

    pub(crate) fn handler(&self, kind: &str) -> Option<Arc<dyn RemoteHandler>> {
        self.handlers.get(kind).map(|h| h.clone())
    }

    /// Where a command for `stream` goes now.
    pub fn route(&self, stream: &str) -> Route {
        self.route_shard(shard_of(stream, self.cfg.shards))
    }

    pub fn route_shard(&self, shard: u32) -> Route {
        let v = self.view.read().expect("view");
        if let Some(h) = v.held.get(&shard) {
            if h.until > Instant::now() {
                return Route::Local(Fence {
                    shard,
                    epoch: h.epoch,
                });
            }
        }
        match v.owners.get(shard as usize).and_then(Option::as_ref) {
            Some(owner) if owner != &self.cfg.node => v
                .addrs
                .get(owner)
                .map_or(Route::Unknown, |a| Route::Remote(a.clone())),
            _ => Route::Unknown,
        }
    }

    /// The store refused an append under `fence`: the shard was taken
    /// over. Forget it now rather than at the next round.
    pub fn lost(&self, fence: Fence) {
        let mut v = self.view.write().expect("view");
        if v.held
            .get(&fence.shard)
            .is_some_and(|h| h.epoch == fence.epoch)
        {
            v.held.remove(&fence.shard);
            self.metrics.cluster_leases_lost.inc();
            tracing::warn!(
                shard = fence.shard,
                epoch = fence.epoch,
                "lease lost (append fenced)"
            );
        }
    }

    /// Whether this node holds every shard placement gives it.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Shards held now.
    pub fn held(&self) -> Vec<Fence> {
        let v = self.view.read().expect("view");
        let mut held: Vec<Fence> = v
            .held
            .iter()
            .map(|(s, h)| Fence {
                shard: *s,
                epoch: h.epoch,
            })
            .collect();
        held.sort_by_key(|f| f.shard);
        held
    }

    async fn evict(&self, shards: &HashSet<u32>) {
        if shards.is_empty() {
            return;
        }
        let hosts: Vec<Arc<dyn ShardHost>> = self.hosts.lock().expect("hosts").clone();
        futures_util::future::join_all(hosts.iter().map(|h| h.evict(shards))).await;
    }

    fn margin(&self) -> Duration {
        self.cfg.lease_ttl / 10
    }

    /// One round: heartbeat, renew, hand over, take over, refresh the view.
    pub async fn round(&self) -> Result<(), StoreError> {
        let me = self.cfg.node.as_str();
        let ttl = self.cfg.lease_ttl;
        // Leases past their local deadline are gone, whatever the store says.
        let expired: HashSet<u32> = {
            let mut v = self.view.write().expect("view");
            let now = Instant::now();
            let gone: HashSet<u32> = v
                .held
                .iter()
                .filter(|(_, h)| h.until <= now)
                .map(|(s, _)| *s)
                .collect();
            v.held.retain(|s, _| !gone.contains(s));
            gone
        };
        if !expired.is_empty() {
            self.metrics
                .cluster_leases_lost
                .inc_by(expired.len() as u64);
            tracing::warn!(shards = expired.len(), "leases expired before renewal");
            self.evict(&expired).await;
        }

        let draining = self.is_draining();
        let coord = self.coord();
        let t0 = Instant::now();
        coord.heartbeat(me, &self.cfg.advertise, draining).await?;
        let held = self.held();
        let renewed: HashSet<u32> = coord.renew(me, &held, ttl).await?.into_iter().collect();
        let lost: HashSet<u32> = {
            let mut v = self.view.write().expect("view");
            let until = t0 + ttl - self.margin();
            let mut lost = HashSet::new();
            for f in &held {
                if renewed.contains(&f.shard) {
                    if let Some(h) = v.held.get_mut(&f.shard) {
                        h.until = until;
                    }
                } else if v.held.remove(&f.shard).is_some() {
                    lost.insert(f.shard);
                }
            }
            lost
        };
        if !lost.is_empty() {
            self.metrics.cluster_leases_lost.inc_by(lost.len() as u64);
            tracing::warn!(shards = lost.len(), "leases taken over");
            self.evict(&lost).await;
        }

        let members = coord.members().await?;
        let leases = coord.leases().await?;
        let live: Vec<&str> = members
            .iter()
            .filter(|m| m.silent_for < ttl && !m.draining)
            .map(|m| m.node.as_str())
            .collect();
        let desired: Vec<Option<&str>> = (0..self.cfg.shards).map(|s| owner_of(s, &live)).collect();

        // Hand over a bounded number of the shards that now belong elsewhere.
        let per_round = (self.cfg.shards as usize / 8).max(1);
        let give: Vec<Fence> = self
            .held()
            .into_iter()
            // (Only to a live node: with nobody to take a shard, keep
            // serving it until the final drain.)
            .filter(|f| desired[f.shard as usize].is_some_and(|d| d != me))
            .take(per_round)
            .collect();
        if !give.is_empty() {
            let set: HashSet<u32> = give.iter().map(|f| f.shard).collect();
            {
                // No new command is routed here for them from now on.
                let mut v = self.view.write().expect("view");
                v.held.retain(|s, _| !set.contains(s));
            }
            self.evict(&set).await;
            coord.release(me, &give).await?;
            self.metrics
                .cluster_shards_handed_over
                .inc_by(give.len() as u64);
            tracing::info!(shards = give.len(), "handed shards over");
        }

        // Take what belongs here and is free (or recorded under our name).
        let want: Vec<u32> = if draining {
            Vec::new()
        } else {
            let v = self.view.read().expect("view");
            leases
                .iter()
                .filter(|l| desired[l.shard as usize] == Some(me) && !v.held.contains_key(&l.shard))
                .filter(|l| l.holder().is_none_or(|h| h == me))
                .map(|l| l.shard)
                .collect()
        };
        let t1 = Instant::now();
        let taken = coord.acquire(me, &want, ttl).await?;
        if !taken.is_empty() {
            self.metrics.cluster_shards_taken.inc_by(taken.len() as u64);
            tracing::info!(shards = taken.len(), "took shards over");
        }

        let mut v = self.view.write().expect("view");
        let until = t1 + ttl - self.margin();
        for f in &taken {
            v.held.insert(
                f.shard,
                Held {
                    epoch: f.epoch,
                    until,
                },
            );
        }
        apply_leases(&mut v, &leases, me);
        for f in &taken {
            v.owners[f.shard as usize] = Some(me.to_owned());
            v.epochs[f.shard as usize] = f.epoch;
        }
        v.addrs = members
            .iter()
            .map(|m| (m.node.clone(), m.addr.clone()))
            .collect();
        v.members = members.clone();
        let gone = departed(&v.serving, &members, ttl, me);
        if !gone.is_empty() {
            tracing::warn!(nodes = ?gone, "members stopped heartbeating without draining");
            self.metrics
                .cluster_members_departed
                .inc_by(gone.len() as u64);
            self.departures.send_modify(|n| *n += gone.len() as u64);
        }
        v.serving = live.iter().map(|n| (*n).to_owned()).collect();
        let ready = !draining
            && desired
                .iter()
                .enumerate()
                .all(|(s, d)| *d != Some(me) || v.held.contains_key(&(s as u32)));
        self.ready.store(ready, Ordering::Release);
        self.metrics.cluster_shards_held.set(v.held.len() as i64);
        self.metrics.cluster_members_live.set(live.len() as i64);
        Ok(())
    }

    /// Runs rounds every `renew_every` until `stop` turns true (`drain`
    /// then hands the rest over).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.round().await {
                self.metrics.cluster_rounds_failed.inc();
                tracing::warn!(error = %e, "cluster round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.renew_every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }

    /// From now on this node takes no shard, is not ready, and (heartbeat
    /// `draining`) is placed nothing: its rounds hand its shards over a few
    /// at a time while it finishes its requests.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
    }

    /// Stops taking shards and hands every held one over: their actors are
    /// stopped (appends flushed) and their leases released, so the other
    /// nodes take them at once rather than after a TTL. Then leaves.
    pub async fn drain(&self) {
        self.begin_drain();
        let held = self.held();
        let set: HashSet<u32> = held.iter().map(|f| f.shard).collect();
        {
            let mut v = self.view.write().expect("view");
            v.held.clear();
        }
        self.evict(&set).await;
        let coord = self.coord();
        if let Err(e) = coord
            .heartbeat(&self.cfg.node, &self.cfg.advertise, true)
            .await
        {
            tracing::warn!(error = %e, "drain: heartbeat failed");
        }
        if let Err(e) = coord.release(&self.cfg.node, &held).await {
            tracing::warn!(error = %e, "drain: leases not released; they expire");
        }
        if let Err(e) = coord.leave(&self.cfg.node).await {
            tracing::warn!(error = %e, "drain: member row not removed; it goes silent");
        }
        tracing::info!(shards = held.len(), "drained");
    }

    /// Members and what each holds, as this node last read them.
    pub fn status(&self) -> Status {
        let v = self.view.read().expect("view");
        status_of(
            &self.cfg.node,
            self.cfg.shards,
            &v.members,
            &v.owners,
            &v.epochs,
        )
    }
}

/// The members that served at the last round (`before`) and are now
/// silent for the lease TTL, or gone, without having drained (a drain
/// finishes its publications before it leaves).
fn departed(before: &[String], members: &[Member], ttl: Duration, me: &str) -> Vec<String> {
    before
        .iter()
        .filter(|n| n.as_str() != me)
        .filter(|n| match members.iter().find(|m| &m.node == *n) {
            Some(m) => m.silent_for >= ttl && !m.draining,
            None => true,
        })
        .cloned()
        .collect()
}

fn apply_leases(v: &mut View, leases: &[Lease], me: &str) {
    for l in leases {
        let Some(slot) = v.owners.get_mut(l.shard as usize) else {
            continue;
        };
        // Our own shards are what `held` says; a lease still recorded
        // under our name but not held (lost, handed over) is nobody's.
        *slot = match l.holder() {
            Some(h) if h == me => v.held.contains_key(&l.shard).then(|| me.to_owned()),
            other => other.map(str::to_owned),
        };
        v.epochs[l.shard as usize] = l.epoch;
    }
}

/// A status report from a member list and the lease table.
pub fn status_of(
    node: &str,
    shards: u32,
    members: &[Member],
    owners: &[Option<String>],
    epochs: &[u64],
) -> Status {
    Status {
        node: node.to_owned(),
        shards,
        members: members
            .iter()
            .map(|m| {
                let mine: Vec<usize> = owners
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.as_deref() == Some(m.node.as_str()))
                    .map(|(s, _)| s)
                    .collect();
                MemberStatus {
                    node: m.node.clone(),
                    addr: m.addr.clone(),
                    draining: m.draining,
                    silent_ms: m.silent_for.as_millis() as u64,
                    shards: mine.len(),
                    max_epoch: mine.iter().map(|s| epochs[*s]).max().unwrap_or(0),
                }
            })
            .collect(),
    }
}

/// `surge cluster status`: members, shards per node and epochs as the
/// store records them, and whether Redis answers — one text report.
pub async fn status_report(
    store: &dyn Store,
    redis_url: Option<&str>,
    lease_ttl: Duration,
) -> Result<String, StoreError> {
    use std::fmt::Write as _;
    let coord = store.coordination().ok_or_else(|| {
        StoreError::Backend(
            "this store has no cluster (cluster mode needs store = postgres, or scylla with scylla_lwt)".into(),
        )
    })?;
    let members = coord.members().await?;
    let leases = coord.leases().await?;
    let owners: Vec<Option<String>> = leases
        .iter()
        .map(|l| l.holder().map(str::to_owned))
        .collect();
    let epochs: Vec<u64> = leases.iter().map(|l| l.epoch).collect();
    let status = status_of("", leases.len() as u32, &members, &owners, &epochs);
    let live = members
        .iter()
        .filter(|m| m.silent_for < lease_ttl && !m.draining)
        .count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster: {} shards, {} members ({live} live)",
        leases.len(),
        members.len()
    );
    let _ = writeln!(
        out,
        "{:<24} {:<22} {:<9} {:>6} {:>9} {:>10}",
        "NODE", "ADDRESS", "STATE", "SHARDS", "MAX EPOCH", "HEARTBEAT"
    );
    for m in &status.members {
        let state = if m.draining {
            "draining"
        } else if Duration::from_millis(m.silent_ms) >= lease_ttl {
            "silent"
        } else {
            "live"
        };
        let _ = writeln!(
            out,
            "{:<24} {:<22} {:<9} {:>6} {:>9} {:>8.1} s",
            m.node,
            m.addr,
            state,
            m.shards,
            m.max_epoch,
            m.silent_ms as f64 / 1000.0
        );
    }
    let unheld = owners.iter().filter(|o| o.is_none()).count();
    let _ = writeln!(out, "shards held by nobody now: {unheld}");
    let _ = match redis_url {
        None => writeln!(out, "redis: not configured"),
        Some(url) => writeln!(out, "redis: {}", redis_state(url).await),
    };
    Ok(out)
}

/// Whether Redis at `url` answers a PING within two seconds.
async fn redis_state(url: &str) -> String {
    use fred::prelude::*;
    let config = match Config::from_url(url) {
        Ok(c) => c,
        Err(e) => return format!("{url}: invalid ({e})"),
    };
    let client = match Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => return format!("{url}: {e}"),
    };
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(2), async {
        client.init().await?;
        client.ping::<String>(None).await
    })
    .await;
    let _ = client.quit().await;
    match answer {
        Ok(Ok(pong)) => format!(
            "{url}: reachable ({pong} in {:.1} ms)",
            started.elapsed().as_secs_f64() * 1000.0
        ),
        Ok(Err(e)) => format!("{url}: unreachable ({e})"),
        Err(_) => format!("{url}: unreachable (no answer within 2 s)"),
    }
}

pub use crate::config::advertised;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_member_silent_past_the_ttl_without_draining_has_departed() {
        let ttl = Duration::from_secs(2);
        let member = |node: &str, silent_ms: u64, draining: bool| Member {
            node: node.into(),
            addr: String::new(),
            draining,
            silent_for: Duration::from_millis(silent_ms),
        };
        let before: Vec<String> = ["me", "a", "b", "c", "d"].map(String::from).into();
        let now = [
            member("me", 5_000, false), // this node never counts itself
            member("a", 100, false),    // still heartbeating
            member("b", 2_000, false),  // silent for the TTL: killed or cut off
            member("c", 9_000, true),   // drained: it published before leaving
        ];
        // "d" has no row any more: gone too.
        assert_eq!(departed(&before, &now, ttl, "me"), ["b", "d"]);
        // Only members that served before: a newcomer's silence is no
        // departure, and nothing departs twice.
        assert!(departed(&[], &now, ttl, "me").is_empty());
        assert!(departed(&["a".into()], &now, ttl, "me").is_empty());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change of hash would move every entity.
        assert_eq!(shard_of("order:42", 256), 197);
        assert_eq!(shard_of("user:7", 4096), 1716);
        let mut counts = vec![0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("cart:{i}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn rendezvous_moves_only_the_shards_a_joining_node_wins() {
        let before: Vec<&str> = vec!["a", "b", "c"];
        let after: Vec<&str> = vec!["a", "b", "c", "d"];
        let mut moved = 0;
        for s in 0..256 {
            let (x, y) = (owner_of(s, &before).unwrap(), owner_of(s, &after).unwrap());
            if x != y {
                assert_eq!(y, "d", "shard {s} moved between old members");
                moved += 1;
            }
        }
        // About a quarter moves to the new node.
        assert!((40..90).contains(&moved), "{moved}");
        // Order of the member list does not matter.
        assert_eq!(owner_of(7, &["c", "a", "b"]), owner_of(7, &["a", "b", "c"]));
        assert_eq!(owner_of(7, &[]), None);
    }

    #[test]
    fn an_unspecified_listen_address_needs_an_advertised_one() {
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(advertised(any, None).is_err());
        assert_eq!(
            advertised(any, Some("10.0.0.5:7070")).unwrap(),
            "10.0.0.5:7070"
        );
        let lo: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(advertised(lo, None).unwrap(), "127.0.0.1:7070");
    }
}
