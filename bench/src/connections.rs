//! Scenario `connections`: K idle, authenticated WebSocket sessions held
//! open at once, spread over several loopback source addresses. Measures
//! the server process's resident memory per connection (VmRSS after minus
//! before, over K) and the rate at which it accepts them, for Surge and for
//! the bare tokio-tungstenite server (`rawws`), each in its own process.

use std::time::{Duration, Instant};

use anyhow::ensure;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{Goal, Report, Row};
use crate::servers::{self, ChildKind, Daemon};
use crate::surge_api;
use crate::wsclient::{self, Ws};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub connections: usize,
    /// Loopback source addresses the connections are spread over.
    pub sources: usize,
}

pub struct Outcome {
    pub target: &'static str,
    pub opened: usize,
    pub accept_per_second: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Sampled connections that answered a ping after all were open.
    pub alive: usize,
    pub sampled: usize,
}

impl Outcome {
    pub fn kib_per_connection(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.opened.max(1) as f64
    }
}

/// Descriptors this process (and its server child) may hold, less a margin.
pub fn descriptor_budget() -> usize {
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    (soft as usize).saturating_sub(1_000)
}

/// Users the Surge connections authenticate as.
const USERS: usize = 10;

async fn hold(
    target: &'static str,
    server: &Daemon,
    p: Params,
    path: &str,
    tokens: &[String],
) -> anyhow::Result<Outcome> {
    let addr = server.addr();
    // Let the server settle after its setup before the baseline reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.rss_kib()?;
    let progress = crate::load::bar(p.connections as u64, target);
    let started = Instant::now();
    let opened: Vec<anyhow::Result<Ws>> = futures::stream::iter(0..p.connections)
        .map(|i| {
            let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].clone());
            let progress = progress.clone();
            async move {
                let ws =
                    wsclient::connect(addr, wsclient::source(i, p.sources), path, token.as_deref())
                        .await;
                progress.inc(1);
                ws
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let mut conns = Vec::with_capacity(opened.len());
    for c in opened {
        conns.push(c?);
    }
    // Idle: let allocations from the handshakes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kib = server.rss_kib()?;
    // Still alive: a sample answers a ping.
    let step = (conns.len() / 100).max(1);
    let mut sampled = 0;
    let mut alive = 0;
    for ws in conns.iter_mut().step_by(step) {
        sampled += 1;
        ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if matches!(&m, Message::Text(t) if t.as_str().contains("pong")) {
                alive += 1;
                break;
            }
        }
    }
    drop(conns);
    Ok(Outcome {
        target,
        opened: p.connections,
        accept_per_second: p.connections as f64 / elapsed.as_secs_f64().max(1e-9),
        rss_before_kib,
        rss_after_kib,
        alive,
        sampled,
    })
}

pub async fn surge(p: Params) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let settings = surge::config::Settings {
        max_connections: p.connections + 1_000,
        ws_max_connections_per_user: p.connections / USERS + 1,
        ..surge_api::surge_settings(dir.path(), 256)
    };
    let server = servers::child(ChildKind::Surge, Some(&settings)).await?;
    let base = format!("http://{}", server.addr());
    let client = crate::servers::http_client();
    let mut tokens = Vec::new();
    for _ in 0..USERS {
        tokens.push(surge_api::user(&client, &base, "customer").await?);
    }
    drop(client);
    let outcome = hold("surge", &server, p, "/api/v1/ws", &tokens).await?;
    server.stop().await?;
    Ok(outcome)
}

pub async fn raw(p: Params) -> anyhow::Result<Outcome> {
    let server = servers::child(ChildKind::RawWs, None).await?;
    let outcome = hold("raw-ws", &server, p, "/", &[]).await?;
    server.stop().await?;
    Ok(outcome)
}

// ---- report -----------------------------------------------------------------

pub async fn run(p: Params, targets: &[String], command: String) -> anyhow::Result<Report> {
    let budget = descriptor_budget();
    let asked = p.connections;
    let p = Params {
        connections: asked.min(budget),
        ..p
    };
    let mut outcomes = Vec::new();
    for t in targets {
        outcomes.push(match t.as_str() {
            "surge" => surge(p).await?,
            "raw-ws" => raw(p).await?,
            other => anyhow::bail!("unknown target {other} (surge, raw-ws)"),
        });
    }
    let limited = (p.connections < asked).then(|| {
        format!(
            "{asked} asked, {} held: RLIMIT_NOFILE allows {} descriptors per process here",
            p.connections,
            budget + 1_000
        )
    });
    let rows = outcomes
        .iter()
        .map(|o| Row {
            target: o.target.to_owned(),
            values: vec![
                ("connections", o.opened as f64),
                ("sources", p.sources as f64),
                ("accepted/s", o.accept_per_second.round()),
                (
                    "RSS before MiB",
                    (o.rss_before_kib as f64 / 102.4).round() / 10.0,
                ),
                (
                    "RSS after MiB",
                    (o.rss_after_kib as f64 / 102.4).round() / 10.0,
                ),
                ("KiB/conn", (o.kib_per_connection() * 100.0).round() / 100.0),
                (
                    "alive %",
                    (o.alive as f64 * 1000.0 / o.sampled.max(1) as f64).round() / 10.0,
                ),
            ],
            notes: match o.target {
                "surge" => {
                    vec!["authenticated sessions (JWT), ping/idle timers, bounded queues".into()]
                }
                _ => vec!["bare tokio-tungstenite, no auth".into()],
            }
            .into_iter()
            .chain(limited.clone())
            .collect(),
        })
        .collect();
    let mut goals = Vec::new();
    if let Some(s) = outcomes.iter().find(|o| o.target == "surge") {
        goals.push(Goal {
            text: "100,000 idle WebSockets".into(),
            measured: match &limited {
                Some(why) => format!("{} ({why})", s.opened),
                None => format!("{}", s.opened),
            },
            met: s.opened >= 100_000 && s.alive == s.sampled,
        });
        goals.push(Goal {
            text: "≤ 10 KiB server RSS per connection".into(),
            measured: format!("{:.2} KiB", s.kib_per_connection()),
            met: s.kib_per_connection() <= 10.0,
        });
    }
    Ok(Report {
        scenario: "connections",
        command,
        rows,
        goals,
        chart: "KiB/conn",
    })
}

/// Smoke-run invariants: every connection opened and the sample alive.
pub fn check_smoke(report: &Report, connections: usize) -> anyhow::Result<()> {
    for row in &report.rows {
        let get = |k: &str| row.get(k).unwrap_or(0.0);
        ensure!(
            get("connections") == connections as f64,
            "{}: not all connections held",
            row.target
        );
        ensure!(
            get("alive %") == 100.0,
            "{}: sampled connections did not answer",
            row.target
        );
    }
    Ok(())
}
