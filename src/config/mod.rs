//! Settings. Every key can come from a command-line flag (for the few that
//! have one), the environment (`SURGE_<KEY>`), a TOML file (`--config`), or
//! the default — in that order of precedence.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::pricing::{check_fee_table, FeeTable};
use crate::domain::zone::ReportZone;

mod reference;
pub use reference::reference;

/// Every setting, with its default. Keys are flat so that a TOML key, an
/// environment variable (`SURGE_` + upper-cased key) and the table in
/// docs/configuration.md line up one to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address, `HOST:PORT` (flag `--addr`).
    pub addr: String,
    /// Where `/metrics` is served, on a listener of its own (nothing else
    /// there); empty: no such listener. Loopback by default: the counts per
    /// route and status tell how many log in, register, order or are suspended.
    /// In a container, bind it where only the scraper reaches (the compose and
    /// Kubernetes files: `0.0.0.0:9464`, published by no port mapping or
    /// Service).
    pub metrics_addr: String,
    /// A token (32 characters or more) that also opens `/metrics` on the API
    /// port, as `Authorization: Bearer <token>`, for a scraper that reaches
    /// only that port; unset, the API port answers 404 there.
    pub metrics_token: Option<String>,
    /// Embedded store and generated JWT secret (flag `--data-dir`).
    pub data_dir: PathBuf,
    /// HMAC-SHA256 key, ≥ 32 bytes; when unset, 64 random bytes are generated
    /// once into `data_dir/jwt.secret` (mode 0600).
    ///
    /// Default: generated.
    pub jwt_secret: Option<String>,
    /// Required `iss` of every token.
    pub jwt_issuer: String,
    /// Required `aud` of every token.
    pub jwt_audience: String,
    /// Access-token lifetime.
    pub access_token_ttl_secs: u64,
    /// Refresh-token (session) lifetime, 30 days.
    pub refresh_token_ttl_secs: u64,
    /// Bootstrap admin's email: with `admin_password`, the account is
    /// created, or promoted, at start (`surge admin create` does it once
    /// without a setting). `admin` cannot be chosen at registration.
    pub admin_email: Option<String>,
    /// Bootstrap admin's password (with `admin_email`).
    pub admin_password: Option<String>,
    /// Largest request body (413 beyond).
    pub body_limit_bytes: usize,
    /// Time a request has for its headers once their first byte came, and a new
    /// connection's wait for its first byte (a client that connects and sends
    /// nothing is closed).
    pub header_read_timeout_secs: u64,
    /// Time a kept-alive connection waits for its next request before the
    /// server closes it. Set it above the idle timeout of every client pool and
    /// load balancer in front (reqwest and Go keep idle connections 90 s, AWS
    /// ALB and nginx 60 s): a client that reuses a connection just as the
    /// server closes it gets a reset (see *Clients* below). hyper has one timer
    /// for both waits (hyperium/hyper#1628); `src/http/keepalive.rs` gives it
    /// the two deadlines.
    pub keep_alive_idle_secs: u64,
    /// Open TCP connections; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Open TCP connections from one client address; more are answered 429
    /// `too_many_connections` (`Retry-After: 5`) and closed.
    pub max_connections_per_ip: usize,
    /// Time a request has for its body and its answer; beyond, 408
    /// `request_timeout` and the connection closes (a body trickled in byte by
    /// byte included).
    pub request_timeout_secs: u64,
    /// A header a trusted reverse proxy sets to the client's address (e.g.
    /// `x-real-ip`; the last address in it counts). Unset: the TCP peer. The
    /// throttles key on it — set it only behind a proxy that always overwrites
    /// it.
    pub client_ip_header: Option<String>,
    /// Login attempts from one client address, any account (0: off).
    pub login_attempts_per_ip_per_minute: u32,
    /// Login attempts on one account from one client address: 10 at once, then
    /// one per 90 s (0: off).
    pub login_attempts_per_account_per_hour: u32,
    /// Reset codes mailed to one account in 24 h; past it forgot-password still
    /// answers 202 and sends nothing.
    pub reset_codes_per_account_per_day: u32,
    /// Forgot-password requests from one client address (0: off).
    pub password_resets_per_ip_per_hour: u32,
    /// Registrations from one client address (0: off).
    pub registrations_per_ip_per_hour: u32,
    /// Review reports one account may file: 10 at once, then one per 3 min (429
    /// beyond; 0: off).
    pub review_reports_per_account_per_hour: u32,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// An entity actor idle this long is passivated (stopped; recovered on next
    /// use).
    pub actor_idle_secs: u64,
    /// Bound on every call to an actor (503 `timeout` beyond).
    pub actor_call_timeout_ms: u64,
    /// Live entity actors per kind (429 beyond).
    pub actor_max_live: usize,
    /// Commands waiting for one entity actor (429 with `Retry-After` beyond).
    pub actor_max_pending: usize,
    /// Write a snapshot of an entity after at least N events, and only once the
    /// events since its last snapshot are at least as large as that snapshot,
    /// so a large state (a queue with thousands of claims) is not re-encoded
    /// every N events (0: never).
    pub snapshot_every: u64,
    /// Most appends group-committed in one transaction.
    pub journal_max_batch: usize,
    /// Bound of the journal's write queue (writers wait beyond).
    pub journal_queue: usize,
    /// Argon2id hashes computed at once.
    ///
    /// Default: CPU count.
    pub hash_concurrency: usize,
    /// Hashes allowed to wait; beyond, 429 with `Retry-After`.
    pub hash_queue: usize,
    /// Log filter (`tracing` syntax); `RUST_LOG` wins when set.
    pub log: String,
    /// `text` (one line per event, for a terminal) or `json` (one JSON
    /// object per line, with the request id of the request that caused it,
    /// for a log collector).
    pub log_format: LogFormat,
    /// An OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo:
    /// `http://collector:4318`) to export traces to: spans of each HTTP
    /// request, entity command, journal commit and forwarded call, one
    /// trace across nodes. Unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces kept (0–1); a trace continued from another
    /// node keeps its parent's choice.
    pub otlp_sample_ratio: f64,
    /// Base URL customers reach Surge at (payment page links).
    ///
    /// Default: `http://` + bound address.
    pub public_url: Option<String>,
    /// Tax on (subtotal − discount) in basis points; `1000` = 10 %.
    pub tax_rate_bps: u32,
    /// An online payment not made by then: Surge asks the provider, then marks
    /// the order paid or cancels it.
    pub payment_timeout_secs: u64,
    /// Returns may be requested this long after delivery; escrow is released to
    /// the shop when it ends.
    pub return_window_secs: u64,
    /// Shipping fee by distance bracket `[max_km, fee]`; beyond the last,
    /// `out_of_delivery_area`.
    pub shipping_distance_fees: Vec<(f64, u64)>,
    /// Surcharge by weight bracket `[max_grams, fee]`.
    pub shipping_weight_fees: Vec<(u64, u64)>,
    /// Surcharge per started kg above the last weight bracket.
    pub shipping_fee_per_extra_kg: u64,
    /// Signing secret of the sandbox gateway's webhooks.
    ///
    /// Default: derived from the JWT secret.
    pub sandbox_webhook_secret: Option<String>,
    /// How often due order actions (timeouts, stock release, refunds, escrow)
    /// run.
    pub timer_interval_ms: u64,
    /// PayOS client id; with `payos_api_key` and `payos_checksum_key`,
    /// required when `payos` is in `payment_providers`.
    pub payos_client_id: Option<String>,
    /// PayOS API key.
    pub payos_api_key: Option<String>,
    /// PayOS checksum key (signs requests and webhooks).
    pub payos_checksum_key: Option<String>,
    /// PayOS API base.
    pub payos_base_url: String,
    /// Enabled providers (`cod`, `sandbox`, `payos`). **Remove `sandbox` in
    /// production**: anyone may "pay" on its page. Disabled providers are
    /// refused at checkout and the sandbox pages answer 404.
    pub payment_providers: Vec<String>,
    /// Origins besides this server's own whose pages may open WebSocket
    /// sessions; `"*"` allows any.
    pub ws_allowed_origins: Vec<String>,
    /// Live WebSocket sessions per user.
    pub ws_max_connections_per_user: usize,
    /// Kernel send buffer per connection (`SO_SNDBUF`). Auto-tuning lets one
    /// connection buffer up to `net.ipv4.tcp_wmem` (often 4 MiB) before Surge
    /// sees a slow reader; a fixed value (e.g. 65536) makes slow WebSocket
    /// clients hit Surge's own bounds sooner and caps kernel memory per
    /// connection.
    ///
    /// Default: unset (kernel auto-tuning).
    pub socket_send_buffer_bytes: Option<usize>,
    /// Only shippers this close to the shop are offered an order.
    pub dispatch_radius_km: f64,
    /// A shipper has this long to accept an offer before it goes to the next
    /// one.
    pub dispatch_offer_secs: u64,
    /// With no shipper available, dispatch looks again after this long.
    pub dispatch_retry_secs: u64,
    /// Radius of the arrival geofence around the delivery address (leaving
    /// takes 1.5 × this).
    pub geofence_radius_m: f64,
    /// Time inside the geofence (device time) before "arriving" is announced.
    pub arrival_dwell_secs: u64,
    /// Positions older than this (device time) are ignored; shippers without
    /// one this fresh are not dispatched.
    pub location_max_age_secs: u64,
    /// How far a device clock may run ahead of the server's (422 beyond).
    pub location_max_skew_secs: u64,
    /// Speed assumed for the ETA while the shipper is nearly still.
    pub eta_default_speed_mps: f64,
    /// One position per this interval is kept in a delivery's track.
    pub track_sample_secs: u64,
    /// A finished delivery's track is deleted after this long.
    pub track_retention_secs: u64,
    /// Where mail goes: `smtp://host:port` (plain),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://user:pass@host`
    /// (TLS); lettre's URL form. Unset: every mail is written as an `.eml` file
    /// under `data_dir/mail/`.
    pub smtp_url: Option<String>,
    /// Sender of every mail.
    pub mail_from: String,
    /// How long a password-reset code works.
    pub otp_ttl_secs: u64,
    /// Wrong codes before a reset code stops working.
    pub otp_max_attempts: u32,
    /// TCP connections the kernel queues for accept (capped by
    /// `net.core.somaxconn`): a burst of new connections waits here instead of
    /// having SYNs dropped and retried a second later.
    pub listen_backlog: u32,
    /// Claims waiting for their decision per queue; beyond, 429
    /// `too_many_requests` with `Retry-After` at once.
    pub burst_max_pending: usize,
    /// Waitlist places per queue; beyond, 409 `sold_out` (a split queue's parts
    /// hold an equal share each).
    pub burst_max_waitlist: u32,
    /// Parts (sub-queues, each its own actor and stream) a new course's or
    /// flash sale's capacity is split over, so one hot queue is decided on
    /// several cores; `0` = the number of cores but at least 50 units per part
    /// (smaller queues get fewer parts; chosen while 25 units per part had a
    /// slow end of burst, since fixed, `bench/README.md`), at most 64, never
    /// more than the capacity; fixed per queue when it opens (see "Split
    /// queues").
    pub burst_queue_parts: u32,
    /// `auto`: new and edited reviews are public at once; `manual`: each waits
    /// for an admin (see "Reviews and ratings").
    pub review_moderation: ReviewModeration,
    /// Distinct reports that send an approved review back to moderation (at
    /// least 1).
    pub review_report_threshold: u32,
    /// How long after writing it the author may edit a review.
    pub review_edit_window_secs: u64,
    /// How often each node's search index applies catalog changes.
    pub search_refresh_ms: u64,
    /// How often each node writes the views and checkouts it buffered (recently
    /// viewed, bought together, trending); 10–60000. What a killed node
    /// buffered since is lost.
    pub behavior_flush_ms: u64,
    /// How often the platform statistics count what happened (10–60000): how
    /// far `GET /admin/stats` and `admin:stats` may lag.
    pub stats_interval_ms: u64,
    /// The IANA time zone shop reports, coupon usage and the platform
    /// statistics count days in (`Asia/Ho_Chi_Minh`, `Europe/Paris`, …):
    /// "today" starts at its midnight. Statistics are kept by UTC hour, so
    /// in a zone with a half-hour offset a day holds the hours that start
    /// in it.
    pub report_time_zone: String,
    /// Where uploaded images are kept: `disk` (`media_dir`) or `s3` (an
    /// S3-compatible bucket). Cluster mode, where each node serves every
    /// image, refuses `disk` unless `media_dir` is set to a filesystem all
    /// nodes share. See [Media](commerce.md#media).
    pub media_store: String,
    /// Directory of the `disk` media store. In cluster mode it must be
    /// set, to a filesystem every node shares (NFS, EFS, …); or use `s3`.
    ///
    /// Default: `data_dir/media`.
    pub media_dir: Option<PathBuf>,
    /// The `s3` media store's bucket (required for `s3`).
    pub media_s3_bucket: Option<String>,
    /// The `s3` media store's endpoint: set it for MinIO, Ceph, R2, …
    /// (`http://` allowed).
    ///
    /// Default: AWS.
    pub media_s3_endpoint: Option<String>,
    /// The `s3` media store's region.
    pub media_s3_region: String,
    /// The `s3` media store's access key id; unset, the usual `AWS_*`
    /// environment variables (and instance credentials) are used.
    pub media_s3_access_key_id: Option<String>,
    /// The `s3` media store's secret key (with `media_s3_access_key_id`).
    pub media_s3_secret_access_key: Option<String>,
    /// Largest image upload (1 KiB – 256 MiB); beyond, 413 `image_too_large`.
    pub media_max_bytes: usize,
    /// Most pixels (width × height) an image may claim in its header; beyond,
    /// 413 before anything is decoded. 25 MP takes a 24-megapixel camera or
    /// phone photo (6000 × 4000) and bounds one decode to 25 M × 8 bytes + 64
    /// MiB ≈ 264 MiB (`process`'s allocation limit).
    pub media_max_pixels: u64,
    /// Uploads that may wait for a decoder (one decodes per core at once); past
    /// that an upload is answered 429 with `Retry-After` before it is held
    /// longer.
    pub media_decode_queue: usize,
    /// Image uploads one account may make: 10 at once, then one per 3 s (429
    /// with `Retry-After` beyond, before any decoding; 0: off).
    pub media_uploads_per_account_per_minute: u32,
    /// Trending counts halve every this long (6 h); 60 s – 30 days.
    pub trending_half_life_secs: u64,
    /// argon2id memory cost (KiB) of new password hashes (OWASP
    /// baseline). Lower it only for tests and load generators: it is what
    /// makes stolen hashes expensive. Existing hashes keep their own cost.
    pub hash_memory_kib: u32,
    /// argon2id passes of new password hashes (as `hash_memory_kib`).
    pub hash_iterations: u32,
    /// Storage backend: `embedded` (redb file in `data_dir`), `postgres` or
    /// `scylla` (flag `--store`).
    pub store: StoreKind,
    /// ScyllaDB contact points, `host:port,host:port` (flag `--scylla-nodes`).
    pub scylla_nodes: String,
    /// Keyspace of Surge's tables.
    pub scylla_keyspace: String,
    /// The keyspace's replication, as the CQL map `surge migrate` creates it
    /// with; production: `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`.
    pub scylla_replication: String,
    /// Consistency of every read and write (`local_quorum`, `quorum`,
    /// `each_quorum`, `one`, …).
    pub scylla_consistency: String,
    /// ScyllaDB user (PasswordAuthenticator), set with `scylla_password`.
    pub scylla_user: Option<String>,
    /// ScyllaDB password, set with `scylla_user`.
    pub scylla_password: Option<String>,
    /// Insert journal rows `IF NOT EXISTS` (lightweight transactions): no two
    /// processes can ever write one sequence number; costs a Paxos round per
    /// stream per group commit. Must be `false` against the emulator.
    pub scylla_lwt: bool,
    /// The server is `surge cql-emulator` (kassandra): ranges and limits are
    /// applied while paging, the driver's metadata complaints are silenced.
    pub scylla_emulator: bool,
    /// Bound on one ScyllaDB request, retries included.
    pub scylla_request_timeout_ms: u64,
    /// The database for `store = postgres` (flag `--postgres-url`): a libpq URL
    /// or `key=value` string. TLS as its `sslmode` says (`disable`, `prefer` —
    /// the default —, `require`); with TLS the server's certificate is always
    /// verified (web PKI roots and `postgres_ca_file`).
    pub postgres_url: String,
    /// Password when the URL has none; unset, `PGPASSWORD` is used.
    pub postgres_password: Option<String>,
    /// Schema holding Surge's tables (the connections' `search_path`; created
    /// by `surge migrate`).
    pub postgres_schema: String,
    /// Most connections Surge opens for reads (1–1000); the writer thread has
    /// two more of its own.
    pub postgres_pool_size: usize,
    /// Bound on connecting and on waiting for a free connection: with the
    /// database away, commands fail within it (503).
    pub postgres_connect_timeout_ms: u64,
    /// `statement_timeout` of Surge's sessions (and 4× as
    /// `idle_in_transaction_session_timeout`).
    pub postgres_statement_timeout_ms: u64,
    /// PEM file of CA certificates trusted besides the web PKI roots (a managed
    /// database's or CloudNativePG's own CA).
    pub postgres_ca_file: Option<PathBuf>,
    /// Cluster mode: several nodes on one shared store, each entity served by
    /// the node holding its shard's lease ([Cluster](operations.md#cluster));
    /// needs `store = postgres` (or `store = scylla` with `scylla_lwt = true`
    /// on a real cluster), `jwt_secret` (the same on every node) and
    /// `redis_url`.
    pub cluster: bool,
    /// This node's name in the cluster, unique and stable across restarts (1–50
    /// of `a-z A-Z 0-9 - _ .`; two processes with one name would keep taking
    /// each other's shards); a restarted node takes its own leases back at
    /// once.
    ///
    /// Default: `HOSTNAME`.
    pub node_id: Option<String>,
    /// The inter-node listener (forwarded commands), `HOST:PORT`.
    pub cluster_addr: String,
    /// The address other nodes reach `cluster_addr` at (`host:port`, a name or
    /// an IP); required when `cluster_addr` listens on every interface.
    ///
    /// Default: `cluster_addr`.
    pub cluster_advertise: Option<String>,
    /// PEM CA certificate(s) every node's inter-node certificate must be
    /// issued by (the cluster's own CA, not a public one): the inter-node
    /// channel is TLS 1.3, mutual. Required in cluster mode unless
    /// `cluster_plaintext`; `surge cluster certs DIR` writes a new CA and
    /// node certificate (`ca.pem`, `node.pem`, `node.key`).
    pub cluster_tls_ca: Option<PathBuf>,
    /// PEM certificate chain this node presents on the inter-node channel,
    /// issued by `cluster_tls_ca` for `cluster_tls_name`.
    pub cluster_tls_cert: Option<PathBuf>,
    /// PEM private key of `cluster_tls_cert`.
    pub cluster_tls_key: Option<PathBuf>,
    /// The DNS name every node's certificate carries, checked on both sides
    /// (peers are reached by address, which changes).
    pub cluster_tls_name: String,
    /// Development only: the inter-node channel without TLS (every forwarded
    /// command and reply, with users, addresses and payments, readable on the
    /// network). Refused with the TLS files set.
    pub cluster_plaintext: bool,
    /// Shards entities are placed in (1–4096), fixed by the cluster's first
    /// node; a node configured otherwise refuses to start.
    pub shards: u32,
    /// A shard lease's lifetime (1000–600000): how long a dead node's shards
    /// wait before others take them.
    pub lease_ttl_ms: u64,
    /// How often leases are renewed and placement reconsidered (at most half
    /// the TTL); 0: a third of `lease_ttl_ms`.
    pub lease_renew_ms: u64,
    /// Redis (`redis://host:6379`, `rediss://` for TLS) carrying live
    /// events between nodes; required in cluster mode.
    pub redis_url: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How reviews are moderated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewModeration {
    Auto,
    Manual,
}

