//! Scenario `fanout`: S shippers stream positions at R Hz over WebSockets,
//! W watchers follow each of their orders; every frame carries its send
//! time (`ts`, ms), so each delivery's latency is measured where it
//! arrives. Against Surge (shippers delivering real orders, watchers the
//! orders' customers on `/shipping/{order}/live-tracking`) and a plain
//! tokio-tungstenite broadcast server (`rawws`), each in its own process,
//! in the same run.

use std::f64::consts::TAU;
use std::time::Duration;

use anyhow::ensure;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{Goal, Report, Row};
use crate::servers::{self, ChildKind, Daemon};
use crate::surge_api::{self, now_ms, SHOP};
use crate::wsclient::{self, location_ts, Ws};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub shippers: usize,
    pub hz: f64,
    pub watchers: usize,
    pub duration: Duration,
}

impl Params {
    pub fn offered_per_second(&self) -> f64 {
        self.shippers as f64 * self.hz * self.watchers as f64
    }
}

pub struct Outcome {
    pub target: &'static str,
    /// Positions the shippers sent.
    pub sent: u64,
    /// Frames that reached a watcher (sent during the window).
    pub delivered: u64,
    pub latency: Histogram<u64>,
    /// Positions the server refused (an `error` frame to the shipper).
    pub refused: u64,
    /// Connections that ended before the run did.
    pub dropped: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64
    }
}

/// Sources the connections are spread over.
const SOURCES: usize = 4;

/// One watcher: counts location frames sent at or after `t0` and records
/// their latency until `stop`; `(frames, histogram, ended early)`.
async fn watch_frames(
    mut ws: Ws,
    t0: watch::Receiver<i64>,
    mut stop: watch::Receiver<bool>,
) -> (u64, Histogram<u64>, bool) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("bounds");
    let mut n = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return (n, h, false),
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if let Some(ts) = location_ts(t.as_str()) {
                        let start = *t0.borrow();
                        if start > 0 && ts >= start {
                            n += 1;
                            let _ = h.record((now_ms() - ts).max(0) as u64 + 1);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return (n, h, true),
            }
        }
    }
}

/// One shipper: a position every 1/R s along a circle around the shop,
/// from `t0` until `end`; the frames sent and refused.
async fn drive(
    ws: Ws,
    i: usize,
    p: Params,
    topic: Option<String>,
    end: tokio::time::Instant,
) -> (u64, u64) {
    let (mut sink, mut source) = ws.split();
    let refused = tokio::spawn(async move {
        let mut refused = 0;
        while let Some(Ok(m)) = source.next().await {
            if let Message::Text(t) = m {
                if t.as_str().contains(r#""type":"error""#) {
                    refused += 1;
                }
            }
        }
        refused
    });
    let period = Duration::from_secs_f64(1.0 / p.hz);
    // Spread the shippers' phases over one period.
    let offset = period.mul_f64((i as f64 * 0.618_034) % 1.0);
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let radius_deg = 300.0 / 111_195.0;
    let mut angle = i as f64;
    let mut last_ts = 0;
    let mut sent = 0;
    while tick.tick().await < end {
        angle = (angle + 8.0 / p.hz / 300.0) % TAU;
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let mut frame = json!({
            "type": "location",
            "lat": SHOP.0 + radius_deg * angle.sin(),
            "lng": SHOP.1 + radius_deg * angle.cos(),
            "speed": 8.0,
            "ts": ts,
        });
        if let Some(t) = &topic {
            frame["topic"] = json!(t);
        }
        if sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let _ = sink.close().await;
    let refused = tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    (sent, refused)
}

/// Connections of one target: per shipper, its connection and the topic
/// it publishes to (raw only); the watchers' connections.
struct Wired {
    shippers: Vec<(Ws, Option<String>)>,
    watchers: Vec<Ws>,
}

async fn measure(target: &'static str, p: Params, wired: Wired) -> Outcome {
    let (t0_tx, t0_rx) = watch::channel(0i64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let watchers: Vec<_> = wired
        .watchers
        .into_iter()
        .map(|ws| tokio::spawn(watch_frames(ws, t0_rx.clone(), stop_rx.clone())))
        .collect();
    let progress = crate::load::bar(p.duration.as_secs(), target);
    let started = tokio::time::Instant::now();
    t0_tx.send_replace(now_ms());
    let end = started + p.duration;
    let shippers: Vec<_> = wired
        .shippers
        .into_iter()
        .enumerate()
        .map(|(i, (ws, topic))| tokio::spawn(drive(ws, i, p, topic, end)))
        .collect();
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.inc(1);
    }
    let mut sent = 0;
    let mut refused = 0;
    for s in shippers {
        if let Ok((n, r)) = s.await {
            sent += n;
            refused += r;
        }
    }
    // Frames still in flight get a moment to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send_replace(true);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("bounds");
    let mut delivered = 0;
    let mut dropped = 0;
    for w in watchers {
        if let Ok((n, h, early)) = w.await {
            delivered += n;
            let _ = latency.add(&h);
            dropped += early as u64;
        }
    }
    progress.finish_and_clear();
    Outcome {
        target,
        sent,
        delivered,
        latency,
        refused,
        dropped,
        elapsed: p.duration,
    }
}

/// Opens `n` connections, `concurrency` at a time, spread over sources.
async fn open_all<F, Fut>(n: usize, label: &str, open: F) -> anyhow::Result<Vec<Ws>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Ws>>,
{
    let progress = crate::load::bar(n as u64, label);
    let all: Vec<anyhow::Result<Ws>> = futures::stream::iter(0..n)
        .map(|i| {
            let progress = progress.clone();
            let fut = open(i);
            async move {
                let r = fut.await;
                progress.inc(1);
                r
            }
        })
        .buffered(128)
        .collect()
        .await;
    progress.finish_and_clear();
    all.into_iter().collect()
}

pub fn surge_settings(dir: &std::path::Path, p: Params) -> surge::config::Settings {
    let conns = p.shippers * (p.watchers + 1);
    surge::config::Settings {
        max_connections: conns + 1_000,
        ws_max_connections_per_user: p.watchers.max(16),
        dispatch_retry_secs: 1,
        ..surge_api::surge_settings(dir, 256)
    }
}

pub async fn surge(p: Params) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let server = servers::child(ChildKind::Surge, Some(&surge_settings(dir.path(), p))).await?;
    let base = format!("http://{}", server.addr());
    let deliveries =
        surge_api::deliveries(&crate::servers::http_client(), &base, p.shippers).await?;
    let wired = wire_surge(p, &deliveries, server.addr(), server.addr(), "surge").await?;
    let outcome = measure("surge", p, wired).await;
    stop(server).await;
    Ok(outcome)
}

