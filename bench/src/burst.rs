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

use std::collections::{HashMap, HashSet};
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
use crate::wrk::{self, Planned};

/// The knobs of one run.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub clients: usize,
    pub capacity: u32,
    pub time_limit: Duration,
    /// wrk's keep-alive connections (the in-process client opens one per
    /// simulated client).
    pub connections: usize,
}

/// What sends the burst's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// `wrk` (C, one thread, `connections` keep-alive connections).
    Wrk,
    /// reqwest in this process, one connection per client, all released at once.
    InProcess,
}

impl Driver {
    fn label(self) -> &'static str {
        match self {
            Driver::Wrk => "wrk",
            Driver::InProcess => "in-process",
        }
    }
}

/// One target's result.
pub struct Outcome {
    pub target: &'static str,
    pub driver: Driver,
    pub burst: Burst,
    /// `GET /healthz` of the same server, wrk, requests/s (wrk driver).
    pub healthz: Option<f64>,
    /// Units confirmed beyond capacity (None: the target keeps no stock).
    pub oversold: Option<u64>,
    /// Acknowledged claims missing from the store afterwards.
    pub lost: Option<u64>,
    /// What Surge's journal did during the burst (Surge targets).
    pub journal: Option<Journal>,
}

/// Surge's group commit during a burst, from its `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Journal {
    pub appends_per_commit: f64,
    /// Mean time of one commit (one redb transaction, one PostgreSQL
    /// transaction), ms.
    pub commit_ms: f64,
    /// Bytes the benchmark process (the server, its journal and mail
    /// files) caused to be written to disk from the burst's start until the
    /// server stopped, per claim, KB (`/proc/self/io` `write_bytes`; on
    /// `store = postgres` the database server's own writes are not in it).
    pub disk_kb_per_claim: f64,
}

/// `write_bytes` of `/proc/self/io`: bytes this process sent to storage.
fn disk_written() -> f64 {
    crate::servers::proc_number("/proc/self/io", "write_bytes:").map_or(f64::NAN, |b| b as f64)
}

