//! The `surge` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use surge::app::Application;
use surge::config::{LogFormat, Overrides, Settings, StoreKind};
use surge::store::postgres::schema as postgres_schema;
use surge::store::scylla::schema as scylla_schema;

/// mimalloc instead of glibc's malloc: under a burst a fifth of the CPU was
/// glibc's allocator (`malloc_consolidate`, `_int_free`: perf, bench/README).
/// Its 2.x line (feature `v2`): the 3.x default measured ~40 % higher
/// burst p99 on the same code (bench/README, "burst — 2026-11-30, afternoon").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "surge",
    version,
    about = "Surge: an actor-based real-time commerce engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API on --addr, data in --data-dir (embedded store, no external service needed).
    #[command(
        long_about = "Run the engine: HTTP API on --addr, data in --data-dir (embedded redb store; no external service needed).

Every setting can also come from the environment (SURGE_<KEY>, e.g. SURGE_ADDR, SURGE_SNAPSHOT_EVERY) or from a TOML file given with --config; precedence is flag > environment > file > default. docs/configuration.md lists every key."
    )]
    Serve {
        /// Address to listen on, HOST:PORT [env: SURGE_ADDR] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Directory for the embedded store and the generated JWT secret [env: SURGE_DATA_DIR] [default: ./data]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// TOML file with settings (keys as in docs/configuration.md)
        #[arg(long, value_name = "FILE", env = "SURGE_CONFIG")]
        config: Option<PathBuf>,
        /// Storage backend [env: SURGE_STORE] [default: embedded]
        #[arg(long, value_enum)]
        store: Option<StoreKind>,
        /// ScyllaDB contact points, HOST:PORT,... [env: SURGE_SCYLLA_NODES] [default: 127.0.0.1:9042]
        #[arg(long, value_name = "HOST:PORT,...")]
        scylla_nodes: Option<String>,
        /// PostgreSQL URL for --store postgres [env: SURGE_POSTGRES_URL]
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
    },
    /// Run the engine with demo data: a shop, a trainer, a flash sale, a free
    /// course, customers and simulated shippers; prints the logins and the URL.
    Demo {
        /// Address to listen on, HOST:PORT [env: SURGE_ADDR] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Directory for the demo's embedded store
        #[arg(long, value_name = "DIR", default_value = "./demo-data")]
        data_dir: PathBuf,
    },
    /// Apply pending migrations to the configured store and record them: schema/scylla/*.cql to the ScyllaDB keyspace, schema/postgres/*.sql to the PostgreSQL schema.
    Migrate {
        /// TOML file with settings (keys as in docs/configuration.md)
        #[arg(long, value_name = "FILE", env = "SURGE_CONFIG")]
        config: Option<PathBuf>,
        /// The store to migrate: scylla or postgres [env: SURGE_STORE]
        #[arg(long, value_enum)]
        store: Option<StoreKind>,
        /// ScyllaDB contact points, HOST:PORT,... [env: SURGE_SCYLLA_NODES] [default: 127.0.0.1:9042]
        #[arg(long, value_name = "HOST:PORT,...")]
        scylla_nodes: Option<String>,
        /// PostgreSQL URL [env: SURGE_POSTGRES_URL]
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
    },
    /// Accounts: make the first admin without editing settings.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Rebuild this node's search index from the catalog's read tables (the server stopped: the index is locked while it runs).
    Reindex {
        /// TOML file with settings (keys as in docs/configuration.md)
        #[arg(long, value_name = "FILE", env = "SURGE_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the embedded store and of this node's index [env: SURGE_DATA_DIR]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Take an online backup of a running server's embedded store, as an admin (the password read from the first line of standard input), into a file or s3://bucket/key (AWS_* environment). Nothing is kept unless the whole backup came.
    Backup {
        /// The server
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An admin's email
        #[arg(long)]
        email: String,
        /// A file, or s3://bucket/key
        #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
        to: String,
    },
    /// Restore a backup (a file or s3://bucket/key) into an empty data directory; then `surge serve --data-dir DIR` (the search index is rebuilt at start).
    Restore {
        /// A file, or s3://bucket/key
        #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
        from: String,
        /// The data directory to fill (it must hold no store)
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Settings: the reference of every key.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Cluster mode: what the shared store says about the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Development only: an in-memory CQL server (kassandra) to run `--store scylla` against, with scylla_emulator=true and scylla_lwt=false.
    #[cfg(feature = "cql-emulator")]
    CqlEmulator {
        /// Address to listen on
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9042")]
        addr: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account with EMAIL (or make that account an admin), its password read from the first line of standard input. With the embedded store, run it while the server is stopped (the store is locked while it runs); with a shared store, any time, with the servers' settings.
    Create {
        /// The admin's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// TOML file with settings (keys as in docs/configuration.md)
        #[arg(long, value_name = "FILE", env = "SURGE_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the embedded store [env: SURGE_DATA_DIR]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print docs/configuration.md: every key with its default and meaning, from the settings' doc comments.
    Reference,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members (address, live/silent/draining, shards held, highest epoch, last heartbeat), shards held by nobody, and whether Redis answers.
    Status {
        /// TOML file with settings (keys as in docs/configuration.md)
        #[arg(long, value_name = "FILE", env = "SURGE_CONFIG")]
        config: Option<PathBuf>,
        /// The shared store: postgres or scylla [env: SURGE_STORE]
        #[arg(long, value_enum)]
        store: Option<StoreKind>,
        /// PostgreSQL URL [env: SURGE_POSTGRES_URL]
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
        /// ScyllaDB contact points, HOST:PORT,... [env: SURGE_SCYLLA_NODES]
        #[arg(long, value_name = "HOST:PORT,...")]
        scylla_nodes: Option<String>,
    },
    /// A new cluster CA and the node certificate every node presents on the inter-node channel: writes ca.pem, node.pem and node.key into DIR (for cluster_tls_ca, cluster_tls_cert, cluster_tls_key). The CA's key is not kept; to rotate, run again and roll the files out.
    Certs {
        /// Directory to write the three files into (created if missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The name in the certificate: cluster_tls_name on every node
        #[arg(long, default_value = "surge-cluster")]
        name: String,
        /// Days the CA and the certificate are valid
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

/// Logs to stdout, filtered by `RUST_LOG` or `default`; as JSON lines
/// (each with its span's fields: the request id) when `format` says so.
fn init_logging(default: &str, format: LogFormat) {
    init_tracing(default, format, None);
}

/// Logging as [`init_logging`], and with `otlp_endpoint` set, the
/// `surge` spans (debug and up) exported as traces; the provider to flush
/// at exit.
fn init_tracing(
    default: &str,
    format: LogFormat,
    settings: Option<&Settings>,
) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::prelude::*;
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer().with_target(false);
    let logs: Boxed = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = settings.and_then(|s| {
        let endpoint = s.otlp_endpoint.as_deref()?;
        let node = s.node_id().unwrap_or_else(|_| "surge".into());
        match surge::telemetry::provider(endpoint, &node, s.otlp_sample_ratio) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("traces off: {e}");
                None
            }
        }
    });
    let traces = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("surge"))
            .with_filter(tracing_subscriber::EnvFilter::new("surge=debug"))
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    provider
}

/// The configured log filter; against the emulator, without the driver's
/// complaints (every second) that it has no peers, shards or metadata.
fn log_filter(settings: &Settings) -> String {
    if settings.scylla_emulator {
        format!(
            "{},scylla=error,scylla::cluster::metadata=off",
            settings.log
        )
    } else {
        settings.log.clone()
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `surge demo`: a server on the embedded store, seeded once, with its
/// simulated people.
async fn demo(addr: Option<String>, data_dir: PathBuf) -> anyhow::Result<()> {
    let mut settings = Settings::load(
        None,
        Overrides {
            addr,
            data_dir: Some(data_dir),
            store: Some(StoreKind::Embedded),
            ..Overrides::default()
        },
    )?;
    // The demo's simulated people all log in from this machine's
    // loopback address: the per-address login and registration
    // throttles would slow them, not an attacker.
    settings.login_attempts_per_ip_per_minute = 0;
    settings.registrations_per_ip_per_hour = 0;
    // An admin to moderate reviews with (bootstrapped at start).
    settings.admin_email = Some(surge::demo::ADMIN_EMAIL.into());
    settings.admin_password = Some(surge::demo::PASSWORD.into());
    init_logging(&log_filter(&settings), settings.log_format);
    let data_dir = settings.data_dir.clone();
    let public = settings.public_url.clone();
    let app = Application::build(settings)
        .await
        .context("starting Surge")?;
    let port = app.port();
    let slot = app.state().demo.clone();
    let server = tokio::spawn(app.run_until_stopped(shutdown_signal()));
    let base = format!("http://127.0.0.1:{port}");
    let seeded = surge::demo::start(&base, &data_dir)
        .await
        .context("seeding the demo")?;
    slot.set(serde_json::to_value(&seeded)?).ok();
    let url = public.unwrap_or_else(|| base.clone());
    println!("\nSurge demo: open {url}/  (API docs: {url}/docs)\n");
    println!("Password for every account: {}", seeded.password);
    for l in seeded.logins.iter().filter(|l| !l.simulated) {
        println!("  {:<9} {}", l.role, l.email);
    }
    println!("Simulated: An orders whenever nothing is on its way, a merchant confirms, shippers deliver.\n");
    server.await?;
    Ok(())
}

/// `surge migrate`: applies the migrations the configured store lacks.
async fn migrate(config: Option<PathBuf>, flags: Overrides) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), flags)?;
    init_logging(&log_filter(&settings), settings.log_format);
    let (place, applied, latest) = match settings.store {
        StoreKind::Embedded => anyhow::bail!(
            "the embedded store needs no migration: `surge migrate` is for store = scylla or postgres (set SURGE_STORE or --store)"
        ),
        StoreKind::Scylla => {
            let options = settings.scylla();
            let session = surge::store::scylla::connect(&options).await?;
            let applied =
                scylla_schema::migrate(&session, &options.keyspace, &options.replication).await?;
            (
                format!("keyspace {}", options.keyspace),
                applied,
                scylla_schema::latest(),
            )
        }
        StoreKind::Postgres => {
            let options = settings.postgres()?;
            let pool = surge::store::postgres::pool(&options)?;
            let mut client = pool.get().await.context("connecting to PostgreSQL")?;
            let applied = postgres_schema::migrate(&mut client, &options.schema).await?;
            (
                format!("PostgreSQL schema {}", options.schema),
                applied,
                postgres_schema::latest(),
            )
        }
    };
    if applied.is_empty() {
        println!("{place} is up to date (schema version {latest})");
    } else {
        println!(
            "{place}: applied {} (schema version {latest})",
            applied.join(", ")
        );
    }
    Ok(())
}

