//! `cluster`: Surge in cluster mode on this one machine. For each node
//! count (1 and 3 by default), that many `surge serve`-like processes on one
//! PostgreSQL and one redis-server; then
//! - the flash-sale burst: N customers claim one unit each, all released at
//!   once, each claim sent to the next node (so on 3 nodes about two in
//!   three are forwarded to the sale's owner): claims/s, latency, the
//!   commands forwarded per claim, each node's CPU time, oversold and lost checked against the
//!   store;
//! - the cost of forwarding: every customer's profile read, one at a time,
//!   from every node, split by whether that node owns the user's shard;
//! - the `mixed` shopper journeys (browse, cart, checkout, pay on the
//!   sandbox page, track), journey `i` entirely at node `i mod n`: latency
//!   per command, every journey completed (report `cluster-mixed`).
//!
//! Every node shares these two cores, so 3 nodes here cannot be faster
//! than 1; bench/README works out what 3 machines would do from the
//! per-node CPU and the forwarding cost measured here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::load::{burst, Burst};
use crate::report::{Goal, Report, Row};
use crate::servers::{child, ChildKind, Daemon};
use crate::surge_api::{call, customer, shop, surge_settings};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub clients: usize,
    pub capacity: u32,
    pub time_limit: Duration,
    /// The shopper journeys run on the same nodes after the burst.
    pub mixed: crate::mixed::Params,
}

const SHARDS: u32 = 64;

/// One node: its process and data directory.
pub struct Node {
    pub daemon: Daemon,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.daemon.port)
    }

    /// CPU seconds the process has used (user + system).
    fn cpu_secs(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return f64::NAN;
        };
        // Fields after the command name (which may hold spaces).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 (index 11, 12 here), in
        // clock ticks of 1/100 s.
        (ticks(11) + ticks(12)) / 100.0
    }
}

/// A private PostgreSQL with Surge's schema (in `surge`) and a redis-server.
pub async fn store_and_redis() -> anyhow::Result<(Daemon, Daemon)> {
    let pg = crate::servers::postgres().await?;
    let redis = crate::servers::redis().await?;
    let mut s = surge::config::Settings {
        postgres_url: format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port),
        postgres_schema: "surge".into(),
        ..Default::default()
    };
    s.store = surge::config::StoreKind::Postgres;
    let pool = surge::store::postgres::pool(&s.postgres()?)?;
    let mut client = pool.get().await.context("connecting to PostgreSQL")?;
    surge::store::postgres::schema::migrate(&mut client, "surge").await?;
    Ok((pg, redis))
}