impl Outcome {
    fn row_name(&self) -> String {
        format!("{} [{}]", self.target, self.driver.label())
    }
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

/// The baselines' plan: client i claims as user `u{i}`.
fn user_plan(p: Params) -> Vec<Planned> {
    (0..p.clients)
        .map(|i| Planned {
            path: format!("/claim/u{i}"),
            token: None,
            body: None,
        })
        .collect()
}

/// Sends `plan` to `base` with `driver`; with wrk, also measures the
/// server's `GET /healthz` first (the floor a claim is compared with).
async fn fire(
    driver: Driver,
    p: Params,
    base: &str,
    label: &str,
    plan: Vec<Planned>,
) -> anyhow::Result<(Burst, Option<f64>)> {
    match driver {
        Driver::Wrk => {
            let healthz = wrk::rate(&format!("{base}/healthz"), p.connections, 3).await?;
            let b = wrk::burst(base, &plan, 1, p.connections, p.time_limit).await?;
            println!("{label:>14} [wrk] {:.0}/s", b.per_second());
            Ok((b, Some(healthz)))
        }
        Driver::InProcess => {
            let client = warm_client(p.clients, &format!("{base}/healthz")).await?;
            let plan = Arc::new(plan);
            let base = base.to_owned();
            let b = burst(plan.len(), label, p.time_limit, |i| {
                let (client, plan, base) = (client.clone(), plan.clone(), base.clone());
                async move {
                    let r = &plan[i];
                    let mut req = client.post(format!("{base}{}", r.path));
                    if let Some(t) = &r.token {
                        req = req.bearer_auth(t);
                    }
                    if let Some(body) = &r.body {
                        req = req
                            .header("content-type", "application/json")
                            .body(body.clone());
                    }
                    let r = req.send().await.map_err(|e| e.to_string())?;
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    Ok((status, v["id"].as_str().map(str::to_owned)))
                }
            })
            .await;
            Ok((b, None))
        }
    }
}

/// The ids of the claims answered `status`.
fn answered(b: &Burst, status: u16) -> impl Iterator<Item = &str> {
    b.answers
        .iter()
        .filter(move |(s, _)| *s == status)
        .filter_map(|(_, id)| id.as_deref())
}

/// Oversold and lost acknowledgements of a store that ended holding
/// `buyers` (a baseline: every 201 names its buyer).
fn baseline_check(b: &Burst, p: Params, buyers: &HashSet<String>) -> (Option<u64>, Option<u64>) {
    let acked = b.answers.iter().filter(|(s, _)| *s == 201).count();
    let kept = answered(b, 201).filter(|u| buyers.contains(*u)).count();
    (
        Some((buyers.len() as u64).saturating_sub(p.capacity as u64)),
        Some((acked - kept) as u64),
    )
}

// ---- axum no-op ------------------------------------------------------------

pub async fn axum_noop(p: Params, driver: Driver) -> anyhow::Result<Outcome> {
    let server = ServerThread::start(|bound, stop| {
        let router = health_router().route(
            "/claim/{user}",
            post(|| async { (StatusCode::CREATED, "{}") }),
        );
        serve_router(router, bound, stop)
    })?;
    let (b, healthz) = fire(driver, p, &server.base(), "axum-noop", user_plan(p)).await?;
    server.stop();
    Ok(Outcome {
        target: "axum-noop",
        driver,
        burst: b,
        healthz,
        oversold: None,
        lost: None,
        journal: None,
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

/// 201 `{"id": user}` for a buyer, 409 otherwise.
async fn redis_claim(
    State(s): State<RedisState>,
    Path(user): Path<String>,
) -> (StatusCode, String) {
    let result: Result<i64, _> = s
        .pool
        .evalsha(
            s.sha.as_str(),
            vec!["sale:stock", "sale:buyers"],
            vec![user.clone()],
        )
        .await;
    match result {
        Ok(left) if left >= 0 => (StatusCode::CREATED, format!(r#"{{"id":"{user}"}}"#)),
        Ok(_) => (StatusCode::CONFLICT, "{}".into()),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "{}".into()),
    }
}

async fn redis_pool(port: u16) -> anyhow::Result<Pool> {
    let config = Config::from_url(&format!("redis://127.0.0.1:{port}"))?;
    let pool = Builder::from_config(config).build_pool(8)?;
    pool.init().await?;
    Ok(pool)
}

pub async fn redis_lua(p: Params, driver: Driver) -> anyhow::Result<Outcome> {
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
    let (b, healthz) = fire(driver, p, &server.base(), "redis-lua", user_plan(p)).await?;
    server.stop();
    let buyers: HashSet<String> = setup.smembers("sale:buyers").await?;
    let left: i64 = setup.get("sale:stock").await?;
    ensure!(left >= 0, "redis stock went negative");
    let (oversold, lost) = baseline_check(&b, p, &buyers);
    Ok(Outcome {
        target: "redis-lua",
        driver,
        healthz,
        oversold,
        lost,
        burst: b,
        journal: None,
    })
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

/// 201 `{"id": user}` for a buyer, 409 otherwise.
async fn pg_claim(
    State(pool): State<deadpool_postgres::Pool>,
    Path(user): Path<String>,
) -> (StatusCode, String) {
    let unavailable = || (StatusCode::SERVICE_UNAVAILABLE, "{}".to_owned());
    let Ok(client) = pool.get().await else {
        return unavailable();
    };
    let Ok(stmt) = client.prepare_cached(PG_CLAIM).await else {
        return unavailable();
    };
    match client.query_opt(&stmt, &[&user]).await {
        Ok(Some(_)) => (StatusCode::CREATED, format!(r#"{{"id":"{user}"}}"#)),
        // Sold out, or the buyer's row already exists (a unique violation
        // rolls the decrement back with it).
        Ok(None) | Err(_) => (StatusCode::CONFLICT, "{}".into()),
    }
}

pub async fn postgres(p: Params, driver: Driver) -> anyhow::Result<Outcome> {
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
    let (b, healthz) = fire(driver, p, &server.base(), "postgres", user_plan(p)).await?;
    server.stop();
    let c = setup.get().await?;
    let buyers: HashSet<String> = c
        .query("SELECT user_id FROM buyers", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let (oversold, lost) = baseline_check(&b, p, &buyers);
    Ok(Outcome {
        target: "postgres",
        driver,
        healthz,
        oversold,
        lost,
        burst: b,
        journal: None,
    })
}

// ---- Surge -------------------------------------------------------------------

/// Surge with its default settings (`waitlist`: every loser up to the
/// waitlist bound is a durable write too, answered 202) or with the
/// waitlist off (`burst_max_waitlist = 0`: C winners, everyone else 409 at
/// once, like the baselines).
///
/// `parts`: the sale's queue split over this many parts
/// (`burst_queue_parts`; default: one per core). `postgres`: on the
/// PostgreSQL backend, on a server like the `postgres` baseline's.
pub async fn surge(
    p: Params,
    driver: Driver,
    target: &'static str,
    waitlist: bool,
    parts: Option<u32>,
    postgres: bool,
) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    let dir = tempfile::tempdir()?;
    let mut base_settings = surge_settings(dir.path(), p.clients);
    let _pg = match postgres {
        true => Some(crate::surge_api::on_postgres(&mut base_settings).await?),
        false => None,
    };
    let settings = || {
        let mut s = base_settings.clone();
        if !waitlist {
            s.burst_max_waitlist = 0;
        }
        if let Some(k) = parts {
            s.burst_queue_parts = k;
        }
        s
    };
    let server = start_surge(settings())?;
    let base = server.base();
    let setup = crate::servers::http_client();
    let (merchant, _, product_id) = shop(&setup, &base, p.capacity as u64).await?;
    let sale = call(&setup, reqwest::Method::POST, format!("{base}/api/v1/flash-sales"), Some(&merchant),
        json!({"product_id": product_id, "stock": p.capacity, "per_user_limit": 1, "price": 50_000})).await?;
    let sale_id = sale["id"].as_str().context("sale id")?.to_owned();
    let progress = crate::load::bar(p.clients as u64, "surge setup");
    let plan: Vec<Planned> = futures::stream::iter(0..p.clients)
        .map(|_| {
            let (setup, base, progress) = (setup.clone(), base.clone(), progress.clone());
            let path = format!("/api/v1/flash-sales/{sale_id}/claims");
            async move {
                let (token, _) = customer(&setup, &base).await?;
                progress.inc(1);
                anyhow::Ok(Planned {
                    path,
                    token: Some(token),
                    body: Some(r#"{"quantity":1,"payment_method":"cod"}"#.into()),
                })
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    progress.finish_and_clear();
    // The setup's welcome mails (one per account, written as files here)
    // are sent before the burst, so it is not measured beside them.
    mails_sent(&dir.path().join("mail"), p.clients + 1).await?;
    let before = crate::surge_api::journal_counters(&setup, &base).await?;
    let disk_before = disk_written();
    let (b, healthz) = fire(driver, p, &base, target, plan).await?;
    let after = crate::surge_api::journal_counters(&setup, &base).await?;
    let [appends, commits, seconds] = [0, 1, 2].map(|i| after[i] - before[i]);
    server.stop();
    let disk = disk_written() - disk_before;

    // Check against the store: a fresh server recovered from the same data.
    let server = start_surge(settings())?;
    let listed = listed_claims(&setup, &server.base(), &sale_id, &merchant).await?;
    server.stop();
    let confirmed = listed.values().filter(|s| *s == "confirmed").count() as u64;
    // A 201 must be confirmed after the restart; a 202 still waitlisted
    // (nobody cancelled, so nobody was promoted).
    let lost = answered(&b, 201)
        .filter(|id| listed.get(*id).map(String::as_str) != Some("confirmed"))
        .count()
        + answered(&b, 202)
            .filter(|id| listed.get(*id).map(String::as_str) != Some("waitlisted"))
            .count();
    Ok(Outcome {
        target,
        driver,
        healthz,
        oversold: Some(confirmed.saturating_sub(p.capacity as u64)),
        lost: Some(lost as u64),
        burst: b,
        journal: Some(Journal {
            appends_per_commit: appends / commits.max(1.0),
            commit_ms: 1000.0 * seconds / commits.max(1.0),
            disk_kb_per_claim: disk / 1000.0 / p.clients.max(1) as f64,
        }),
    })
}

/// Waits until `n` mails are in the server's mail directory.
async fn mails_sent(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let sent = std::fs::read_dir(dir).map_or(0, |d| d.count());
        if sent >= n {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{sent} of {n} welcome mails sent after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every claim of the sale as the owner lists it: id → status.
pub async fn listed_claims(
    client: &reqwest::Client,
    base: &str,
    sale_id: &str,
    merchant: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let mut listed = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{base}/api/v1/flash-sales/{sale_id}/claims"))
            .bearer_auth(merchant)
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let r = req.send().await?;
        ensure!(r.status().is_success(), "claims listing: {}", r.status());
        let page: Value = r.json().await?;
        for c in page["items"].as_array().context("items")? {
            listed.insert(
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(listed),
        }
    }
}

// ---- report -----------------------------------------------------------------

/// Every target the scenario knows.
pub const TARGETS: [&str; 10] = [
    "surge",
    "surge-postgres",
    "surge-postgres-no-waitlist",
    "surge-no-waitlist",
    "surge-k1",
    "surge-k2",
    "surge-k4",
    "axum-noop",
    "redis-lua",
    "postgres",
];

pub async fn run(
    p: Params,
    targets: &[String],
    drivers: &[Driver],
    command: String,
) -> anyhow::Result<Report> {
    let mut outcomes = Vec::new();
    for &driver in drivers {
        for t in targets {
            let outcome = match t.as_str() {
                "surge" => surge(p, driver, "surge", true, None, false).await?,
                "surge-postgres" => surge(p, driver, "surge-postgres", true, None, true).await?,
                "surge-postgres-no-waitlist" => {
                    surge(p, driver, "surge-postgres-no-waitlist", false, None, true).await?
                }
                "surge-no-waitlist" => {
                    surge(p, driver, "surge-no-waitlist", false, None, false).await?
                }
                "surge-k1" => surge(p, driver, "surge-k1", true, Some(1), false).await?,
                "surge-k2" => surge(p, driver, "surge-k2", true, Some(2), false).await?,
                "surge-k4" => surge(p, driver, "surge-k4", true, Some(4), false).await?,
                "axum-noop" => axum_noop(p, driver).await?,
                "redis-lua" => redis_lua(p, driver).await?,
                "postgres" => postgres(p, driver).await?,
                other => anyhow::bail!("unknown target {other} ({})", TARGETS.join(", ")),
            };
            outcomes.push(outcome);
        }
    }
    let rows = outcomes.iter().map(|o| row(p, o)).collect();
    let goals = drivers.iter().flat_map(|&d| goals(&outcomes, d)).collect();
    Ok(Report {
        scenario: "burst",
        command,
        rows,
        goals,
        chart: "claims/s",
    })
}

fn row(p: Params, o: &Outcome) -> Row {
    let b = &o.burst;
    let status = |s: u16| b.statuses.get(&s).copied().unwrap_or(0) as f64;
    let others: f64 = b
        .statuses
        .iter()
        .filter(|(s, _)| ![201, 202, 409].contains(*s))
        .map(|(_, n)| *n as f64)
        .sum();
    let values = vec![
        ("clients", p.clients as f64),
        ("claims/s", b.per_second().round()),
        ("healthz/s", o.healthz.map_or(f64::NAN, f64::round)),
        ("p50 ms", b.ms(0.5)),
        ("p99 ms", b.ms(0.99)),
        ("p999 ms", b.ms(0.999)),
        ("201", status(201)),
        ("202", status(202)),
        ("409", status(409)),
        ("errors", b.errors as f64 + others),
        ("oversold", o.oversold.map_or(f64::NAN, |n| n as f64)),
        ("lost acks", o.lost.map_or(f64::NAN, |n| n as f64)),
        (
            "appends/commit",
            o.journal.map_or(f64::NAN, |j| j.appends_per_commit.round()),
        ),
        (
            "commit ms",
            o.journal
                .map_or(f64::NAN, |j| (j.commit_ms * 100.0).round() / 100.0),
        ),
        (
            "disk KB/claim",
            o.journal
                .map_or(f64::NAN, |j| (j.disk_kb_per_claim * 10.0).round() / 10.0),
        ),
    ];
    let mut notes = Vec::new();
    if o.oversold.is_none() {
        notes.push("no stock kept: HTTP ceiling".into());
    }
    match o.target {
        "redis-lua" => notes.push("AOF fsync every second: an ack may be lost on a crash".into()),
        "surge" => notes.push(
            "default settings: every claim durable (losers waitlisted, 202); checked after a restart"
                .into(),
        ),
        "surge-postgres" => notes.push(
            "default settings on store = postgres (the baseline's server): every claim committed; checked after a restart"
                .into(),
        ),
        "surge-postgres-no-waitlist" => notes.push(
            "burst_max_waitlist = 0 on store = postgres: winners committed, losers 409, like the baseline"
                .into(),
        ),
        "surge-no-waitlist" => notes
            .push("burst_max_waitlist = 0: winners durable, losers 409; checked after a restart".into()),
        "surge-k1" | "surge-k2" | "surge-k4" => notes.push(format!(
            "default settings, the sale's queue split over {} part(s); checked after a restart",
            &o.target[7..]
        )),
        _ => {}
    }
    Row {
        target: o.row_name(),
        values,
        notes,
    }
}

/// The issue's targets, for the outcomes of one driver.
fn goals(outcomes: &[Outcome], driver: Driver) -> Vec<Goal> {
    let of = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.target == name && o.driver == driver)
    };
    let d = driver.label();
    let mut goals = Vec::new();
    let ratio_goal =
        |goals: &mut Vec<Goal>, what: &str, rate: f64, base: &str, of_base: f64, factor: f64| {
            let ratio = rate / of_base.max(1e-9);
            goals.push(Goal {
                text: format!("[{d}] {what} claims/s ≥ {factor}× {base}"),
                measured: format!("{ratio:.2}× ({rate:.0} vs {of_base:.0})"),
                met: ratio >= factor,
            });
        };
    if let Some(s) = of("surge") {
        let rate = s.burst.per_second();
        if let Some(h) = s.healthz {
            ratio_goal(&mut goals, "surge", rate, "its own GET /healthz", h, 0.5);
        }
        for (base, factor) in [("redis-lua", 1.0), ("postgres", 3.0)] {
            if let Some(b) = of(base) {
                ratio_goal(
                    &mut goals,
                    "surge",
                    rate,
                    base,
                    b.burst.per_second(),
                    factor,
                );
            }
        }
        if let Some(noop) = of("axum-noop") {
            let (mine, theirs) = (s.burst.ms(0.99), noop.burst.ms(0.99));
            goals.push(Goal {
                text: format!("[{d}] surge p99 ≤ 1.5× axum-noop's p99"),
                measured: format!(
                    "{mine:.1} ms vs {theirs:.1} ms ({:.2}×)",
                    mine / theirs.max(1e-9)
                ),
                met: mine <= 1.5 * theirs,
            });
        }
    }
    // Group commit (one transaction per group) against one transaction
    // per claim, on the same kind of server.
    for target in ["surge-postgres", "surge-postgres-no-waitlist"] {
        if let (Some(s), Some(b)) = (of(target), of("postgres")) {
            ratio_goal(
                &mut goals,
                target,
                s.burst.per_second(),
                "postgres",
                b.burst.per_second(),
                2.0,
            );
        }
    }
    if let Some(s) = of("surge-no-waitlist") {
        if let Some(h) = s.healthz {
            ratio_goal(
                &mut goals,
                "surge-no-waitlist",
                s.burst.per_second(),
                "its own GET /healthz",
                h,
                0.7,
            );
        }
    }
    for o in outcomes
        .iter()
        .filter(|o| o.driver == driver && o.oversold.is_some())
    {
        goals.push(Goal {
            text: format!("[{d}] {}: 0 oversold, 0 lost acknowledgements", o.target),
            measured: format!(
                "{} oversold, {} lost",
                o.oversold.unwrap_or(0),
                o.lost.unwrap_or(0)
            ),
            met: o.oversold == Some(0) && o.lost == Some(0),
        });
    }
    goals
}

/// Smoke-run invariants: every request answered, nobody oversold, every
/// acknowledgement kept, exactly `capacity` units confirmed, and with
/// Surge's waitlist every other client waitlisted.
pub fn check_smoke(report: &Report, p: Params) -> anyhow::Result<()> {
    for row in &report.rows {
        let get = |k: &str| row.get(k).unwrap_or(0.0);
        let name = &row.target;
        ensure!(get("errors") == 0.0, "{name}: requests failed");
        ensure!(get("oversold") == 0.0, "{name}: oversold");
        ensure!(get("lost acks") == 0.0, "{name}: lost acknowledgements");
        if name.starts_with("axum-noop ") {
            continue;
        }
        ensure!(
            get("201") == p.capacity as f64,
            "{name}: {} of {} units confirmed",
            get("201"),
            p.capacity
        );
        // Surge with its waitlist on: everyone else waits.
        if name.starts_with("surge ")
            || name.starts_with("surge-k")
            || name.starts_with("surge-postgres ")
        {
            let waitlisted = (p.clients - p.capacity as usize) as f64;
            ensure!(
                get("202") == waitlisted,
                "{name}: {} of {waitlisted} waitlisted",
                get("202")
            );
        }
    }
    Ok(())
}
