//! Settings. Every key can come from a command-line flag (for the few that
//! have one), the environment (`SURGE_<KEY>`), a TOML file (`--config`), or
//! the default — in that order of precedence.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::pricing::{check_fee_table, FeeTable};
use crate::domain::zone::ReportZone;

mod defaults;
mod reference;
mod validate;
pub use defaults::KEYS;
pub use reference::reference;
pub use validate::{advertised, parse_consistency, TlsFiles};

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