/// The storage backend.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Scylla,
    Postgres,
}

/// The TTL (seconds) of `track_points` in `schema/scylla/001_init.cql`: tracks are
/// deleted by Surge before it.
pub const SCYLLA_TRACK_TTL_SECS: u64 = 30 * 24 * 3600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: "127.0.0.1:8080".into(),
            metrics_addr: "127.0.0.1:9464".into(),
            metrics_token: None,
            data_dir: PathBuf::from("./data"),
            jwt_secret: None,
            jwt_issuer: "surge".into(),
            jwt_audience: "surge-api".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            admin_email: None,
            admin_password: None,
            body_limit_bytes: 64 * 1024,
            header_read_timeout_secs: 10,
            keep_alive_idle_secs: 120,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            request_timeout_secs: 30,
            client_ip_header: None,
            login_attempts_per_ip_per_minute: 30,
            login_attempts_per_account_per_hour: 40,
            reset_codes_per_account_per_day: 10,
            password_resets_per_ip_per_hour: 30,
            registrations_per_ip_per_hour: 30,
            review_reports_per_account_per_hour: 20,
            shutdown_grace_secs: 30,
            actor_idle_secs: 300,
            actor_call_timeout_ms: 5_000,
            actor_max_live: 1_000_000,
            actor_max_pending: 10_000,
            snapshot_every: 100,
            journal_max_batch: 1024,
            journal_queue: 8192,
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            hash_queue: 256,
            log: "info".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            otlp_sample_ratio: 1.0,
            public_url: None,
            tax_rate_bps: 0,
            payment_timeout_secs: 15 * 60,
            return_window_secs: 7 * 24 * 3600,
            shipping_distance_fees: FeeTable::default().distance,
            shipping_weight_fees: FeeTable::default().weight,
            shipping_fee_per_extra_kg: FeeTable::default().per_extra_kg,
            sandbox_webhook_secret: None,
            timer_interval_ms: 200,
            payos_client_id: None,
            payos_api_key: None,
            payos_checksum_key: None,
            payos_base_url: "https://api-merchant.payos.vn".into(),
            payment_providers: vec!["cod".into(), "sandbox".into()],
            ws_allowed_origins: Vec::new(),
            ws_max_connections_per_user: 16,
            socket_send_buffer_bytes: None,
            dispatch_radius_km: 10.0,
            dispatch_offer_secs: 30,
            dispatch_retry_secs: 15,
            geofence_radius_m: 50.0,
            arrival_dwell_secs: 20,
            location_max_age_secs: 120,
            location_max_skew_secs: 30,
            eta_default_speed_mps: 6.0,
            track_sample_secs: 5,
            track_retention_secs: 7 * 24 * 3600,
            smtp_url: None,
            mail_from: "Surge <no-reply@surge.localhost>".into(),
            otp_ttl_secs: 600,
            otp_max_attempts: 5,
            listen_backlog: 8192,
            burst_max_pending: 20_000,
            burst_max_waitlist: 10_000,
            burst_queue_parts: 0,
            review_moderation: ReviewModeration::Auto,
            review_report_threshold: 3,
            review_edit_window_secs: 7 * 24 * 3600,
            search_refresh_ms: 500,
            behavior_flush_ms: 1_000,
            stats_interval_ms: 1_000,
            report_time_zone: "UTC".into(),
            media_store: "disk".into(),
            media_dir: None,
            media_s3_bucket: None,
            media_s3_endpoint: None,
            media_s3_region: "us-east-1".into(),
            media_s3_access_key_id: None,
            media_s3_secret_access_key: None,
            media_max_bytes: 10 << 20,
            media_max_pixels: 25_000_000,
            media_decode_queue: 8,
            media_uploads_per_account_per_minute: 20,
            trending_half_life_secs: 6 * 3600,
            hash_memory_kib: 19_456,
            hash_iterations: 2,
            store: StoreKind::Embedded,
            scylla_nodes: "127.0.0.1:9042".into(),
            scylla_keyspace: "surge".into(),
            scylla_replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            scylla_consistency: "local_quorum".into(),
            scylla_user: None,
            scylla_password: None,
            scylla_lwt: true,
            scylla_emulator: false,
            scylla_request_timeout_ms: 5_000,
            postgres_url: "postgres://postgres@127.0.0.1:5432/surge".into(),
            postgres_password: None,
            postgres_schema: "surge".into(),
            postgres_pool_size: 16,
            postgres_connect_timeout_ms: 3_000,
            postgres_statement_timeout_ms: 10_000,
            postgres_ca_file: None,
            cluster: false,
            node_id: None,
            cluster_addr: "127.0.0.1:7070".into(),
            cluster_advertise: None,
            cluster_tls_ca: None,
            cluster_tls_cert: None,
            cluster_tls_key: None,
            cluster_tls_name: "surge-cluster".into(),
            cluster_plaintext: false,
            shards: 256,
            lease_ttl_ms: 10_000,
            lease_renew_ms: 0,
            redis_url: None,
        }
    }
}