/// `n` cluster nodes on `pg` and `redis` (each with the settings `base`
/// gives for its data directory), ready, placement settled.
pub async fn start_nodes(
    n: usize,
    base: impl Fn(&std::path::Path) -> surge::config::Settings,
    pg_port: u16,
    schema: &str,
    redis_port: u16,
) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    // One CA and node certificate for all: the inter-node channel is TLS.
    let tls = surge::cluster::tls::issue("surge-cluster", 1).map_err(anyhow::Error::msg)?;
    for i in 0..n {
        let dir = tempfile::tempdir()?;
        let mut s = base(dir.path());
        let [ca, cert, key] = tls
            .write(&dir.path().join("cluster-tls"))
            .map_err(anyhow::Error::msg)?;
        (s.cluster_tls_ca, s.cluster_tls_cert, s.cluster_tls_key) =
            (Some(ca), Some(cert), Some(key));
        s.store = surge::config::StoreKind::Postgres;
        s.postgres_url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
        s.postgres_schema = schema.into();
        // Four nodes' pools on one server of 200 connections.
        s.postgres_pool_size = 24;
        s.cluster = true;
        // One directory every node reads images from.
        s.media_dir = Some(std::env::temp_dir().join(format!("surge-bench-media-{schema}")));
        s.node_id = Some(format!("b{}", i + 1));
        s.cluster_addr = "127.0.0.1:0".into();
        s.shards = SHARDS;
        s.redis_url = Some(format!("redis://127.0.0.1:{redis_port}"));
        let daemon = child(ChildKind::Surge, Some(&s)).await?;
        let pid = daemon.pid().context("node pid")?;
        nodes.push(Node { daemon, pid, dir });
    }
    let client = crate::servers::http_client();
    let started = Instant::now();
    for node in &nodes {
        loop {
            let ready = client
                .get(format!("{}/readyz", node.base()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the nodes did not take their shards within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Placement settles once every node has joined: wait until each holds
    // the shards rendezvous hashing gives it.
    loop {
        let mut held = Vec::new();
        for node in &nodes {
            held.push(metric(&client, &node.base(), "surge_cluster_shards_held").await?);
        }
        let names: Vec<String> = (1..=n).map(|i| format!("b{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let want: Vec<f64> = names
            .iter()
            .map(|name| {
                (0..SHARDS)
                    .filter(|s| surge::cluster::owner_of(*s, &names) == Some(*name))
                    .count() as f64
            })
            .collect();
        if held == want {
            return Ok(nodes);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(90),
            "placement did not settle: {held:?} of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sum of a metric's samples (every label set) on one node.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = crate::surge_api::metrics_text(client, base).await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// What one node count measured.
struct Outcome {
    nodes: usize,
    burst: Burst,
    forwarded: f64,
    cpu: Vec<f64>,
    oversold: u64,
    lost: u64,
    local_ms: Vec<f64>,
    remote_ms: Vec<f64>,
    mixed: crate::mixed::Outcome,
}

async fn run_nodes(n: usize, p: Params) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    let (pg, redis) = store_and_redis().await?;
    let nodes = start_nodes(
        n,
        |dir| surge::config::Settings {
            sandbox_webhook_secret: Some(crate::mixed::SANDBOX_SECRET.into()),
            ..surge_settings(dir, p.clients.max(p.mixed.shoppers))
        },
        pg.port,
        "surge",
        redis.port,
    )
    .await?;
    let bases: Vec<String> = nodes.iter().map(Node::base).collect();
    let setup = crate::servers::http_client();
    let (merchant, _, product) = shop(&setup, &bases[0], p.capacity as u64).await?;
    let sale = call(
        &setup,
        reqwest::Method::POST,
        format!("{}/api/v1/flash-sales", bases[0]),
        Some(&merchant),
        json!({"product_id": product, "stock": p.capacity, "per_user_limit": 1, "price": 50_000}),
    )
    .await?;
    let sale_id = sale["id"].as_str().context("sale id")?.to_owned();
    let tokens: Vec<String> = futures::stream::iter(0..p.clients)
        .map(|i| {
            let (setup, base) = (setup.clone(), bases[i % n].clone());
            async move { customer(&setup, &base).await.map(|(t, _)| t) }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    // The welcome mails go out before the burst, not beside it.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sent: usize = nodes
            .iter()
            .map(|x| std::fs::read_dir(x.dir.path().join("mail")).map_or(0, |d| d.count()))
            .sum();
        if sent > p.clients {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{sent} welcome mails after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The burst: claim i to node i mod n, on a connection warmed there.
    let client = crate::servers::http_client_builder()
        .pool_max_idle_per_host(p.clients)
        .timeout(p.time_limit)
        .build()?;
    let warm = futures::future::join_all(
        (0..p.clients).map(|i| client.get(format!("{}/healthz", bases[i % n])).send()),
    )
    .await;
    ensure!(
        warm.iter().all(Result::is_ok),
        "warming the connections failed"
    );
    let mut forwarded_before = 0.0;
    for b in &bases {
        forwarded_before += metric(&setup, b, "surge_forwarded_commands_total").await?;
    }
    let cpu_before: Vec<f64> = nodes.iter().map(Node::cpu_secs).collect();
    let plan = Arc::new((tokens.clone(), bases.clone(), sale_id.clone()));
    let label = format!("cluster-{n}");
    let b = burst(p.clients, &label, p.time_limit, |i| {
        let (client, plan) = (client.clone(), plan.clone());
        async move {
            let (tokens, bases, sale) = &*plan;
            let r = client
                .post(format!(
                    "{}/api/v1/flash-sales/{sale}/claims",
                    bases[i % bases.len()]
                ))
                .bearer_auth(&tokens[i])
                .header("content-type", "application/json")
                .body(r#"{"quantity":1,"payment_method":"cod"}"#)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            Ok((status, v["id"].as_str().map(str::to_owned)))
        }
    })
    .await;
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu_before)
        .map(|(x, before)| x.cpu_secs() - before)
        .collect();
    let mut forwarded = -forwarded_before;
    for base in &bases {
        forwarded += metric(&setup, base, "surge_forwarded_commands_total").await?;
    }

    // Checked against the store, through node 0.
    let listed = crate::burst::listed_claims(&setup, &bases[0], &sale_id, &merchant).await?;
    let confirmed = listed.values().filter(|s| *s == "confirmed").count() as u64;
    let answered = |status: u16| {
        b.answers
            .iter()
            .filter(move |(s, _)| *s == status)
            .filter_map(|(_, id)| id.as_deref())
    };
    let lost = answered(201)
        .filter(|id| listed.get(*id).map(String::as_str) != Some("confirmed"))
        .count()
        + answered(202)
            .filter(|id| listed.get(*id).map(String::as_str) != Some("waitlisted"))
            .count();

    // Forwarding cost: each of up to 200 customers' profile, read one at a
    // time from every node; local when that node owns the user's shard.
    let owners = shard_owners(pg.port).await?;
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut remote = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let reader = crate::servers::http_client();
    for token in tokens.iter().take(200) {
        let me: Value = call(
            &reader,
            reqwest::Method::GET,
            format!("{}/api/v1/users/profile", bases[0]),
            Some(token),
            Value::Null,
        )
        .await?;
        let user = me["id"].as_str().context("user id")?;
        let shard = surge::cluster::shard_of(&format!("user:{user}"), SHARDS) as usize;
        for (i, base) in bases.iter().enumerate() {
            let started = Instant::now();
            let r = reader
                .get(format!("{base}/api/v1/users/profile"))
                .bearer_auth(token)
                .send()
                .await?;
            ensure!(r.status().is_success(), "profile read: {}", r.status());
            let _ = r.bytes().await?;
            let us = (started.elapsed().as_micros() as u64).max(1);
            let here =
                owners.get(&shard).map(String::as_str) == Some(format!("b{}", i + 1).as_str());
            let _ = if here {
                local.record(us)
            } else {
                remote.record(us)
            };
        }
    }
    let q = |h: &Histogram<u64>| -> Vec<f64> {
        if h.is_empty() {
            return vec![f64::NAN, f64::NAN];
        }
        [0.5, 0.99]
            .iter()
            .map(|x| h.value_at_quantile(*x) as f64 / 1000.0)
            .collect()
    };
    let mixed = crate::mixed::drive(&bases, p.mixed).await?;
    for node in nodes {
        node.daemon.stop().await?;
    }
    drop((pg, redis));
    Ok(Outcome {
        mixed,
        nodes: n,
        forwarded,
        cpu,
        oversold: confirmed.saturating_sub(p.capacity as u64),
        lost: lost as u64,
        local_ms: q(&local),
        remote_ms: q(&remote),
        burst: b,
    })
}

/// Each shard's holder, as the store records it.
async fn shard_owners(pg_port: u16) -> anyhow::Result<HashMap<usize, String>> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={pg_port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client
        .query(
            "SELECT shard, owner FROM surge.shard_leases WHERE owner IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as usize, r.get::<_, String>(1)))
        .collect())
}

/// The burst report (`cluster`) and the journeys' (`cluster-mixed`).
pub async fn run(p: Params, counts: &[usize], command: String) -> anyhow::Result<(Report, Report)> {
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let mut mixed_rows = Vec::new();
    let mut mixed_goals = Vec::new();
    for &n in counts {
        let o = run_nodes(n, p).await?;
        let (r, g) = crate::mixed::rows(&o.mixed, &format!("cluster-{n}"), p.mixed.rate);
        mixed_rows.extend(r);
        mixed_goals.push(g);
        let done: u64 = o.burst.statuses.values().sum();
        let mut values = vec![
            ("claims/s", o.burst.per_second().round()),
            ("p50 ms", o.burst.ms(0.5)),
            ("p99 ms", o.burst.ms(0.99)),
            ("errors", o.burst.errors as f64),
            (
                // Each claim is several entity commands (the session check
                // at the user's node, the claim at the queue's, …).
                "forwarded per claim",
                (100.0 * o.forwarded.max(0.0) / done.max(1) as f64).round() / 100.0 + 0.0,
            ),
            ("oversold", o.oversold as f64),
            ("lost", o.lost as f64),
            ("read local p50 ms", o.local_ms[0]),
            ("read forwarded p50 ms", o.remote_ms[0]),
            ("read forwarded p99 ms", o.remote_ms[1]),
        ];
        let total_cpu: f64 = o.cpu.iter().sum();
        values.push(("cpu s (all nodes)", (total_cpu * 100.0).round() / 100.0));
        let notes = vec![format!(
            "CPU seconds per node during the burst: {}",
            o.cpu
                .iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        goals.push(Goal {
            text: format!(
                "{} nodes: nobody oversold, no acknowledged claim lost",
                o.nodes
            ),
            measured: format!("{} oversold, {} lost", o.oversold, o.lost),
            met: o.oversold == 0 && o.lost == 0,
        });
        rows.push(Row {
            target: format!("cluster-{}", o.nodes),
            values,
            notes,
        });
    }
    Ok((
        Report {
            scenario: "cluster",
            command: command.clone(),
            rows,
            goals,
            chart: "claims/s",
        },
        Report {
            scenario: "cluster-mixed",
            command,
            rows: mixed_rows,
            goals: mixed_goals,
            chart: "p99 ms",
        },
    ))
}

/// Smoke-run invariants: every claim answered, nothing oversold or lost.
pub fn check_smoke(report: &Report) -> anyhow::Result<()> {
    for row in &report.rows {
        ensure!(row.get("errors") == Some(0.0), "{}: errors", row.target);
        ensure!(row.get("oversold") == Some(0.0), "{}: oversold", row.target);
        ensure!(row.get("lost") == Some(0.0), "{}: lost", row.target);
    }
    Ok(())
}
