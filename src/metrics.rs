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
    /// Open WebSocket sessions, their subscriptions, and sessions closed
    /// because the client read too slowly.
    pub ws_sessions: Gauge,
    pub ws_subscriptions: Gauge,
    pub ws_slow_closes: Counter,
    /// The mail outbox: mails due now that this node's last round found
    /// (at most a round's worth), the age of the oldest of them, mails
    /// sent, failed sends, and mails given up on (moved to `outbox_dead`).
    pub mail_due: Gauge,
    pub mail_oldest_due_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub mail_sent: Counter,
    pub mail_failures: Counter,
    pub mail_dead: Counter,
    /// How far this node's search index is behind the catalog feed.
    pub search_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The tokio runtime, sampled at each scrape.
    pub runtime_workers: Gauge,
    pub runtime_alive_tasks: Gauge,
    pub runtime_global_queue_depth: Gauge,
    pub runtime_busy_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
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
            ws_sessions: Gauge::default(),
            ws_subscriptions: Gauge::default(),
            ws_slow_closes: Counter::default(),
            mail_due: Gauge::default(),
            mail_oldest_due_seconds: Gauge::default(),
            mail_sent: Counter::default(),
            mail_failures: Counter::default(),
            mail_dead: Counter::default(),
            search_lag_seconds: Gauge::default(),
            runtime_workers: Gauge::default(),
            runtime_alive_tasks: Gauge::default(),
            runtime_global_queue_depth: Gauge::default(),
            runtime_busy_seconds: Gauge::default(),
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
        registry.register(
            "ws_sessions",
            "Open WebSocket sessions",
            m.ws_sessions.clone(),
        );
        registry.register(
            "ws_subscriptions",
            "Topics subscribed by the open WebSocket sessions",
            m.ws_subscriptions.clone(),
        );
        registry.register(
            "ws_slow_consumer_closes",
            "WebSocket sessions closed because the client read too slowly (4008)",
            m.ws_slow_closes.clone(),
        );
        registry.register(
            "mail_outbox_due",
            "Mails due now that this node's last outbox round found (at most one round's worth)",
            m.mail_due.clone(),
        );
        registry.register(
            "mail_outbox_oldest_due_seconds",
            "How long the oldest mail this node's last round found has been due",
            m.mail_oldest_due_seconds.clone(),
        );
        registry.register("mails_sent", "Mails sent", m.mail_sent.clone());
        registry.register(
            "mail_send_failures",
            "Mail sends that failed (retried with back-off)",
            m.mail_failures.clone(),
        );
        registry.register(
            "mails_dead",
            "Mails given up on after their last attempt (moved to outbox_dead)",
            m.mail_dead.clone(),
        );
        registry.register(
            "search_index_lag_seconds",
            "How far this node's search index is behind the catalog feed",
            m.search_lag_seconds.clone(),
        );
        registry.register(
            "runtime_workers",
            "Worker threads of the tokio runtime",
            m.runtime_workers.clone(),
        );
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive in the tokio runtime",
            m.runtime_alive_tasks.clone(),
        );
        registry.register(
            "runtime_global_queue_depth",
            "Tasks waiting in the tokio runtime's global queue",
            m.runtime_global_queue_depth.clone(),
        );
        registry.register(
            "runtime_busy_seconds",
            "Time the tokio runtime's workers have spent busy since start, summed (a counter; rate() of it over the worker count is their load)",
            m.runtime_busy_seconds.clone(),
        );
        *m.registry.lock().expect("metrics registry") = registry;
        m
    }

    /// Mails sent, failed sends and dead mails so far.
    pub fn mail_counts(&self) -> (u64, u64, u64) {
        (
            self.mail_sent.get(),
            self.mail_failures.get(),
            self.mail_dead.get(),
        )
    }

    /// Samples the tokio runtime this is called on.
    fn sample_runtime(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let m = rt.metrics();
        let workers = m.num_workers();
        self.runtime_workers.set(workers as i64);
        self.runtime_alive_tasks.set(m.num_alive_tasks() as i64);
        self.runtime_global_queue_depth
            .set(m.global_queue_depth() as i64);
        let busy: f64 = (0..workers)
            .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
            .sum();
        self.runtime_busy_seconds.set(busy);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.sample_runtime();
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
