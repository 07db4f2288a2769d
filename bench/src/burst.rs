//! Scenario `burst`: N clients claim one unit each of a flash sale with
//! capacity C, all at once, over HTTP — against Surge and three baselines
//! measured in the same run:
//! - `axum-noop`: a raw axum handler that answers 201 and does nothing (the
//!   HTTP ceiling of this machine);
//! - `redis-lua`: axum → EVALSHA of a stock-decrement script on
//!   redis-server (AOF, fsync every second);
//! - `postgres`: axum → one conditional `UPDATE … WHERE remaining >= 1`
//!   plus the buyer's row, in one statement, on a deadpool of prepared
//!   connections (fsync and synchronous commit on).
//!
//! Afterwards each target with state is checked against its store: nobody
//! oversold, and every acknowledged claim present.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use fred::prelude::*;
use serde_json::{json, Value};

use crate::load::{burst, warm_client, Burst};
use crate::report::{Goal, Report, Row};
use crate::servers::{self, ServerThread};
use crate::surge_api::{call, customer, shop, start_surge, surge_settings};

/// The knobs of one run.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub clients: usize,
    pub capacity: u32,
    pub time_limit: Duration,
}

/// One target's result.
pub struct Outcome {
    pub target: &'static str,
    pub burst: Burst,
    /// Units confirmed beyond capacity (None: the target keeps no stock).
    pub oversold: Option<u64>,
    /// Acknowledged claims missing from the store afterwards.
    pub lost: Option<u64>,
}

async fn serve_router(
    router: Router,
    bound: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _ = bound.send(listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await?;
    Ok(())
}

fn health_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

async fn post_status(
    client: &reqwest::Client,
    url: String,
) -> Result<(u16, Option<String>), String> {
    let r = client.post(url).send().await.map_err(|e| e.to_string())?;
    Ok((r.status().as_u16(), None))
}

// ---- axum no-op ------------------------------------------------------------

pub async fn axum_noop(p: Params) -> anyhow::Result<Outcome> {
    let server = ServerThread::start(|bound, stop| {
        let router = health_router().route(
            "/claim/{user}",
            post(|| async { (StatusCode::CREATED, "{}") }),
        );
        serve_router(router, bound, stop)
    })?;
    let base = server.base();
    let client = warm_client(p.clients, &format!("{base}/healthz")).await?;
    let b = burst(p.clients, "axum-noop", p.time_limit, |i| {
        let (client, url) = (client.clone(), format!("{base}/claim/u{i}"));
        async move { post_status(&client, url).await }
    })
    .await;
    server.stop();
    Ok(Outcome {
        target: "axum-noop",
        burst: b,
        oversold: None,
        lost: None,
    })
}

// ---- Redis + Lua -----------------------------------------------------------

/// Decrements the stock unless empty or the buyer already bought; records
/// the buyer. Returns the units left, -1 sold out, -2 already bought.
const CLAIM_LUA: &str = r#"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -2 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return -1 end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return left - 1
"#;

#[derive(Clone)]
struct RedisState {
    pool: Pool,
    sha: Arc<String>,
}

async fn redis_claim(State(s): State<RedisState>, Path(user): Path<String>) -> StatusCode {
    let result: Result<i64, _> = s
        .pool
        .evalsha(
            s.sha.as_str(),
            vec!["sale:stock", "sale:buyers"],
            vec![user],
        )
        .await;
    match result {
        Ok(left) if left >= 0 => StatusCode::CREATED,
        Ok(_) => StatusCode::CONFLICT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn redis_pool(port: u16) -> anyhow::Result<Pool> {
    let config = Config::from_url(&format!("redis://127.0.0.1:{port}"))?;
    let pool = Builder::from_config(config).build_pool(8)?;
    pool.init().await?;
    Ok(pool)
}

pub async fn redis_lua(p: Params) -> anyhow::Result<Outcome> {
    let redis = servers::redis().await?;
    let port = redis.port;
    let setup = redis_pool(port).await?;
    setup
        .set::<(), _, _>("sale:stock", p.capacity, None, None, false)
        .await?;
    setup.del::<(), _>("sale:buyers").await?;
    let sha: String = setup.script_load(CLAIM_LUA).await?;
    let server = ServerThread::start(move |bound, stop| async move {
        let pool = redis_pool(port).await?;
        let state = RedisState {
            pool,
            sha: Arc::new(sha),
        };
        let router = health_router()
            .route("/claim/{user}", post(redis_claim))
            .with_state(state);
        serve_router(router, bound, stop).await
    })?;
    let base = server.base();
    let client = warm_client(p.clients, &format!("{base}/healthz")).await?;
    let b = burst(p.clients, "redis-lua", p.time_limit, |i| {
        let (client, url) = (client.clone(), format!("{base}/claim/u{i}"));
        async move { post_status(&client, url).await }
    })
    .await;
    server.stop();
    let buyers: HashSet<String> = setup.smembers("sale:buyers").await?;
    let left: i64 = setup.get("sale:stock").await?;
    ensure!(left >= 0, "redis stock went negative");
    let acked = acked_users(&b);
    Ok(Outcome {
        target: "redis-lua",
        oversold: Some((buyers.len() as u64).saturating_sub(p.capacity as u64)),
        lost: Some(acked.iter().filter(|u| !buyers.contains(*u)).count() as u64),
        burst: b,
    })
}

fn acked_users(b: &Burst) -> Vec<String> {
    b.answers
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == 201)
        .map(|(i, _)| format!("u{i}"))
        .collect()
}

// ---- PostgreSQL -------------------------------------------------------------

const PG_CLAIM: &str = "WITH s AS (
    UPDATE stock SET remaining = remaining - 1
    WHERE id = 1 AND remaining >= 1
      AND NOT EXISTS (SELECT 1 FROM buyers WHERE user_id = $1)
    RETURNING remaining)
  INSERT INTO buyers (user_id) SELECT $1 FROM s RETURNING user_id";

async fn pg_pool(port: u16, size: usize) -> anyhow::Result<deadpool_postgres::Pool> {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.host = Some("127.0.0.1".into());
    cfg.port = Some(port);
    cfg.user = Some("postgres".into());
    cfg.dbname = Some("postgres".into());
    cfg.pool = Some(deadpool_postgres::PoolConfig::new(size));
    Ok(cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )?)
}

