//! `Application::build(settings)` → `port()` → `run_until_stopped(signal)`:
//! how `surge serve` and every integration test start the engine.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::actors::Runtime;
use crate::auth::{JwtKeys, PasswordHasher};
use crate::cluster::{Cluster, ClusterConfig};
use crate::config::{Settings, StoreKind};
use crate::http::router;
use crate::http::server::{serve, ServeOptions};
use crate::http::state::AppState;
use crate::live::Bus;
use crate::mail::MailConfig;
use crate::metrics::Metrics;
use crate::payments::payos::PayOsConfig;
use crate::service::account::auth::ResetConfig;
use crate::service::CommerceConfig;
use crate::service::{GatewayConfig, ServiceConfig, Services};
use crate::store::postgres::PostgresStore;
use crate::store::redb::{RedbOptions, RedbStore};
use crate::store::scylla::ScyllaStore;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("data directory {0}: {1}")]
    DataDir(String, String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("start-up: {0}")]
    Startup(String),
}

pub struct Application {
    listener: TcpListener,
    /// `/metrics` on its own (`metrics_addr`), when set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    settings: Settings,
    store: Arc<dyn Store>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    /// Cluster mode: this node's membership and its inter-node listener.
    cluster: Option<(Arc<Cluster>, TcpListener, Vec<u8>)>,
    /// Cluster mode: live events to and from the other nodes.
    relay: Option<Arc<crate::cluster::relay::RedisRelay>>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let dir = settings.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| BuildError::DataDir(dir.display().to_string(), e.to_string()))?;
        let metrics = Arc::new(Metrics::new());
        let store = open_store(&settings, &dir, metrics.clone()).await?;
        let secret = jwt_secret(&settings, &dir)?;
        let jwt = JwtKeys::new(
            &secret,
            &settings.jwt_issuer,
            &settings.jwt_audience,
            settings.access_token_ttl_secs,
            settings.refresh_token_ttl_secs,
        );
        let hasher = PasswordHasher::with_cost(
            settings.hash_concurrency,
            settings.hash_queue,
            settings.hash_memory_kib,
            settings.hash_iterations,
        )
        .map_err(|e| BuildError::Startup(e.to_string()))?;
        let cluster = match settings.cluster {
            true => Some(join_cluster(&settings, &secret, store.clone(), metrics.clone()).await?),
            false => None,
        };
        let mut rt = runtime(&settings, store.clone(), metrics.clone());
        rt.cluster = cluster.as_ref().map(|(c, _, _)| c.clone());
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let relay = match (&rt.cluster, &settings.redis_url) {
            (Some(c), Some(url)) => Some(
                crate::cluster::relay::RedisRelay::start(
                    url,
                    c.node(),
                    &rt.bus,
                    metrics.clone(),
                    c.departures(),
                    shutdown.clone(),
                )
                .await
                .map_err(|e| BuildError::Startup(e.to_string()))?,
            ),
            _ => None,
        };
        let listener = listen(&settings.addr, settings.listen_backlog)
            .map_err(|e| BuildError::Listen(settings.addr.clone(), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| BuildError::Listen(settings.addr.clone(), e))?;
        let metrics_listener = match settings.metrics_addr.trim() {
            "" => None,
            addr => Some(listen(addr, 128).map_err(|e| BuildError::Listen(addr.to_owned(), e))?),
        };
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"))
            .trim_end_matches('/')
            .to_owned();
        let media = crate::media::MediaStore::open(&settings)
            .map_err(|e| BuildError::Startup(format!("media store: {e}")))?;
        let services = Arc::new(
            Services::start(
                rt,
                hasher,
                jwt,
                service_config(&settings, &secret, &public_url, local, media),
            )
            .await
            .map_err(|e| BuildError::Startup(e.to_string()))?,
        );
        if let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) {
            services
                .auth
                .ensure_admin(email, password)
                .await
                .map_err(|e| BuildError::Startup(format!("bootstrap admin: {e}")))?;
        }
        let ws = Arc::new(crate::http::ws::Gate::new(
            origin_of(&public_url),
            settings.ws_allowed_origins.clone(),
            settings.ws_max_connections_per_user.max(1),
        ));
        let client_ip_header = settings
            .client_ip_header
            .as_deref()
            .and_then(|h| axum::http::HeaderName::try_from(h).ok());
        let state = AppState {
            client_ip_header,
            services,
            metrics,
            shutting_down: Arc::new(AtomicBool::new(false)),
            shutdown,
            ws,
            metrics_token: settings.metrics_token.as_ref().map(|t| {
                use sha2::Digest;
                sha2::Sha256::digest(t.as_bytes()).into()
            }),
            demo: Arc::default(),
        };
        Ok(Application {
            listener,
            metrics_listener,
            state,
            shutdown_tx,
            settings,
            store,
            cluster,
            relay,
        })
    }

    /// The bound port (useful with `addr = "127.0.0.1:0"`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The metrics listener's bound port, if it has one.
    pub fn metrics_port(&self) -> Option<u16> {
        let l = self.metrics_listener.as_ref()?;
        l.local_addr().ok().map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops what `build` started, without having served: every actor,
    /// the live-event relay, then the journal (flushed). For the commands
    /// that open the store to do one thing (`surge admin create`,
    /// `surge reindex`).
    pub async fn close(self) {
        self.state.services.shutdown().await;
        if let Some(relay) = &self.relay {
            relay.close().await;
        }
        self.store.close().await;
    }

    /// Serves until `shutdown` resolves, then: stop accepting, finish
    /// in-flight requests, stop every actor, flush the journal.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        let app = router(
            self.state.clone(),
            self.settings.body_limit_bytes,
            Duration::from_secs(self.settings.request_timeout_secs.max(1)),
        );
        let opts = ServeOptions {
            header_read_timeout: Duration::from_secs(self.settings.header_read_timeout_secs.max(1)),
            keep_alive_idle: Duration::from_secs(self.settings.keep_alive_idle_secs.max(1)),
            max_connections: self.settings.max_connections,
            max_connections_per_ip: self.settings.max_connections_per_ip.max(1),
            send_buffer: self.settings.socket_send_buffer_bytes,
            grace: Duration::from_secs(self.settings.shutdown_grace_secs),
        };
        let scheduler = tokio::spawn(self.state.services.fulfilment.clone().run_scheduler(
            Duration::from_millis(self.settings.timer_interval_ms),
            self.state.shutdown.clone(),
        ));
        let mailer = tokio::spawn(
            self.state
                .services
                .mailer
                .clone()
                .run(Duration::from_millis(500), self.state.shutdown.clone()),
        );
        let indexer = tokio::spawn(self.state.services.search.clone().run_indexer(
            Duration::from_millis(self.settings.search_refresh_ms.max(10)),
            self.state.shutdown.clone(),
        ));
        let behavior = tokio::spawn(self.state.services.behavior.clone().run(
            Duration::from_millis(self.settings.behavior_flush_ms.max(10)),
            self.state.shutdown.clone(),
        ));
        let alerts = tokio::spawn(
            self.state
                .services
                .inventory
                .clone()
                .run_alerts(Duration::from_millis(500), self.state.shutdown.clone()),
        );
        let stats = tokio::spawn(self.state.services.stats.clone().run(
            Duration::from_millis(self.settings.stats_interval_ms.max(10)),
            self.state.shutdown.clone(),
        ));
        let queue_work = tokio::spawn(self.state.services.queue_work.clone().run_queue_work(
            Duration::from_millis(self.settings.timer_interval_ms),
            self.state.shutdown.clone(),
        ));
        // Cluster mode: lease rounds, and forwarded commands served until
        // this node has handed its shards over.
        let (peers_stop, peers_stopped) = tokio::sync::watch::channel(false);
        // Leases are renewed until the HTTP server has finished its
        // requests; from the shutdown signal on the node is draining (it
        // takes no shard and hands some over each round).
        let (rounds_stop, rounds_stopped) = tokio::sync::watch::channel(false);
        let cluster = self.cluster.map(|(cluster, listener, secret)| {
            let rounds = tokio::spawn(cluster.clone().run(rounds_stopped));
            let peers = tokio::spawn(crate::cluster::wire::serve(
                listener,
                Arc::downgrade(&cluster),
                secret,
                cluster.transport().clone(),
                peers_stopped,
            ));
            (cluster, rounds, peers)
        });
        let flag = self.state.shutting_down.clone();
        let sessions = self.shutdown_tx;
        let draining = cluster.as_ref().map(|(c, _, _)| c.clone());
        let signal = async move {
            shutdown.await;
            if let Some(c) = &draining {
                c.begin_drain();
            }
            flag.store(true, Ordering::Release);
            sessions.send_replace(true);
            tracing::info!("shutdown: no longer accepting connections");
        };
        // `/metrics` on its own listener, with the same deadlines, until
        // shutdown begins.
        let metrics = self.metrics_listener.map(|listener| {
            let mut stopping = self.state.shutdown.clone();
            let app = crate::http::metrics_router(self.state.clone());
            let opts = ServeOptions {
                max_connections: 64,
                max_connections_per_ip: 64,
                ..opts
            };
            tokio::spawn(serve(listener, app, opts, async move {
                let _ = stopping.wait_for(|s| *s).await;
            }))
        });
        serve(self.listener, app, opts, signal).await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        let _ = scheduler.await;
        let _ = mailer.await;
        let _ = alerts.await;
        let _ = stats.await;
        let _ = queue_work.await;
        let _ = indexer.await;
        let _ = behavior.await;
        if let Some((cluster, rounds, peers)) = cluster {
            rounds_stop.send_replace(true);
            let _ = rounds.await;
            // Actors of every shard stopped, appends flushed, leases
            // released: the other nodes take the shards over at once.
            cluster.drain().await;
            // Other nodes learn the new owners at their next round; until
            // then what they forward here is answered "moved" (not run),
            // not cut off with an unknown outcome.
            tokio::time::sleep(2 * cluster.renew_every()).await;
            peers_stop.send_replace(true);
            let _ = peers.await;
        }
        self.state.services.shutdown().await;
        if let Some(relay) = &self.relay {
            relay.close().await;
        }
        self.store.close().await;
        tracing::info!("shutdown complete: journal flushed");
    }
}