/// Surge in cluster mode: two nodes on one PostgreSQL and Redis, the
/// shippers' WebSockets on one and the watchers' on the other, so every
/// position reaches its watchers through Redis.
pub async fn surge_cluster(p: Params) -> anyhow::Result<Outcome> {
    let (pg, redis) = crate::cluster::store_and_redis().await?;
    let nodes = crate::cluster::start_nodes(
        2,
        |dir| surge_settings(dir, p),
        pg.port,
        "surge",
        redis.port,
    )
    .await?;
    let deliveries =
        surge_api::deliveries(&crate::servers::http_client(), &nodes[0].base(), p.shippers).await?;
    let (shippers_at, watchers_at) = (nodes[0].daemon.addr(), nodes[1].daemon.addr());
    let wired = wire_surge(p, &deliveries, shippers_at, watchers_at, "cluster").await?;
    let outcome = measure("surge-cluster", p, wired).await;
    for node in nodes {
        stop(node.daemon).await;
    }
    drop((pg, redis));
    Ok(outcome)
}

/// Each delivery's watchers (its customer on the order's live-tracking
/// path, subscribed) on `watchers_at`, and its shipper's socket on
/// `shippers_at`.
async fn wire_surge(
    p: Params,
    deliveries: &[surge_api::Delivery],
    shippers_at: std::net::SocketAddr,
    watchers_at: std::net::SocketAddr,
    label: &str,
) -> anyhow::Result<Wired> {
    let watchers = open_all(p.shippers * p.watchers, &format!("{label} watchers"), |i| {
        let d = &deliveries[i / p.watchers];
        let path = format!("/api/v1/shipping/{}/live-tracking", d.order_id);
        let token = d.customer.clone();
        async move {
            let mut ws = wsclient::connect(
                watchers_at,
                wsclient::source(i, SOURCES),
                &path,
                Some(&token),
            )
            .await?;
            // Subscribed once the server says so (after the current position).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let frame = tokio::time::timeout_at(deadline, ws.next()).await;
                match frame {
                    Ok(Some(Ok(Message::Text(t))))
                        if t.as_str().contains(r#""type":"subscribed""#) =>
                    {
                        break
                    }
                    Ok(Some(Ok(_))) => {}
                    other => anyhow::bail!("watcher {i} not subscribed: {other:?}"),
                }
            }
            Ok(ws)
        }
    })
    .await?;
    let shippers = open_all(p.shippers, &format!("{label} shippers"), |i| {
        let token = deliveries[i].shipper.clone();
        async move {
            wsclient::connect(
                shippers_at,
                wsclient::source(i, SOURCES),
                "/api/v1/ws",
                Some(&token),
            )
            .await
        }
    })
    .await?;
    Ok(Wired {
        shippers: shippers.into_iter().map(|ws| (ws, None)).collect(),
        watchers,
    })
}

