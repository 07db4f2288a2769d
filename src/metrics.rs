//! Prometheus metrics (prometheus-client), one registry per running app so
//! that several apps in one test process never mix their numbers.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route template (`/api/v1/products/{id}`), never the raw
    /// path, so the label set stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: HistogramFamily<HttpLabels>,
    /// Requests being handled right now (routed ones).
    pub http_in_flight: Gauge,
    pub actors_live: Family<KindLabels, Gauge>,
    pub actor_restarts: Family<KindLabels, Counter>,
    pub actor_passivations: Family<KindLabels, Counter>,
    /// Snapshots encoded by entity actors (saved once their events are durable).
    pub entity_snapshots: Family<KindLabels, Counter>,
    /// Appends per durable commit; a mean above 1 is group commit at work.
    pub journal_batch_size: Histogram,
    pub journal_commit_seconds: Histogram,
    pub journal_appends: Counter,
    pub journal_commits: Counter,
    /// Claims decided by enrollment queues, refusals included (not
    /// idempotent replays).
    pub queue_claims: Counter,
    /// Durable journal commits per decided claim since start (everything
    /// committed, notifications included): below 1 is group commit
    /// absorbing a burst.
    pub journal_commits_per_claim: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Cluster mode: commands sent to the node owning their entity.
    pub forwarded: Family<KindLabels, Counter>,
    /// Cluster mode: shards this node holds, live members it sees, leases
    /// it lost (taken over or expired), shards it handed over and took.
    pub cluster_shards_held: Gauge,
    pub cluster_members_live: Gauge,
    pub cluster_leases_lost: Counter,
    pub cluster_shards_handed_over: Counter,
    pub cluster_shards_taken: Counter,
    pub cluster_rounds_failed: Counter,
    /// Cluster mode: members seen to stop heartbeating while they served
    /// (not draining) — each has every watched topic here checked.
    pub cluster_members_departed: Counter,
    /// Cluster mode, live events over Redis: pipelines sent, pipelines
    /// that failed, messages dropped at the full queue, reconnects.
    pub relay_published: Counter,
    pub relay_failed: Counter,
    pub relay_dropped: Counter,
    pub relay_reconnects: Counter,
    /// Behaviour signals not recorded because this node's buffer was full
    /// (`view`, `order`: a product's view or checkout; `basket`: a
    /// checkout for bought together; `activity`: a product's trending
    /// count in a window).
    pub behavior_dropped: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("surge");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
            http_in_flight: Gauge::default(),
            actors_live: Family::default(),
            actor_restarts: Family::default(),
            actor_passivations: Family::default(),
            entity_snapshots: Family::default(),
            journal_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            journal_commit_seconds: latency_histogram(),
            journal_appends: Counter::default(),
            journal_commits: Counter::default(),
            queue_claims: Counter::default(),
            journal_commits_per_claim: Gauge::default(),
            forwarded: Family::default(),
            behavior_dropped: Family::default(),
            cluster_shards_held: Gauge::default(),
            cluster_members_live: Gauge::default(),
            cluster_leases_lost: Counter::default(),
            cluster_shards_handed_over: Counter::default(),
            cluster_shards_taken: Counter::default(),
            cluster_rounds_failed: Counter::default(),
            cluster_members_departed: Counter::default(),
            relay_published: Counter::default(),
            relay_failed: Counter::default(),
            relay_dropped: Counter::default(),
            relay_reconnects: Counter::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            m.http_latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled",
            m.http_in_flight.clone(),
        );
        registry.register(
            "actors_live",
            "Live entity actors by kind",
            m.actors_live.clone(),
        );
        registry.register(
            "actor_restarts",
            "Entity actors restarted by their supervisor after a crash",
            m.actor_restarts.clone(),
        );
        registry.register(
            "entity_snapshots",
            "Snapshots written by entity actors, by kind",
            m.entity_snapshots.clone(),
        );
        registry.register(
            "actor_passivations",
            "Entity actors stopped after being idle",
            m.actor_passivations.clone(),
        );
        registry.register(
            "journal_batch_size",
            "Appends committed together in one durable journal transaction",
            m.journal_batch_size.clone(),
        );
        registry.register(
            "journal_commit_seconds",
            "Latency of one durable journal commit",
            m.journal_commit_seconds.clone(),
        );
        registry.register(
            "journal_appends",
            "Appends acknowledged by the journal",
            m.journal_appends.clone(),
        );
        registry.register(
            "journal_commits",
            "Durable journal commits",
            m.journal_commits.clone(),
        );
        registry.register(
            "queue_claims",
            "Claims decided by enrollment queues (flash sales, courses), refusals included",
            m.queue_claims.clone(),
        );
        registry.register(
            "journal_commits_per_claim",
            "Durable journal commits per decided claim since start (group commit keeps it well below 1 in a burst)",
            m.journal_commits_per_claim.clone(),
        );
        registry.register(
            "behavior_dropped",
            "Behaviour signals not recorded because the node's buffer was full, by kind",
            m.behavior_dropped.clone(),
        );
        registry.register(
            "forwarded_commands",
            "Cluster mode: commands forwarded to the node owning their entity, by kind",
            m.forwarded.clone(),
        );
        registry.register(
            "cluster_shards_held",
            "Cluster mode: shards this node holds a lease on",
            m.cluster_shards_held.clone(),
        );
        registry.register(
            "cluster_members_live",
            "Cluster mode: members with a recent heartbeat, this node included",
            m.cluster_members_live.clone(),
        );
        registry.register(
            "cluster_leases_lost",
            "Cluster mode: shard leases lost (taken over, or expired before renewal)",
            m.cluster_leases_lost.clone(),
        );
        registry.register(
            "cluster_shards_handed_over",
            "Cluster mode: shards released to the node placement gives them to",
            m.cluster_shards_handed_over.clone(),
        );
        registry.register(
            "cluster_shards_taken",
            "Cluster mode: shard leases acquired",
            m.cluster_shards_taken.clone(),
        );
        registry.register(
            "cluster_rounds_failed",
            "Cluster mode: lease rounds that failed (store unreachable)",
            m.cluster_rounds_failed.clone(),
        );
        registry.register(
            "cluster_members_departed",
            "Cluster mode: members that stopped heartbeating without draining (killed, paused, cut off)",
            m.cluster_members_departed.clone(),
        );
        registry.register(
            "relay_pipelines",
            "Cluster mode: pipelines of live events sent to Redis",
            m.relay_published.clone(),
        );
        registry.register(
            "relay_pipelines_failed",
            "Cluster mode: pipelines of live events Redis did not take (subscribers catch up from the journal)",
            m.relay_failed.clone(),
        );
        registry.register(
            "relay_dropped",
            "Cluster mode: live events dropped at the full Redis queue (subscribers catch up from the journal)",
            m.relay_dropped.clone(),
        );
        registry.register(
            "relay_reconnects",
            "Cluster mode: reconnections to Redis (every watched topic is checked against the journal)",
            m.relay_reconnects.clone(),
        );
        *m.registry.lock().expect("metrics registry") = registry;
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
