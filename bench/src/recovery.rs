//! Scenario `recovery`: how long Surge takes to come back.
//! - **start time against journal size**: from `Application::build` to the
//!   first 200 of `/readyz`, on an empty store, then after E/10 and E
//!   journal events (entities are recovered lazily, so this should not grow);
//! - **first reply of an entity with a long journal**: one customer's cart
//!   with E events; after a restart, the time of its first `GET /cart`
//!   (which recovers it) — replaying every event (snapshots off) and from a
//!   snapshot (snapshots on).
//!
//! Each timing is the median of `repeats` restarts.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use surge::config::Settings;
use surge::store::Store;

use crate::report::{Goal, Report, Row};
use crate::servers::ServerThread;
use crate::surge_api::{self, start_surge};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Events in the long journal.
    pub events: u64,
    pub repeats: usize,
}

fn settings(dir: &Path, snapshot_every: u64) -> Settings {
    Settings {
        snapshot_every,
        ..surge_api::surge_settings(dir, 256)
    }
}

async fn ready(base: &str) -> anyhow::Result<()> {
    let client = crate::servers::http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts Surge on `dir`; the server and how long it took to be ready.
async fn timed_start(dir: &Path, snapshot_every: u64) -> anyhow::Result<(ServerThread, Duration)> {
    let t = Instant::now();
    let server = start_surge(settings(dir, snapshot_every))?;
    ready(&server.base()).await?;
    Ok((server, t.elapsed()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Start time, median over `repeats` (each start stopped cleanly).
async fn start_time(dir: &Path, repeats: usize) -> anyhow::Result<Duration> {
    let mut took = Vec::new();
    for _ in 0..repeats {
        let (server, t) = timed_start(dir, 0).await?;
        took.push(t);
        server.stop();
    }
    Ok(median(took))
}

/// The first reply of the cart after a restart, median over `repeats`.
async fn first_reply(
    dir: &Path,
    snapshot_every: u64,
    token: &str,
    repeats: usize,
) -> anyhow::Result<Duration> {
    let client = crate::servers::http_client();
    let mut took = Vec::new();
    for _ in 0..repeats {
        let (server, _) = timed_start(dir, snapshot_every).await?;
        let t = Instant::now();
        let cart = surge_api::call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/cart", server.base()),
            Some(token),
            Value::Null,
        )
        .await?;
        took.push(t.elapsed());
        ensure!(
            cart["items"].as_array().is_some_and(|i| i.len() == 1),
            "the cart came back wrong: {cart}"
        );
        server.stop();
    }
    Ok(median(took))
}

/// Sets the cart's one line `count` times (quantities 1–9 in turn, 32 at a
/// time), each an event of the cart's journal.
async fn grow(base: &str, token: &str, product: &str, from: u64, count: u64) -> anyhow::Result<()> {
    let client = crate::servers::http_client();
    let progress = crate::load::bar(count, "cart events");
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(from..from + count)
        .map(|i| {
            let (client, progress) = (client.clone(), progress.clone());
            let url = format!("{base}/api/v1/cart/items/{product}");
            async move {
                let r = surge_api::call(
                    &client,
                    reqwest::Method::PUT,
                    url,
                    Some(token),
                    json!({"quantity": i % 9 + 1}),
                )
                .await;
                progress.inc(1);
                r
            }
        })
        .buffered(32)
        .collect()
        .await;
    progress.finish_and_clear();
    for r in results {
        r?;
    }
    Ok(())
}

/// Events in a stream, read from the store itself (the server stopped).
async fn journal_len(dir: &Path, stream: &str) -> anyhow::Result<u64> {
    let store = surge::store::redb::RedbStore::open(
        dir,
        surge::store::redb::RedbOptions::default(),
        std::sync::Arc::new(surge::metrics::Metrics::new()),
    )?;
    let head = store.head(stream).await?;
    store.close().await;
    Ok(head)
}

pub struct Outcome {
    /// (journal events in the store, start time)
    pub starts: Vec<(u64, Duration)>,
    pub cart_events: u64,
    pub replay: Duration,
    pub snapshot: Duration,
}

pub async fn surge(p: Params) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut starts = Vec::new();
    // An empty store (only what the first start writes).
    let (server, _) = timed_start(d, 0).await?;
    server.stop();
    starts.push((0, start_time(d, p.repeats).await?));

    let (server, _) = timed_start(d, 0).await?;
    let base = server.base();
    let client = crate::servers::http_client();
    let (_, _, product) = surge_api::shop(&client, &base, 100).await?;
    let token = surge_api::user(&client, &base, "customer").await?;
    let me = surge_api::call(
        &client,
        reqwest::Method::GET,
        format!("{base}/api/v1/users/profile"),
        Some(&token),
        Value::Null,
    )
    .await?;
    let stream = format!("cart:{}", me["id"].as_str().context("user id")?);
    surge_api::call(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/v1/cart/items"),
        Some(&token),
        json!({"product_id": product, "quantity": 1}),
    )
    .await?;
    let tenth = p.events / 10;
    grow(&base, &token, &product, 0, tenth).await?;
    server.stop();
    let n = journal_len(d, &stream).await?;
    starts.push((n, start_time(d, p.repeats).await?));

    let (server, _) = timed_start(d, 0).await?;
    grow(&server.base(), &token, &product, tenth, p.events - tenth).await?;
    server.stop();
    let cart_events = journal_len(d, &stream).await?;
    starts.push((cart_events, start_time(d, p.repeats).await?));

    // Snapshots off: every start replays the whole journal.
    let replay = first_reply(d, 0, &token, p.repeats).await?;
    // Snapshots on: one command snapshots the replayed cart, then restarts
    // load the snapshot.
    let (server, _) = timed_start(d, 100).await?;
    surge_api::call(
        &client,
        reqwest::Method::PUT,
        format!("{}/api/v1/cart/items/{product}", server.base()),
        Some(&token),
        json!({"quantity": 5}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    let snapshot = first_reply(d, 100, &token, p.repeats).await?;
    Ok(Outcome {
        starts,
        cart_events,
        replay,
        snapshot,
    })
}

// ---- report -----------------------------------------------------------------

pub async fn run(p: Params, command: String) -> anyhow::Result<Report> {
    let o = surge(p).await?;
    let mut rows: Vec<Row> = o
        .starts
        .iter()
        .map(|(events, t)| Row {
            target: format!("start, cart journal {events} events"),
            values: vec![("events", *events as f64), ("ms", ms(*t))],
            notes: vec!["build to first /readyz 200".into()],
        })
        .collect();
    rows.push(Row {
        target: "first reply, replaying".into(),
        values: vec![("events", o.cart_events as f64), ("ms", ms(o.replay))],
        notes: vec!["snapshots off: GET /cart replays every event".into()],
    });
    rows.push(Row {
        target: "first reply, from snapshot".into(),
        values: vec![("events", o.cart_events as f64), ("ms", ms(o.snapshot))],
        notes: vec!["snapshot_every 100".into()],
    });
    let first = o.starts.first().map_or(Duration::ZERO, |s| s.1);
    let last = o.starts.last().map_or(Duration::ZERO, |s| s.1);
    let growth = last.as_secs_f64() / first.as_secs_f64().max(1e-9);
    let goals = vec![
        Goal {
            text: "start time independent of journal size (largest / empty ≤ 1.5)".into(),
            measured: format!("{:.1} ms → {:.1} ms ({growth:.2}×)", ms(first), ms(last)),
            met: growth <= 1.5,
        },
        Goal {
            text:
                "an entity with 100,000 events answers its first command in < 100 ms with snapshots"
                    .into(),
            measured: format!("{:.1} ms with {} events", ms(o.snapshot), o.cart_events),
            met: o.snapshot < Duration::from_millis(100) && o.cart_events >= 100_000,
        },
    ];
    Ok(Report {
        scenario: "recovery",
        command,
        rows,
        goals,
        chart: "ms",
    })
}

/// Smoke-run invariants: the journal grew as asked and every start and
/// first reply succeeded (checked on the way).
pub fn check_smoke(report: &Report, events: u64) -> anyhow::Result<()> {
    let replay = report
        .rows
        .iter()
        .find(|r| r.target == "first reply, replaying")
        .context("replay row")?;
    ensure!(
        replay.get("events").unwrap_or(0.0) >= events as f64 * 0.5,
        "the cart journal holds {:?} events",
        replay.get("events")
    );
    Ok(())
}