pub async fn raw(p: Params) -> anyhow::Result<Outcome> {
    let server = servers::child(ChildKind::RawWs, None).await?;
    let addr = server.addr();
    let watchers = open_all(p.shippers * p.watchers, "raw watchers", |i| async move {
        let mut ws = wsclient::connect(addr, wsclient::source(i, SOURCES), "/", None).await?;
        let topic = format!("order:{}", i / p.watchers);
        ws.send(Message::Text(
            json!({"type": "subscribe", "topic": topic})
                .to_string()
                .into(),
        ))
        .await?;
        Ok(ws)
    })
    .await?;
    // The raw server does not acknowledge subscriptions: a ping sent after
    // them is answered after they took effect.
    let mut watchers = watchers;
    for ws in &mut watchers {
        ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await?;
        let pong = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        ensure!(
            matches!(&pong, Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("pong")),
            "raw watcher not subscribed: {pong:?}"
        );
    }
    let shippers = open_all(p.shippers, "raw shippers", |i| async move {
        wsclient::connect(addr, wsclient::source(i, SOURCES), "/", None).await
    })
    .await?;
    let wired = Wired {
        shippers: shippers
            .into_iter()
            .enumerate()
            .map(|(i, ws)| (ws, Some(format!("order:{i}"))))
            .collect(),
        watchers,
    };
    let outcome = measure("raw-broadcast", p, wired).await;
    stop(server).await;
    Ok(outcome)
}

async fn stop(server: Daemon) {
    if let Err(e) = server.stop().await {
        eprintln!("stopping the server: {e:#}");
    }
}

// ---- report -----------------------------------------------------------------

pub async fn run(p: Params, targets: &[String], command: String) -> anyhow::Result<Report> {
    let mut outcomes = Vec::new();
    for t in targets {
        outcomes.push(match t.as_str() {
            "surge" => surge(p).await?,
            "surge-cluster" => surge_cluster(p).await?,
            "raw-broadcast" => raw(p).await?,
            other => anyhow::bail!("unknown target {other} (surge, surge-cluster, raw-broadcast)"),
        });
    }
    let rows = outcomes
        .iter()
        .map(|o| {
            let expected = (o.sent * p.watchers as u64).max(1);
            Row {
                target: o.target.to_owned(),
                values: vec![
                    ("shippers", p.shippers as f64),
                    ("hz", p.hz),
                    ("watchers/order", p.watchers as f64),
                    ("positions sent", o.sent as f64),
                    ("deliveries", o.delivered as f64),
                    ("deliveries/s", o.per_second().round()),
                    ("delivered %", (o.delivered as f64 * 1000.0 / expected as f64).round() / 10.0),
                    ("p50 ms", o.ms(0.5)),
                    ("p99 ms", o.ms(0.99)),
                    ("p999 ms", o.ms(0.999)),
                    ("refused", o.refused as f64),
                    ("dropped conns", o.dropped as f64),
                ],
                notes: match o.target {
                    "surge" => vec!["auth, access rules, ETA and geofence per position; newest-only per watcher".into()],
                    "surge-cluster" => vec!["two nodes: shippers on one, watchers on the other, every position through Redis".into()],
                    _ => vec!["no auth, no rules: the ceiling".into()],
                },
            }
        })
        .collect();
    let mut goals = Vec::new();
    let get = |name: &str| outcomes.iter().find(|o| o.target == name);
    if let (Some(s), Some(c)) = (get("surge"), get("surge-cluster")) {
        goals.push(Goal {
            text: "across two nodes through Redis: deliveries/s against one node (reported)".into(),
            measured: format!(
                "{:.2}×, p99 {:.0} ms against {:.0} ms",
                c.per_second() / s.per_second().max(1e-9),
                c.ms(0.99),
                s.ms(0.99)
            ),
            met: c.dropped == 0 && c.refused == 0,
        });
    }
    if let Some(s) = get("surge") {
        if let Some(r) = get("raw-broadcast") {
            let ratio = s.per_second() / r.per_second().max(1e-9);
            goals.push(Goal {
                text: "deliveries/s ≥ 0.9× raw-broadcast (#16)".into(),
                measured: format!("{ratio:.2}×"),
                met: ratio >= 0.9,
            });
        }
        goals.push(Goal {
            text: format!(
                "p99 ≤ 100 ms at 100,000 deliveries/s (offered here: {:.0}/s)",
                p.offered_per_second()
            ),
            measured: format!("{:.0} ms at {:.0}/s", s.ms(0.99), s.per_second()),
            met: s.ms(0.99) <= 100.0 && s.per_second() >= 100_000.0,
        });
    }
    Ok(Report {
        scenario: "fanout",
        command,
        rows,
        goals,
        chart: "deliveries/s",
    })
}

/// Smoke-run invariants: nothing refused or dropped, and (at this small
/// load) nearly every position reached every watcher.
pub fn check_smoke(report: &Report) -> anyhow::Result<()> {
    for row in &report.rows {
        let get = |k: &str| row.get(k).unwrap_or(0.0);
        ensure!(get("positions sent") > 0.0, "{}: nothing sent", row.target);
        ensure!(get("refused") == 0.0, "{}: positions refused", row.target);
        ensure!(
            get("dropped conns") == 0.0,
            "{}: connections dropped",
            row.target
        );
        ensure!(
            get("delivered %") >= 90.0,
            "{}: only {}% delivered",
            row.target,
            get("delivered %")
        );
    }
    Ok(())
}