/// The keys, as accepted in TOML and (upper-cased, `SURGE_`-prefixed) in
/// the environment.
pub const KEYS: &[&str] = &[
    "addr",
    "metrics_addr",
    "metrics_token",
    "data_dir",
    "jwt_secret",
    "jwt_issuer",
    "jwt_audience",
    "access_token_ttl_secs",
    "refresh_token_ttl_secs",
    "admin_email",
    "admin_password",
    "body_limit_bytes",
    "header_read_timeout_secs",
    "keep_alive_idle_secs",
    "max_connections",
    "max_connections_per_ip",
    "request_timeout_secs",
    "client_ip_header",
    "login_attempts_per_ip_per_minute",
    "login_attempts_per_account_per_hour",
    "reset_codes_per_account_per_day",
    "password_resets_per_ip_per_hour",
    "registrations_per_ip_per_hour",
    "review_reports_per_account_per_hour",
    "shutdown_grace_secs",
    "actor_idle_secs",
    "actor_call_timeout_ms",
    "actor_max_live",
    "actor_max_pending",
    "snapshot_every",
    "journal_max_batch",
    "journal_queue",
    "hash_concurrency",
    "hash_queue",
    "log",
    "log_format",
    "otlp_endpoint",
    "otlp_sample_ratio",
    "public_url",
    "tax_rate_bps",
    "payment_timeout_secs",
    "return_window_secs",
    "shipping_distance_fees",
    "shipping_weight_fees",
    "shipping_fee_per_extra_kg",
    "sandbox_webhook_secret",
    "timer_interval_ms",
    "payos_client_id",
    "payos_api_key",
    "payos_checksum_key",
    "payos_base_url",
    "payment_providers",
    "ws_allowed_origins",
    "ws_max_connections_per_user",
    "socket_send_buffer_bytes",
    "dispatch_radius_km",
    "dispatch_offer_secs",
    "dispatch_retry_secs",
    "geofence_radius_m",
    "arrival_dwell_secs",
    "location_max_age_secs",
    "location_max_skew_secs",
    "eta_default_speed_mps",
    "track_sample_secs",
    "track_retention_secs",
    "smtp_url",
    "mail_from",
    "otp_ttl_secs",
    "otp_max_attempts",
    "listen_backlog",
    "burst_max_pending",
    "burst_max_waitlist",
    "burst_queue_parts",
    "review_moderation",
    "review_report_threshold",
    "review_edit_window_secs",
    "search_refresh_ms",
    "behavior_flush_ms",
    "stats_interval_ms",
    "report_time_zone",
    "media_store",
    "media_dir",
    "media_s3_bucket",
    "media_s3_endpoint",
    "media_s3_region",
    "media_s3_access_key_id",
    "media_s3_secret_access_key",
    "media_max_bytes",
    "media_max_pixels",
    "media_decode_queue",
    "media_uploads_per_account_per_minute",
    "trending_half_life_secs",
    "hash_memory_kib",
    "hash_iterations",
    "store",
    "scylla_nodes",
    "scylla_keyspace",
    "scylla_replication",
    "scylla_consistency",
    "scylla_user",
    "scylla_password",
    "scylla_lwt",
    "scylla_emulator",
    "scylla_request_timeout_ms",
    "postgres_url",
    "postgres_password",
    "postgres_schema",
    "postgres_pool_size",
    "postgres_connect_timeout_ms",
    "postgres_statement_timeout_ms",
    "postgres_ca_file",
    "cluster",
    "node_id",
    "cluster_addr",
    "cluster_advertise",
    "cluster_tls_ca",
    "cluster_tls_cert",
    "cluster_tls_key",
    "cluster_tls_name",
    "cluster_plaintext",
    "shards",
    "lease_ttl_ms",
    "lease_renew_ms",
    "redis_url",
];

