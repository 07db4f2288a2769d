//! `surge-bench`: Surge's load scenarios, each measured beside its baselines
//! in the same invocation, on loopback only, bounded in count and time.
//! Reports go to `--out` as JSON, Markdown and SVG (see bench/README.md).

mod burst;
mod cluster;
mod connections;
mod fanout;
mod load;
mod mixed;
mod rawws;
mod recovery;
mod report;
mod search;
mod servers;
mod surge_api;
mod wrk;
mod wsclient;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The allocator the `surge` binary uses, for every server measured here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "surge-bench",
    about = "Surge's benchmarks, with baselines measured in the same run"
)]
struct Cli {
    /// Where reports are written
    #[arg(long, default_value = "bench/results", global = true)]
    out: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N clients claim one unit each of a flash sale with capacity C, at once:
    /// Surge, raw axum, Redis + Lua, PostgreSQL.
    Burst {
        #[arg(long, default_value_t = 5_000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        capacity: u32,
        /// Longest a burst may take before unanswered requests count as errors
        #[arg(long, default_value_t = 120)]
        time_limit_secs: u64,
        /// Targets to run (surge-k1, surge-k2, surge-k4: default settings
        /// with the sale's queue split over 1, 2, 4 parts)
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "surge,surge-no-waitlist,axum-noop,redis-lua,postgres"
        )]
        targets: Vec<String>,
        /// What sends the requests: wrk (external, `connections` keep-alive
        /// connections) and/or the in-process client (one connection per
        /// client, all released at once)
        #[arg(long, value_delimiter = ',', default_value = "wrk,in-process")]
        drivers: Vec<burst::Driver>,
        /// wrk's connections
        #[arg(long, default_value_t = 256)]
        connections: usize,
    },
    /// S shippers stream positions at R Hz, W watchers per order: Surge
    /// against a raw tokio-tungstenite broadcast server.
    Fanout {
        #[arg(long, default_value_t = 1_000)]
        shippers: usize,
        #[arg(long, default_value_t = 10.0)]
        hz: f64,
        #[arg(long, default_value_t = 10)]
        watchers: usize,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// surge, surge-cluster (two nodes: shippers on one, watchers on
        /// the other, through Redis), raw-broadcast
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "surge,surge-cluster,raw-broadcast"
        )]
        targets: Vec<String>,
    },
    /// K idle authenticated WebSockets: server RSS per connection and accept
    /// rate, Surge against bare tokio-tungstenite.
    Connections {
        #[arg(long, default_value_t = 100_000)]
        connections: usize,
        /// Loopback source addresses (127.0.0.1 … 127.0.0.N)
        #[arg(long, default_value_t = 4)]
        sources: usize,
        #[arg(long, value_delimiter = ',', default_value = "surge,raw-ws")]
        targets: Vec<String>,
    },
    /// Shoppers arrive at a target rate and browse, add to the cart, check
    /// out, pay on the sandbox gateway and track: p99 per command.
    Mixed {
        /// Journeys started per second
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 30)]
        duration_secs: u64,
        #[arg(long, default_value_t = 500)]
        shoppers: usize,
        /// The shared product's `stock_buckets` (1: not split)
        #[arg(long, default_value_t = 1)]
        stock_buckets: u32,
        /// Surge's store: embedded, or postgres (a private server)
        #[arg(long, default_value = "embedded")]
        store: surge::config::StoreKind,
    },
    /// Cluster mode on this machine: the flash-sale burst on 1 and on 3
    /// nodes (processes on one PostgreSQL and Redis), claims spread over
    /// the nodes; per-node CPU; a read at its owner against a forwarded one;
    /// then the mixed shopper journeys spread over the nodes.
    Cluster {
        #[arg(long, default_value_t = 5_000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        capacity: u32,
        /// Node counts to measure
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 120)]
        time_limit_secs: u64,
        /// Shopper journeys started per second (after the burst)
        #[arg(long, default_value_t = 50.0)]
        mixed_rate: f64,
        #[arg(long, default_value_t = 20)]
        mixed_duration_secs: u64,
        #[arg(long, default_value_t = 300)]
        mixed_shoppers: usize,
    },
    /// A generated catalog: index catch-up and rebuild time and size;
    /// search and suggestion latency under concurrent indexing, against the
    /// products listing's substring scan.
    Search {
        #[arg(long, default_value_t = 100_000)]
        products: usize,
        #[arg(long, default_value_t = 100)]
        shops: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// New products per second while the queries run
        #[arg(long, default_value_t = 50.0)]
        writes_per_sec: f64,
    },
    /// Start time against journal size; first reply of an entity with a long
    /// journal, replayed and from a snapshot.
    Recovery {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
    /// Every scenario with a small N, checking its invariants (part of the
    /// test command, so the tool cannot rot).
    Smoke,
    /// (internal) a server process for the scenarios that measure one
    #[command(hide = true)]
    ServeChild {
        kind: servers::ChildKind,
        #[arg(long)]
        settings: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Thousands of sockets: as many descriptors as the hard limit allows.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.scenario {
        Scenario::Burst {
            clients,
            capacity,
            time_limit_secs,
            targets,
            drivers,
            connections,
        } => {
            let p = burst::Params {
                clients,
                capacity,
                time_limit: Duration::from_secs(time_limit_secs),
                connections,
            };
            let report = burst::run(p, &targets, &drivers, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/burst.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Fanout {
            shippers,
            hz,
            watchers,
            duration_secs,
            targets,
        } => {
            let p = fanout::Params {
                shippers,
                hz,
                watchers,
                duration: Duration::from_secs(duration_secs),
            };
            let report = fanout::run(p, &targets, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/fanout.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Connections {
            connections,
            sources,
            targets,
        } => {
            let p = connections::Params {
                connections,
                sources,
            };
            let report = connections::run(p, &targets, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/connections.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Mixed {
            rate,
            duration_secs,
            shoppers,
            stock_buckets,
            store,
        } => {
            anyhow::ensure!(
                store != surge::config::StoreKind::Scylla,
                "mixed runs on the embedded store or postgres"
            );
            let p = mixed::Params {
                rate,
                duration: Duration::from_secs(duration_secs),
                shoppers,
                stock_buckets,
                postgres: store == surge::config::StoreKind::Postgres,
            };
            let report = mixed::run(p, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/mixed.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Cluster {
            clients,
            capacity,
            nodes,
            time_limit_secs,
            mixed_rate,
            mixed_duration_secs,
            mixed_shoppers,
        } => {
            let p = cluster::Params {
                clients,
                capacity,
                time_limit: Duration::from_secs(time_limit_secs),
                mixed: mixed::Params {
                    rate: mixed_rate,
                    duration: Duration::from_secs(mixed_duration_secs),
                    shoppers: mixed_shoppers,
                    stock_buckets: 1,
                    postgres: true,
                },
            };
            let (report, journeys) = cluster::run(p, &nodes, command).await?;
            report.write(&cli.out)?;
            journeys.write(&cli.out)?;
            println!(
                "wrote {}/cluster.{{md,json,svg}} and cluster-mixed.{{md,json,svg}}",
                cli.out.display()
            );
        }
        Scenario::Search {
            products,
            shops,
            clients,
            duration_secs,
            writes_per_sec,
        } => {
            let p = search::Params {
                products,
                shops,
                clients,
                duration: Duration::from_secs(duration_secs),
                writes_per_sec,
            };
            let (report, index) = search::run(p, command).await?;
            report.write(&cli.out)?;
            index.write(&cli.out)?;
            println!(
                "wrote {}/search{{,-index}}.{{md,json,svg}}",
                cli.out.display()
            );
        }
        Scenario::Recovery { events, repeats } => {
            let report = recovery::run(recovery::Params { events, repeats }, command).await?;
            report.write(&cli.out)?;
            println!("wrote {}/recovery.{{md,json,svg}}", cli.out.display());
        }
        Scenario::Smoke => {
            let out = cli.out.join("smoke");
            let p = burst::Params {
                clients: 200,
                capacity: 20,
                time_limit: Duration::from_secs(60),
                connections: 32,
            };
            // Every target; of the explicit splits the widest (the
            // default `surge` is split over the cores already).
            let all: Vec<String> = burst::TARGETS
                .iter()
                .filter(|t| !matches!(**t, "surge-k1" | "surge-k2" | "surge-postgres-no-waitlist"))
                .map(|t| t.to_string())
                .collect();
            let drivers = [burst::Driver::Wrk, burst::Driver::InProcess];
            let report = burst::run(p, &all, &drivers, command.clone()).await?;
            report.write(&out)?;
            burst::check_smoke(&report, p)?;

            let p = fanout::Params {
                shippers: 8,
                hz: 5.0,
                watchers: 2,
                duration: Duration::from_secs(3),
            };
            let all = ["surge", "surge-cluster", "raw-broadcast"].map(String::from);
            let report = fanout::run(p, &all, command.clone()).await?;
            report.write(&out)?;
            fanout::check_smoke(&report)?;

            let p = connections::Params {
                connections: 500,
                sources: 4,
            };
            let all = ["surge", "raw-ws"].map(String::from);
            let report = connections::run(p, &all, command.clone()).await?;
            report.write(&out)?;
            connections::check_smoke(&report, p.connections)?;

            let p = mixed::Params {
                rate: 10.0,
                duration: Duration::from_secs(3),
                shoppers: 20,
                // The smoke run checks out a split product end to end.
                stock_buckets: 2,
                postgres: false,
            };
            let report = mixed::run(p, command.clone()).await?;
            report.write(&out)?;
            mixed::check_smoke(&report)?;
            // And every journey on the PostgreSQL backend.
            let report = mixed::run(
                mixed::Params {
                    postgres: true,
                    ..p
                },
                command.clone(),
            )
            .await?;
            report.write(&out.join("postgres"))?;
            mixed::check_smoke(&report)?;

            // Cluster mode on 1 and 3 nodes.
            let p = cluster::Params {
                clients: 150,
                capacity: 20,
                time_limit: Duration::from_secs(60),
                mixed: mixed::Params {
                    rate: 10.0,
                    duration: Duration::from_secs(3),
                    shoppers: 20,
                    stock_buckets: 1,
                    postgres: true,
                },
            };
            let (report, journeys) = cluster::run(p, &[1, 3], command.clone()).await?;
            report.write(&out)?;
            journeys.write(&out)?;
            cluster::check_smoke(&report)?;
            mixed::check_smoke(&journeys)?;

            let p = search::Params {
                products: 2_000,
                shops: 10,
                clients: 8,
                duration: Duration::from_secs(2),
                writes_per_sec: 20.0,
            };
            let (report, index) = search::run(p, command.clone()).await?;
            report.write(&out)?;
            index.write(&out)?;
            search::check_smoke(&report)?;

            let p = recovery::Params {
                events: 1_000,
                repeats: 1,
            };
            let report = recovery::run(p, command.clone()).await?;
            report.write(&out)?;
            recovery::check_smoke(&report, p.events)?;

            println!("smoke: every scenario ran; reports in {}", out.display());
        }
        Scenario::ServeChild { kind, settings } => {
            servers::serve_child(kind, settings).await?;
        }
    }
    Ok(())
}