/// Opens the configured journal store.
async fn open_store(
    settings: &Settings,
    dir: &Path,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn Store>, BuildError> {
    Ok(match settings.store {
        StoreKind::Embedded => Arc::new(
            RedbStore::open(
                dir,
                RedbOptions {
                    max_batch: settings.journal_max_batch,
                    queue: settings.journal_queue,
                },
                metrics,
            )
            .map_err(|e| match e {
                crate::store::StoreError::Backend(m) if m.contains("already open") => {
                    BuildError::Startup(format!(
                        "the data directory {} is in use by another Surge process",
                        dir.display()
                    ))
                }
                other => BuildError::Store(other),
            })?,
        ),
        StoreKind::Scylla => Arc::new(ScyllaStore::open(&settings.scylla(), metrics).await?),
        StoreKind::Postgres => {
            let options = settings
                .postgres()
                .map_err(|e| BuildError::Startup(e.to_string()))?;
            Arc::new(PostgresStore::open(&options, metrics).await?)
        }
    })
}

/// Joins the cluster: binds the inter-node listener, checks the store can
/// fence and the shard count matches, and takes this node's first shards
/// (one lease round) before the node serves anything.
async fn join_cluster(
    settings: &Settings,
    secret: &[u8],
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Cluster>, TcpListener, Vec<u8>), BuildError> {
    let config = |e: crate::config::ConfigError| BuildError::Startup(e.to_string());
    let (listen, mut advertise) = settings.cluster_advertised().map_err(config)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| BuildError::Listen(listen.to_string(), e))?;
    if settings.cluster_advertise.is_none() && listen.port() == 0 {
        let bound = listener
            .local_addr()
            .map_err(|e| BuildError::Listen(listen.to_string(), e))?;
        advertise = bound.to_string();
    }
    let cluster_secret = derive_secret(secret, b"cluster");
    let transport = match settings.cluster_tls_files().map_err(config)? {
        Some(files) => crate::cluster::tls::Transport::tls(&files).map_err(BuildError::Startup)?,
        None => {
            tracing::warn!(
                "cluster_plaintext: the inter-node channel is not encrypted (development only)"
            );
            crate::cluster::tls::Transport::Plain
        }
    };
    let cluster = Cluster::new(
        ClusterConfig {
            node: settings.node_id().map_err(config)?,
            advertise,
            shards: settings.shards,
            lease_ttl: Duration::from_millis(settings.lease_ttl_ms),
            renew_every: settings.lease_renew(),
            secret: cluster_secret.clone(),
            transport,
        },
        store,
        metrics,
    )
    .await
    .map_err(|e| BuildError::Startup(e.to_string()))?;
    if let Err(e) = cluster.round().await {
        tracing::warn!(error = %e, "first lease round failed; retrying in the background");
    }
    Ok((cluster, listener, cluster_secret))
}