/// Bound of `shards`.
pub const MAX_SHARDS: u32 = 4096;

/// Bound of `burst_queue_parts`: a refill visits every part.
pub const MAX_QUEUE_PARTS: u32 = 64;

/// Values given as command-line flags (highest precedence).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scylla_nodes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults < TOML file < `SURGE_*` environment < flags.
    pub fn load(file: Option<&Path>, flags: Overrides) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let settings: Settings = fig
            .merge(Env::prefixed("SURGE_").only(KEYS))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Settings from the text of a TOML config file (defaults for what it
    /// does not say; no environment): how `load` reads `--config`, and
    /// what `fuzz/` feeds arbitrary bytes to.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.addr.parse::<std::net::SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "addr '{}' is not HOST:PORT (an IP address and a port)",
                self.addr
            ))
        })?;
        if let Some(s) = &self.jwt_secret {
            if s.len() < 32 {
                return Err(ConfigError("jwt_secret must be at least 32 bytes".into()));
            }
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(ConfigError("otlp_sample_ratio must be 0–1".into()));
        }
        if let Some(e) = &self.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "otlp_endpoint '{e}' is not an http:// or https:// URL"
                )));
            }
        }
        self.report_time_zone
            .parse::<ReportZone>()
            .map_err(|e| ConfigError(format!("report_time_zone: {e}")))?;
        if self.review_report_threshold == 0 {
            return Err(ConfigError(
                "review_report_threshold must be at least 1".into(),
            ));
        }
        if self.burst_queue_parts > MAX_QUEUE_PARTS {
            return Err(ConfigError(format!(
                "burst_queue_parts must be at most {MAX_QUEUE_PARTS}"
            )));
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(ConfigError(
                "admin_email and admin_password must be set together".into(),
            ));
        }
        if self.actor_call_timeout_ms == 0
            || self.body_limit_bytes == 0
            || self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.request_timeout_secs == 0
        {
            return Err(ConfigError(
                "actor_call_timeout_ms, body_limit_bytes, max_connections, max_connections_per_ip and request_timeout_secs must be positive"
                    .into(),
            ));
        }
        if let Some(h) = &self.client_ip_header {
            axum::http::HeaderName::try_from(h.as_str())
                .map_err(|_| ConfigError(format!("client_ip_header '{h}' is not a header name")))?;
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 32) {
            return Err(ConfigError(
                "metrics_token must be at least 32 characters".into(),
            ));
        }
        check_fee_table(&self.fee_table()).map_err(ConfigError)?;
        if let Some(p) = self
            .payment_providers
            .iter()
            .find(|p| !["cod", "sandbox", "payos"].contains(&p.as_str()))
        {
            return Err(ConfigError(format!(
                "payment_providers: unknown provider '{p}' (cod, sandbox, payos)"
            )));
        }
        if self.payment_providers.iter().any(|p| p == "payos") && self.payos_checksum_key.is_none()
        {
            return Err(ConfigError(
                "payment_providers lists payos but its credentials are not set".into(),
            ));
        }
        let payos = [
            &self.payos_client_id,
            &self.payos_api_key,
            &self.payos_checksum_key,
        ];
        if payos.iter().any(|v| v.is_some()) && !payos.iter().all(|v| v.is_some()) {
            return Err(ConfigError(
                "payos_client_id, payos_api_key and payos_checksum_key must be set together".into(),
            ));
        }
        if self.tax_rate_bps > 10_000 {
            return Err(ConfigError(
                "tax_rate_bps must be at most 10000 (100 %)".into(),
            ));
        }
        if self.timer_interval_ms == 0 || self.payment_timeout_secs == 0 {
            return Err(ConfigError(
                "timer_interval_ms and payment_timeout_secs must be positive".into(),
            ));
        }
        let positive = [
            self.dispatch_radius_km,
            self.geofence_radius_m,
            self.eta_default_speed_mps,
        ];
        if positive.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || self.dispatch_offer_secs == 0
            || self.dispatch_retry_secs == 0
            || self.location_max_age_secs == 0
        {
            return Err(ConfigError(
                "dispatch_radius_km, geofence_radius_m, eta_default_speed_mps, dispatch_offer_secs, dispatch_retry_secs and location_max_age_secs must be positive".into(),
            ));
        }
        if !(10..=60_000).contains(&self.behavior_flush_ms) {
            return Err(ConfigError("behavior_flush_ms must be 10–60000".into()));
        }
        if !(10..=60_000).contains(&self.stats_interval_ms) {
            return Err(ConfigError("stats_interval_ms must be 10–60000".into()));
        }
        match self.media_store.as_str() {
            "disk" => {}
            "s3" if self.media_s3_bucket.is_some() => {}
            "s3" => return Err(ConfigError("media_store = s3 needs media_s3_bucket".into())),
            _ => return Err(ConfigError("media_store must be disk or s3".into())),
        }
        if !(1024..=256 << 20).contains(&self.media_max_bytes)
            || !(1..=400_000_000).contains(&self.media_max_pixels)
        {
            return Err(ConfigError(
                "media_max_bytes must be 1 KiB – 256 MiB and media_max_pixels 1 – 400000000".into(),
            ));
        }
        if !(60..=30 * 86_400).contains(&self.trending_half_life_secs) {
            return Err(ConfigError(
                "trending_half_life_secs must be 60–2592000 (one minute to 30 days)".into(),
            ));
        }
        self.validate_scylla()?;
        self.validate_postgres()?;
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if !self.cluster {
            return Ok(());
        }
        match self.store {
            StoreKind::Postgres => {}
            StoreKind::Scylla if self.scylla_lwt && !self.scylla_emulator => {}
            StoreKind::Scylla => {
                return Err(ConfigError(
                    "cluster mode on ScyllaDB needs scylla_lwt = true on a real cluster (leases and fenced appends are lightweight transactions; the emulator has none)".into(),
                ))
            }
            StoreKind::Embedded => {
                return Err(ConfigError(
                    "cluster mode needs a shared store that fences stale owners' appends (store = postgres or scylla); store = embedded is one process's file and cannot be shared".into(),
                ))
            }
        }
        if self.jwt_secret.is_none() {
            return Err(ConfigError(
                "cluster mode needs jwt_secret set, the same on every node".into(),
            ));
        }
        self.node_id()?;
        self.cluster_advertised()?;
        match &self.redis_url {
            None => {
                return Err(ConfigError(
                    "cluster mode needs redis_url (live events between nodes)".into(),
                ))
            }
            Some(url) => {
                fred::prelude::Config::from_url(url)
                    .map_err(|e| ConfigError(format!("redis_url: {e}")))?;
            }
        }
        self.cluster_tls_files()?;
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(ConfigError(format!("shards must be 1–{MAX_SHARDS}")));
        }
        if self.lease_ttl_ms < 1_000 || self.lease_ttl_ms > 600_000 {
            return Err(ConfigError("lease_ttl_ms must be 1000–600000".into()));
        }
        if self.lease_renew_ms != 0 && self.lease_renew_ms * 2 > self.lease_ttl_ms {
            return Err(ConfigError(
                "lease_renew_ms must be at most half of lease_ttl_ms (leases are renewed well before they expire)".into(),
            ));
        }
        if self.media_store != "s3" && self.media_dir.is_none() {
            return Err(ConfigError(
                "cluster mode keeps images where every node reads them: media_store = \"s3\" (an S3-compatible bucket), or media_dir on a filesystem all nodes share; the default, data_dir/media, is one node's own".into(),
            ));
        }
        Ok(())
    }

    /// The inter-node channel's TLS files (`None`: plaintext, allowed for
    /// development): all three, or `cluster_plaintext` and none.
    pub fn cluster_tls_files(
        &self,
    ) -> Result<Option<crate::cluster::tls::TlsFiles<'_>>, ConfigError> {
        let files = (
            self.cluster_tls_ca.as_deref(),
            self.cluster_tls_cert.as_deref(),
            self.cluster_tls_key.as_deref(),
        );
        match (self.cluster_plaintext, files) {
            (false, (Some(ca), Some(cert), Some(key))) => {
                Ok(Some(crate::cluster::tls::TlsFiles {
                    ca,
                    cert,
                    key,
                    name: &self.cluster_tls_name,
                }))
            }
            (true, (None, None, None)) => Ok(None),
            (true, _) => Err(ConfigError(
                "cluster_plaintext = true and cluster_tls_* files are both set: choose one".into(),
            )),
            (false, _) => Err(ConfigError(
                "cluster mode needs cluster_tls_ca, cluster_tls_cert and cluster_tls_key (the inter-node channel is TLS; `surge cluster certs DIR` makes them), or cluster_plaintext = true for development".into(),
            )),
        }
    }

    /// This node's name: `node_id`, else `HOSTNAME`.
    pub fn node_id(&self) -> Result<String, ConfigError> {
        let name = match &self.node_id {
            Some(n) => n.clone(),
            None => std::env::var("HOSTNAME")
                .map_err(|_| ConfigError("cluster mode needs node_id (or HOSTNAME) set".into()))?,
        };
        // At most 50: the writer's sessions are named `surge-writer/{node}`
        // and PostgreSQL keeps 63 bytes of a session's name.
        let valid = !name.is_empty()
            && name.len() <= 50
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Err(ConfigError(format!(
                "node_id '{name}' must be 1–50 of a-z, A-Z, 0-9, '-', '_', '.'"
            )));
        }
        Ok(name)
    }

    /// The inter-node listen address and the address advertised for it.
    pub fn cluster_advertised(&self) -> Result<(std::net::SocketAddr, String), ConfigError> {
        let listen: std::net::SocketAddr = self.cluster_addr.parse().map_err(|_| {
            ConfigError(format!(
                "cluster_addr '{}' is not HOST:PORT (an IP address and a port)",
                self.cluster_addr
            ))
        })?;
        let advertised = crate::cluster::advertised(listen, self.cluster_advertise.as_deref())
            .map_err(ConfigError)?;
        Ok((listen, advertised))
    }

    /// How often leases are renewed.
    pub fn lease_renew(&self) -> std::time::Duration {
        std::time::Duration::from_millis(match self.lease_renew_ms {
            0 => self.lease_ttl_ms / 3,
            n => n,
        })
    }

    fn validate_postgres(&self) -> Result<(), ConfigError> {
        self.postgres_config()?;
        let schema = &self.postgres_schema;
        let valid = schema.len() <= 48
            && schema.starts_with(|c: char| c.is_ascii_lowercase())
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ConfigError(format!(
                "postgres_schema '{schema}' must be 1-48 of a-z, 0-9 and _, starting with a letter"
            )));
        }
        if self.postgres_pool_size == 0 || self.postgres_pool_size > 1000 {
            return Err(ConfigError(
                "postgres_pool_size must be 1-1000 (connections for reads; the writer has two more)"
                    .into(),
            ));
        }
        if self.postgres_connect_timeout_ms == 0 || self.postgres_statement_timeout_ms == 0 {
            return Err(ConfigError(
                "postgres_connect_timeout_ms and postgres_statement_timeout_ms must be positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `postgres_url` parsed, with the password from `postgres_password`
    /// or `PGPASSWORD` when the URL has none.
    fn postgres_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        let mut config: tokio_postgres::Config = self.postgres_url.parse().map_err(|e| {
            // The URL may hold a password: name the problem, not the URL.
            ConfigError(format!(
                "postgres_url is not a libpq URL or key=value string: {e}"
            ))
        })?;
        if config.get_hosts().is_empty() {
            return Err(ConfigError("postgres_url must name a host".into()));
        }
        if config.get_password().is_none() {
            let password = self
                .postgres_password
                .clone()
                .or_else(|| std::env::var("PGPASSWORD").ok());
            if let Some(p) = password {
                config.password(p);
            }
        }
        Ok(config)
    }

    /// How the PostgreSQL backend connects (`store = postgres`, `surge
    /// migrate`).
    pub fn postgres(&self) -> Result<crate::store::postgres::PostgresOptions, ConfigError> {
        Ok(crate::store::postgres::PostgresOptions {
            config: self.postgres_config()?,
            schema: self.postgres_schema.clone(),
            pool_size: self.postgres_pool_size,
            connect_timeout: std::time::Duration::from_millis(self.postgres_connect_timeout_ms),
            statement_timeout: std::time::Duration::from_millis(self.postgres_statement_timeout_ms),
            ca_file: self.postgres_ca_file.clone(),
            max_batch: self.journal_max_batch,
            queue: self.journal_queue,
            // Cluster mode: the writer's sessions are named after the node,
            // so a node taking over an expired lease can end them.
            node: if self.cluster {
                Some(self.node_id()?)
            } else {
                None
            },
        })
    }

    fn validate_scylla(&self) -> Result<(), ConfigError> {
        if self.scylla_nodes.split(',').all(|n| n.trim().is_empty()) {
            return Err(ConfigError(
                "scylla_nodes must name at least one host:port".into(),
            ));
        }
        let ks = &self.scylla_keyspace;
        let valid_ks = ks.len() <= 48
            && ks.starts_with(|c: char| c.is_ascii_lowercase())
            && ks
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_ks {
            return Err(ConfigError(format!(
                "scylla_keyspace '{ks}' must be 1-48 of a-z, 0-9 and _, starting with a letter"
            )));
        }
        let r = self.scylla_replication.trim();
        if !(r.starts_with('{') && r.ends_with('}') && r.contains("'class'") && !r.contains(';')) {
            return Err(ConfigError(format!(
                "scylla_replication '{r}' must be a CQL map like {{'class': 'NetworkTopologyStrategy', 'dc1': 3}}"
            )));
        }
        if crate::store::scylla::parse_consistency(&self.scylla_consistency).is_none() {
            return Err(ConfigError(format!(
                "scylla_consistency '{}' is not a consistency level (local_quorum, quorum, one, all, …)",
                self.scylla_consistency
            )));
        }
        if self.scylla_user.is_some() != self.scylla_password.is_some() {
            return Err(ConfigError(
                "scylla_user and scylla_password must be set together".into(),
            ));
        }
        if self.scylla_lwt && self.scylla_emulator {
            return Err(ConfigError(
                "scylla_lwt must be false with scylla_emulator: the emulator has no lightweight transactions".into(),
            ));
        }
        if self.scylla_request_timeout_ms == 0 {
            return Err(ConfigError(
                "scylla_request_timeout_ms must be positive".into(),
            ));
        }
        if self.store == StoreKind::Scylla && self.track_retention_secs >= SCYLLA_TRACK_TTL_SECS {
            return Err(ConfigError(format!(
                "track_retention_secs must be below {SCYLLA_TRACK_TTL_SECS} (the TTL of track_points on ScyllaDB)"
            )));
        }
        Ok(())
    }

    /// How the ScyllaDB backend connects (`store = scylla`, `surge migrate`).
    pub fn scylla(&self) -> crate::store::scylla::ScyllaOptions {
        crate::store::scylla::ScyllaOptions {
            nodes: self
                .scylla_nodes
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            keyspace: self.scylla_keyspace.clone(),
            replication: self.scylla_replication.trim().to_owned(),
            consistency: crate::store::scylla::parse_consistency(&self.scylla_consistency)
                .unwrap_or(::scylla::statement::Consistency::LocalQuorum),
            user: self.scylla_user.clone(),
            password: self.scylla_password.clone(),
            lwt: self.scylla_lwt,
            emulator: self.scylla_emulator,
            request_timeout: std::time::Duration::from_millis(self.scylla_request_timeout_ms),
            max_batch: self.journal_max_batch,
            queue: self.journal_queue,
        }
    }

    pub fn tracking(&self) -> crate::service::fleet::TrackingConfig {
        use crate::domain::shipping::{Freshness, Geofence};
        let secs = |s: u64| chrono::Duration::seconds(s.min(i64::MAX as u64 / 1000) as i64);
        crate::service::fleet::TrackingConfig {
            dispatch_radius_km: self.dispatch_radius_km,
            offer_timeout: secs(self.dispatch_offer_secs),
            dispatch_retry: secs(self.dispatch_retry_secs),
            fence: Geofence {
                radius_m: self.geofence_radius_m,
                dwell_ms: secs(self.arrival_dwell_secs).num_milliseconds(),
            },
            fresh: Freshness {
                max_age_ms: secs(self.location_max_age_secs).num_milliseconds(),
                max_skew_ms: secs(self.location_max_skew_secs).num_milliseconds(),
            },
            default_speed: self.eta_default_speed_mps,
            sample_every_ms: secs(self.track_sample_secs).num_milliseconds(),
            retention: secs(self.track_retention_secs),
            max_shippers: self.actor_max_live,
        }
    }

    /// The zone reports count days in (validated at load; UTC otherwise).
    pub fn report_zone(&self) -> ReportZone {
        self.report_time_zone.parse().unwrap_or_default()
    }

    pub fn fee_table(&self) -> FeeTable {
        FeeTable {
            distance: self.shipping_distance_fees.clone(),
            weight: self.shipping_weight_fees.clone(),
            per_extra_kg: self.shipping_fee_per_extra_kg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn precedence_is_flag_env_file_default() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("surge.toml", "addr = \"127.0.0.1:1111\"\ndata_dir = \"/file\"\nsnapshot_every = 7\nlog = \"warn\"")?;
            jail.set_env("SURGE_DATA_DIR", "/env");
            jail.set_env("SURGE_LOG", "debug");
            // Empty turns the metrics listener off.
            jail.set_env("SURGE_METRICS_ADDR", "");
            let s = Settings::load(
                Some(Path::new("surge.toml")),
                Overrides {
                    addr: Some("127.0.0.1:2222".into()),
                    ..Overrides::default()
                },
            )
            .unwrap();
            assert_eq!(s.addr, "127.0.0.1:2222", "flag beats env and file");
            assert_eq!(s.data_dir, PathBuf::from("/env"), "env beats file");
            assert_eq!(s.log, "debug", "env beats file");
            assert_eq!(s.snapshot_every, 7, "file beats default");
            assert_eq!(s.metrics_addr, "", "an empty value is a value");
            assert_eq!(s.journal_max_batch, 1024, "default");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn rejects_bad_values_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "adr = \"127.0.0.1:1\"")?;
            assert!(Settings::load(Some(Path::new("typo.toml")), Overrides::default()).is_err());
            jail.create_file("bad.toml", "addr = \"localhost\"")?;
            let err =
                Settings::load(Some(Path::new("bad.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("HOST:PORT"), "{err}");
            assert!(Settings::load(Some(Path::new("missing.toml")), Overrides::default()).is_err());
            jail.create_file(
                "providers.toml",
                "payment_providers = [\"cod\", \"bitcoin\"]",
            )?;
            let err = Settings::load(Some(Path::new("providers.toml")), Overrides::default())
                .unwrap_err();
            assert!(err.to_string().contains("bitcoin"), "{err}");
            jail.create_file("payos.toml", "payment_providers = [\"payos\"]")?;
            assert!(
                Settings::load(Some(Path::new("payos.toml")), Overrides::default()).is_err(),
                "payos needs credentials"
            );
            jail.create_file(
                "fees.toml",
                "shipping_distance_fees = [[10.0, 1], [5.0, 2]]",
            )?;
            assert!(
                Settings::load(Some(Path::new("fees.toml")), Overrides::default()).is_err(),
                "brackets must ascend"
            );
            for (text, why) in [
                (
                    "metrics_token = \"short\"",
                    "metrics_token must be at least 32 characters",
                ),
                ("media_store = \"s3\"", "needs media_s3_bucket"),
                ("media_store = \"ftp\"", "disk or s3"),
                ("media_max_bytes = 10", "1 KiB"),
                ("media_max_pixels = 0", "media_max_pixels"),
            ] {
                let err = Settings::from_toml(text).unwrap_err();
                assert!(err.to_string().contains(why), "{text}: {err}");
            }
            let s3 = "media_store = \"s3\"\nmedia_s3_bucket = \"b\"";
            assert!(Settings::from_toml(s3).is_ok());
            jail.set_env("SURGE_JWT_SECRET", "short");
            assert!(Settings::load(None, Overrides::default()).is_err());
            Ok(())
        });
    }
}