async fn pg_claim(
    State(pool): State<deadpool_postgres::Pool>,
    Path(user): Path<String>,
) -> StatusCode {
    let Ok(client) = pool.get().await else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let Ok(stmt) = client.prepare_cached(PG_CLAIM).await else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    match client.query_opt(&stmt, &[&user]).await {
        Ok(Some(_)) => StatusCode::CREATED,
        // Sold out, or the buyer's row already exists (a unique violation
        // rolls the decrement back with it).
        Ok(None) | Err(_) => StatusCode::CONFLICT,
    }
}

pub async fn postgres(p: Params) -> anyhow::Result<Outcome> {
    let pg = servers::postgres().await?;
    let port = pg.port;
    let setup = pg_pool(port, 1).await?;
    {
        // The port opens before the server accepts sessions.
        let started = std::time::Instant::now();
        let c = loop {
            match setup.get().await {
                Ok(c) => break c,
                Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        c.batch_execute(&format!(
            "CREATE TABLE stock (id int PRIMARY KEY, remaining int NOT NULL);
             CREATE TABLE buyers (user_id text PRIMARY KEY);
             INSERT INTO stock VALUES (1, {});",
            p.capacity
        ))
        .await?;
    }
    let server = ServerThread::start(move |bound, stop| async move {
        let pool = pg_pool(port, 64).await?;
        let router = health_router()
            .route("/claim/{user}", post(pg_claim))
            .with_state(pool);
        serve_router(router, bound, stop).await
    })?;
    let base = server.base();
    let client = warm_client(p.clients, &format!("{base}/healthz")).await?;
    let b = burst(p.clients, "postgres", p.time_limit, |i| {
        let (client, url) = (client.clone(), format!("{base}/claim/u{i}"));
        async move { post_status(&client, url).await }
    })
    .await;
    server.stop();
    let c = setup.get().await?;
    let buyers: HashSet<String> = c
        .query("SELECT user_id FROM buyers", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let acked = acked_users(&b);
    Ok(Outcome {
        target: "postgres",
        oversold: Some((buyers.len() as u64).saturating_sub(p.capacity as u64)),
        lost: Some(acked.iter().filter(|u| !buyers.contains(*u)).count() as u64),
        burst: b,
    })
}

// ---- Surge -------------------------------------------------------------------

pub async fn surge(p: Params) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    let dir = tempfile::tempdir()?;
    let server = start_surge(surge_settings(dir.path(), p.clients))?;
    let base = server.base();
    let setup = reqwest::Client::new();
    let (merchant, _, product_id) = shop(&setup, &base, p.capacity as u64).await?;
    let sale = call(&setup, reqwest::Method::POST, format!("{base}/api/v1/flash-sales"), Some(&merchant),
        json!({"product_id": product_id, "stock": p.capacity, "per_user_limit": 1, "price": 50_000})).await?;
    let sale_id = sale["id"].as_str().context("sale id")?.to_owned();
    let progress = crate::load::bar(p.clients as u64, "surge setup");
    let tokens: Vec<String> = futures::stream::iter(0..p.clients)
        .map(|_| {
            let (setup, base, progress) = (setup.clone(), base.clone(), progress.clone());
            async move {
                let (token, _) = customer(&setup, &base).await?;
                progress.inc(1);
                anyhow::Ok(token)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    progress.finish_and_clear();
    let tokens = Arc::new(tokens);
    let client = warm_client(p.clients, &format!("{base}/healthz")).await?;
    let b = burst(p.clients, "surge", p.time_limit, |i| {
        let (client, tokens) = (client.clone(), tokens.clone());
        let url = format!("{base}/api/v1/flash-sales/{sale_id}/claims");
        async move {
            let r = client
                .post(url)
                .bearer_auth(&tokens[i])
                .json(&json!({"quantity": 1, "payment_method": "cod"}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            Ok((status, v["id"].as_str().map(str::to_owned)))
        }
    })
    .await;
    server.stop();

    // Check against the store: a fresh server recovered from the same data.
    let server = start_surge(surge_settings(dir.path(), p.clients))?;
    let base = server.base();
    let mut confirmed = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = setup
            .get(format!("{base}/api/v1/flash-sales/{sale_id}/claims"))
            .bearer_auth(&merchant)
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let r = req.send().await?;
        ensure!(r.status().is_success(), "claims listing: {}", r.status());
        let page: Value = r.json().await?;
        for c in page["items"].as_array().context("items")? {
            if c["status"] == "confirmed" {
                confirmed.insert(c["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    server.stop();
    let lost = b
        .answers
        .iter()
        .filter(|(s, id)| *s == 201 && !id.as_ref().is_some_and(|id| confirmed.contains(id)))
        .count() as u64;
    Ok(Outcome {
        target: "surge",
        oversold: Some((confirmed.len() as u64).saturating_sub(p.capacity as u64)),
        lost: Some(lost),
        burst: b,
    })
}

// ---- report -----------------------------------------------------------------

pub async fn run(p: Params, targets: &[String], command: String) -> anyhow::Result<Report> {
    let mut outcomes = Vec::new();
    for t in targets {
        let outcome = match t.as_str() {
            "surge" => surge(p).await?,
            "axum-noop" => axum_noop(p).await?,
            "redis-lua" => redis_lua(p).await?,
            "postgres" => postgres(p).await?,
            other => {
                anyhow::bail!("unknown target {other} (surge, axum-noop, redis-lua, postgres)")
            }
        };
        outcomes.push(outcome);
    }
    let rate = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.target == name)
            .map(|o| o.burst.per_second())
    };
    let rows = outcomes
        .iter()
        .map(|o| {
            let b = &o.burst;
            let status = |s: u16| b.statuses.get(&s).copied().unwrap_or(0) as f64;
            let mut values = vec![
                ("clients", p.clients as f64),
                ("claims/s", b.per_second().round()),
                ("p50 ms", b.ms(0.5)),
                ("p99 ms", b.ms(0.99)),
                ("p999 ms", b.ms(0.999)),
                ("201", status(201)),
                ("202", status(202)),
                ("409", status(409)),
                (
                    "errors",
                    b.errors as f64
                        + b.statuses
                            .iter()
                            .filter(|(s, _)| ![201, 202, 409].contains(*s))
                            .map(|(_, n)| *n as f64)
                            .sum::<f64>(),
                ),
            ];
            if let Some(over) = o.oversold {
                values.push(("oversold", over as f64));
            }
            if let Some(lost) = o.lost {
                values.push(("lost acks", lost as f64));
            }
            let mut notes = Vec::new();
            if o.oversold.is_none() {
                notes.push("no stock kept: HTTP ceiling".into());
            }
            if o.target == "redis-lua" {
                notes.push("AOF fsync every second: an ack may be lost on a crash".into());
            }
            if o.target == "surge" {
                notes.push("no waitlist; reply after fsync; checked after a restart".into());
            }
            Row {
                target: o.target.to_owned(),
                values,
                notes,
            }
        })
        .collect::<Vec<_>>();
    // Every row has the same columns, in the same order.
    let rows = rows
        .into_iter()
        .map(|mut r| {
            for k in ["oversold", "lost acks"] {
                if !r.values.iter().any(|(n, _)| *n == k) {
                    r.values.push((k, f64::NAN));
                }
            }
            r
        })
        .collect();
    let mut goals = Vec::new();
    if let Some(s) = rate("surge") {
        for (base, factor) in [("axum-noop", 0.6), ("redis-lua", 1.5), ("postgres", 10.0)] {
            if let Some(b) = rate(base) {
                let ratio = s / b.max(1e-9);
                goals.push(Goal {
                    text: format!("claims/s ≥ {factor}× {base}"),
                    measured: format!("{ratio:.2}×"),
                    met: ratio >= factor,
                });
            }
        }
        let o = outcomes
            .iter()
            .find(|o| o.target == "surge")
            .expect("surge ran");
        goals.push(Goal {
            text: format!(
                "p99 ≤ 20 ms at {} concurrent clients (goal stated for 5,000)",
                p.clients
            ),
            measured: format!("{:.1} ms", o.burst.ms(0.99)),
            met: o.burst.ms(0.99) <= 20.0,
        });
        goals.push(Goal {
            text: "0 oversold, 0 lost acknowledgements".into(),
            measured: format!(
                "{} oversold, {} lost",
                o.oversold.unwrap_or(0),
                o.lost.unwrap_or(0)
            ),
            met: o.oversold == Some(0) && o.lost == Some(0),
        });
    }
    Ok(Report {
        scenario: "burst",
        command,
        rows,
        goals,
        chart: "claims/s",
    })
}

/// Smoke-run invariants: every request answered, nobody oversold, every
/// acknowledgement kept, exactly `capacity` units confirmed.
pub fn check_smoke(report: &Report, capacity: u32) -> anyhow::Result<()> {
    for row in &report.rows {
        let get = |k: &str| row.get(k).unwrap_or(0.0);
        ensure!(get("errors") == 0.0, "{}: requests failed", row.target);
        ensure!(get("oversold") == 0.0, "{}: oversold", row.target);
        ensure!(
            get("lost acks") == 0.0,
            "{}: lost acknowledgements",
            row.target
        );
        if row.target != "axum-noop" {
            ensure!(
                get("201") == capacity as f64,
                "{}: {} of {capacity} units confirmed",
                row.target,
                get("201")
            );
        }
    }
    Ok(())
}