/// The actors' runtime as configured.
fn runtime(settings: &Settings, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Runtime {
    Runtime {
        store,
        metrics,
        idle_after: Duration::from_secs(settings.actor_idle_secs.max(1)),
        call_timeout: Duration::from_millis(settings.actor_call_timeout_ms),
        snapshot_every: settings.snapshot_every,
        max_live: settings.actor_max_live,
        max_pending: settings.actor_max_pending.max(1),
        bus: Arc::new(Bus::new(1024)),
        instance: uuid::Uuid::new_v4().simple().to_string(),
        cluster: None,
    }
}

/// What the use cases are configured with; secrets not set explicitly are
/// derived from the token secret.
fn service_config(
    settings: &Settings,
    secret: &[u8],
    public_url: &str,
    local: std::net::SocketAddr,
    media: crate::media::MediaStore,
) -> ServiceConfig {
    let payos = match (
        &settings.payos_client_id,
        &settings.payos_api_key,
        &settings.payos_checksum_key,
    ) {
        (Some(client_id), Some(api_key), Some(checksum_key)) => Some(PayOsConfig {
            client_id: client_id.clone(),
            api_key: api_key.clone(),
            checksum_key: checksum_key.clone(),
            base_url: settings.payos_base_url.clone(),
            return_url: format!("{public_url}/"),
            cancel_url: format!("{public_url}/"),
        }),
        _ => None,
    };
    ServiceConfig {
        commerce: CommerceConfig {
            fees: settings.fee_table(),
            tax_bps: settings.tax_rate_bps,
            payment_timeout: chrono::Duration::seconds(settings.payment_timeout_secs as i64),
            return_window_secs: settings.return_window_secs,
            report_zone: settings.report_zone(),
        },
        gateways: GatewayConfig {
            secret: match &settings.sandbox_webhook_secret {
                Some(s) => s.as_bytes().to_vec(),
                None => derive_secret(secret, b"sandbox-webhook"),
            },
            public_url: public_url.to_owned(),
            webhook_addr: local,
            payos,
            enabled: settings.payment_providers.clone(),
        },
        tracking: settings.tracking(),
        mail: MailConfig {
            smtp_url: settings.smtp_url.clone(),
            from: settings.mail_from.clone(),
            dir: settings.data_dir.join("mail"),
        },
        burst: crate::service::queue::queues::BurstConfig {
            max_pending: settings.burst_max_pending.max(1),
            max_waitlist: settings.burst_max_waitlist,
            parts: match settings.burst_queue_parts {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                n => n,
            },
            min_units_per_part: match settings.burst_queue_parts {
                0 => crate::service::queue::queues::AUTO_UNITS_PER_PART,
                _ => 1,
            },
        },
        search: crate::service::products::search::SearchConfig {
            dir: settings.data_dir.join("search"),
        },
        media,
        behavior: crate::service::products::behavior::BehaviorConfig {
            half_life_ms: settings.trending_half_life_secs as i64 * 1000,
            // One node alone names its rows `local`.
            node: match settings.cluster {
                true => settings.node_id().unwrap_or_else(|_| "local".into()),
                false => "local".into(),
            },
        },
        reviews: crate::domain::review::ReviewPolicy {
            auto_approve: settings.review_moderation == crate::config::ReviewModeration::Auto,
            report_threshold: settings.review_report_threshold,
            edit_window_secs: settings.review_edit_window_secs.min(10 * 365 * 86_400),
        },
        throttles: crate::auth::ThrottleConfig {
            login_per_ip_per_minute: settings.login_attempts_per_ip_per_minute,
            login_per_account_per_hour: settings.login_attempts_per_account_per_hour,
            forgot_per_ip_per_hour: settings.password_resets_per_ip_per_hour,
            register_per_ip_per_hour: settings.registrations_per_ip_per_hour,
            reports_per_account_per_hour: settings.review_reports_per_account_per_hour,
            uploads_per_account_per_minute: settings.media_uploads_per_account_per_minute,
        },
        reset: ResetConfig {
            key: derive_secret(secret, b"password-reset"),
            ttl: chrono::Duration::seconds(settings.otp_ttl_secs.min(86_400 * 30) as i64),
            max_attempts: settings.otp_max_attempts.max(1),
            max_per_day: settings.reset_codes_per_account_per_day,
        },
    }
}

/// scheme://host[:port] of a URL, without a path: the page's own origin.
fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

/// Binds `addr` with a listen backlog of `backlog` (the kernel caps it at
/// `net.core.somaxconn`): a burst of new connections waits in the backlog
/// instead of having its SYNs dropped and retried seconds later.
fn listen(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

/// A secret for another purpose, derived from `root` (HMAC-SHA256).
fn derive_secret(root: &[u8], purpose: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(root).expect("any key length");
    mac.update(purpose);
    hex::encode(mac.finalize().into_bytes()).into_bytes()
}

/// The configured JWT secret, or the one kept in `data_dir/jwt.secret`
/// (generated with 64 random bytes, mode 0600, on first start).
fn jwt_secret(settings: &Settings, dir: &Path) -> Result<Vec<u8>, BuildError> {
    if let Some(s) = &settings.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = dir.join("jwt.secret");
    let err = |e: std::io::Error| BuildError::DataDir(path.display().to_string(), e.to_string());
    if !path.exists() {
        let mut bytes = [0u8; 64];
        rand::rng().fill_bytes(&mut bytes);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, STANDARD.encode(bytes).as_bytes()).map_err(err)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e)),
        }
    }
    let text = std::fs::read_to_string(&path).map_err(err)?;
    STANDARD.decode(text.trim()).map_err(|e| {
        BuildError::DataDir(
            path.display().to_string(),
            format!("not a valid secret: {e}"),
        )
    })
}