/// A password, from the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The settings of a command that opens the store without serving: no
/// listener anyone reaches, no cluster membership (it takes no shard).
fn offline_settings(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(
        config.as_deref(),
        Overrides {
            data_dir,
            ..Overrides::default()
        },
    )?;
    init_logging(&log_filter(&settings), settings.log_format);
    settings.addr = "127.0.0.1:0".into();
    settings.metrics_addr = String::new();
    settings.cluster = false;
    Ok(settings)
}

/// `surge cluster status`.
async fn cluster_status(config: Option<PathBuf>, flags: Overrides) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), flags)?;
    init_logging("warn", LogFormat::Text);
    let metrics = std::sync::Arc::new(surge::metrics::Metrics::new());
    let store: std::sync::Arc<dyn surge::store::Store> = match settings.store {
        StoreKind::Postgres => std::sync::Arc::new(
            surge::store::postgres::PostgresStore::open(&settings.postgres()?, metrics)
                .await
                .context("opening the PostgreSQL store")?,
        ),
        StoreKind::Scylla => std::sync::Arc::new(
            surge::store::scylla::ScyllaStore::open(&settings.scylla(), metrics)
                .await
                .context("opening the ScyllaDB store")?,
        ),
        StoreKind::Embedded => anyhow::bail!(
            "cluster mode runs on store = postgres or scylla (set SURGE_STORE or --config)"
        ),
    };
    let report = surge::cluster::status_report(
        store.as_ref(),
        settings.redis_url.as_deref(),
        std::time::Duration::from_millis(settings.lease_ttl_ms),
    )
    .await;
    store.close().await;
    print!("{}", report?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            addr,
            data_dir,
            config,
            store,
            scylla_nodes,
            postgres_url,
        } => {
            let settings = Settings::load(
                config.as_deref(),
                Overrides {
                    addr,
                    data_dir,
                    store,
                    scylla_nodes,
                    postgres_url,
                },
            )?;
            let traces = init_tracing(&log_filter(&settings), settings.log_format, Some(&settings));
            let data_dir = settings.data_dir.clone();
            let app = Application::build(settings)
                .await
                .context("starting Surge")?;
            tracing::info!(port = app.port(), data_dir = %data_dir.display(), "Surge is listening");
            app.run_until_stopped(shutdown_signal()).await;
            if let Some(traces) = traces {
                // The last spans out before the process ends.
                let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
            }
        }
        Command::Demo { addr, data_dir } => demo(addr, data_dir).await?,
        Command::Migrate {
            config,
            store,
            scylla_nodes,
            postgres_url,
        } => {
            migrate(
                config,
                Overrides {
                    store,
                    scylla_nodes,
                    postgres_url,
                    ..Overrides::default()
                },
            )
            .await?
        }
        Command::Cluster {
            command:
                ClusterCommand::Status {
                    config,
                    store,
                    postgres_url,
                    scylla_nodes,
                },
        } => {
            cluster_status(
                config,
                Overrides {
                    store,
                    postgres_url,
                    scylla_nodes,
                    ..Overrides::default()
                },
            )
            .await?
        }
        Command::Config {
            command: ConfigCommand::Reference,
        } => print!("{}", surge::config::reference()),
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    config,
                    data_dir,
                },
        } => {
            let password = read_password()?;
            let mut settings = offline_settings(config, data_dir)?;
            settings.admin_email = Some(email.clone());
            settings.admin_password = Some(password.to_owned());
            let app = Application::build(settings)
                .await
                .context("creating the admin")?;
            app.close().await;
            println!("{email} is an admin");
        }
        Command::Backup { server, email, to } => {
            init_logging("warn", LogFormat::Text);
            let password = read_password()?;
            let bytes = surge::operator::backup(&server, &email, &password, &to).await?;
            println!("backup of {server} in {to}: {bytes} bytes, checked");
        }
        Command::Restore { from, data_dir } => {
            init_logging("warn", LogFormat::Text);
            let restored = surge::operator::restore(&from, &data_dir).await?;
            println!(
                "restored {} rows ({} bytes) into {}",
                restored.records,
                restored.bytes,
                data_dir.display()
            );
        }
        Command::Reindex { config, data_dir } => {
            let app = Application::build(offline_settings(config, data_dir)?)
                .await
                .context("opening the store")?;
            let indexed = app.state().services.search.rebuild().await;
            app.close().await;
            println!("indexed {} products, shops and courses", indexed?);
        }
        Command::Cluster {
            command: ClusterCommand::Certs { dir, name, days },
        } => {
            let written = surge::cluster::tls::issue(&name, days)
                .and_then(|issued| issued.write(&dir))
                .map_err(anyhow::Error::msg)
                .context("issuing the cluster's certificates")?;
            for path in written {
                println!("{}", path.display());
            }
        }
        #[cfg(feature = "cql-emulator")]
        Command::CqlEmulator { addr } => {
            init_logging("info", LogFormat::Text);
            let emulator = surge::emulator::Emulator::start(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!(
                "CQL emulator (kassandra, in memory) on {}: run Surge with SURGE_STORE=scylla SURGE_SCYLLA_NODES={} SURGE_SCYLLA_EMULATOR=true SURGE_SCYLLA_LWT=false",
                emulator.addr, emulator.addr
            );
            tokio::select! {
                _ = emulator.wait() => {}
                _ = shutdown_signal() => {}
            }
        }
    }
    Ok(())
}
