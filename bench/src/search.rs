//! Scenario `search`: a catalog of generated products (Vietnamese and
//! English names, several categories, shops at different places), then:
//! - how long the index takes to hold the whole catalog after it was
//!   loaded through the API (the indexer tailing the catalog feed), and to
//!   be rebuilt from the read tables after its directory was deleted; its
//!   size on disk;
//! - queries/s and p50/p99 of `GET /search` (words, a typo, filters, a
//!   place) from `clients` concurrent clients while new products keep
//!   arriving (`writes_per_sec`), against the baseline in the same run:
//!   `GET /products?q=` (the listing's substring scan) under the same
//!   clients;
//! - p50/p99 of `GET /search/suggest` on prefixes of 1–4 letters (goal:
//!   p99 < 10 ms).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::report::{Goal, Report, Row};
use crate::surge_api::{self, start_surge};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub products: usize,
    pub shops: usize,
    pub clients: usize,
    pub duration: Duration,
    pub writes_per_sec: f64,
}

const NOUNS: &[&str] = &[
    "Áo thun",
    "Áo khoác",
    "Quần jean",
    "Váy",
    "Giày thể thao",
    "Dép",
    "Túi xách",
    "Mũ",
    "Khăn",
    "Đồng hồ",
    "Yoga mat",
    "Yoga block",
    "Dây kháng lực",
    "Bình nước",
    "Tạ tay",
    "Shirt",
    "Hoodie",
    "Sneakers",
    "Backpack",
    "Water bottle",
    "Resistance band",
    "Dumbbell",
];
const WORDS: &[&str] = &[
    "cotton",
    "lụa",
    "xanh",
    "đỏ",
    "trắng",
    "đen",
    "cao cấp",
    "mini",
    "pro",
    "classic",
    "sport",
    "nam",
    "nữ",
    "trẻ em",
    "organic",
    "bamboo",
    "premium",
    "light",
    "ultra",
    "basic",
];
const CATEGORIES: &[&str] = &[
    "fashion", "shoes", "bags", "yoga", "gym", "home", "beauty", "sports",
];
/// Queries with a typo and without tones, as people type them.
const TYPED: &[&str] = &[
    "ao thun",
    "giay the thao",
    "yoga mta",
    "backpak",
    "dong ho",
    "quan jean xanh",
    "hodie",
];

/// A small deterministic generator (xorshift), so every run builds the
/// same catalog.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn name(&mut self, i: usize) -> String {
        format!(
            "{} {} {} {}",
            self.pick(NOUNS),
            self.pick(WORDS),
            self.pick(WORDS),
            100 + i % 900
        )
    }
}

fn product_body(g: &mut Gen, i: usize) -> Value {
    json!({
        "name": g.name(i),
        "category": g.pick(CATEGORIES),
        "price": 10_000 + g.next() % 2_000_000,
        "currency": "VND",
        "stock": 100,
        "weight_grams": 300,
    })
}

/// `n` merchants with a shop each, spread over ~20 km around Hanoi: their
/// tokens and shop ids.
async fn shops(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let token = surge_api::user(client, base, "merchant").await?;
        let at = json!({"lat": 21.0 + (i % 10) as f64 * 0.02, "lng": 105.8 + (i / 10 % 10) as f64 * 0.02});
        let shop = surge_api::call(
            client,
            reqwest::Method::POST,
            format!("{base}/api/v1/shops"),
            Some(&token),
            json!({"name": format!("Shop {i}"), "location": at, "address": format!("{i} Pho Hue")}),
        )
        .await?;
        out.push((token, shop["id"].as_str().context("shop id")?.to_owned()));
    }
    Ok(out)
}

async fn add_products(
    client: &reqwest::Client,
    base: &str,
    shops: &[(String, String)],
    from: usize,
    n: usize,
) -> anyhow::Result<()> {
    let progress = crate::load::bar(n as u64, "products");
    let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ from as u64);
    let bodies: Vec<(usize, Value)> = (from..from + n)
        .map(|i| (i, product_body(&mut g, i)))
        .collect();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(bodies)
        .map(|(i, body)| {
            let (token, shop) = &shops[i % shops.len()];
            let url = format!("{base}/api/v1/shops/{shop}/products");
            let (client, progress) = (client.clone(), progress.clone());
            async move {
                let r =
                    surge_api::call(&client, reqwest::Method::POST, url, Some(token), body).await;
                progress.inc(1);
                r
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    progress.finish_and_clear();
    for r in results {
        r?;
    }
    Ok(())
}

async fn total(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let r = client
        .get(format!("{base}/api/v1/search?limit=1"))
        .send()
        .await?;
    ensure!(r.status().is_success(), "search answered {}", r.status());
    let v: Value = r.json().await?;
    v["total"].as_u64().context("total")
}

/// Waits until the index holds `want` entries; how long that took.
async fn indexed(
    client: &reqwest::Client,
    base: &str,
    want: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let n = total(client, base).await.unwrap_or(0);
        if n >= want {
            return Ok(t.elapsed());
        }
        ensure!(
            t.elapsed() < limit,
            "the index holds {n} of {want} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What one kind of query measured.
struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    answered: u64,
    failed: u64,
}

/// `clients` loops sending `make(i)` paths for `duration`; every answer
/// must be 200.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
    duration: Duration,
    make: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Measured {
    let make = Arc::new(make);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, base, make, counter) = (
                client.clone(),
                base.to_owned(),
                make.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                let mut failed = 0u64;
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match client.get(format!("{base}{}", make(i))).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                        }
                        _ => failed += 1,
                    }
                }
                (h, failed)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut failed = 0;
    for t in tasks {
        if let Ok((h, f)) = t.await {
            let _ = all.add(h);
            failed += f;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Measured {
        per_second: all.len() as f64 / elapsed,
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
        answered: all.len(),
        failed,
    }
}

fn search_path(i: u64) -> String {
    let mut g = Gen(0x2545_f491_4f6c_dd1d ^ (i + 1));
    match i % 5 {
        0 => format!("/api/v1/search?q={}", g.pick(TYPED).replace(' ', "%20")),
        1 => format!("/api/v1/search?q={}", g.pick(WORDS).replace(' ', "%20")),
        2 => format!(
            "/api/v1/search?type=product&category={}&min_price=100000&max_price=900000&sort=price",
            g.pick(CATEGORIES)
        ),
        3 => "/api/v1/search?near=21.05,105.85&radius_km=3&sort=distance".to_owned(),
        _ => format!(
            "/api/v1/search?q={}&min_rating=0&sort=newest",
            g.pick(NOUNS).replace(' ', "%20")
        ),
    }
}

fn scan_path(i: u64) -> String {
    let mut g = Gen(0x2545_f491_4f6c_dd1d ^ (i + 1));
    format!("/api/v1/products?q={}", g.pick(WORDS).replace(' ', "%20"))
}

fn suggest_path(i: u64) -> String {
    let mut g = Gen(0x9e37_79b9 ^ (i + 1));
    let word = g.pick(&[
        "ao", "giay", "yoga", "backpack", "dong", "quan", "hoodie", "sneakers", "tui", "binh",
    ]);
    let n = 1 + (g.next() % 4) as usize;
    format!("/api/v1/search/suggest?q={}", &word[..n.min(word.len())])
}

/// The query report and the index report.
pub async fn run(p: Params, command: String) -> anyhow::Result<(Report, Report)> {
    let dir = tempfile::tempdir()?;
    let settings = surge_api::surge_settings(dir.path(), p.clients);
    let server = start_surge(settings.clone())?;
    let base = server.base();
    let client = crate::load::warm_client(p.clients.max(8), &format!("{base}/healthz")).await?;
    let shops = shops(&client, &base, p.shops).await?;
    let t = Instant::now();
    add_products(&client, &base, &shops, 0, p.products).await?;
    let load = t.elapsed();
    let want = (p.products + p.shops) as u64;
    let caught_up = indexed(&client, &base, want, Duration::from_secs(600)).await?;

    // Queries while products keep arriving.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, base, shops, written) =
            (client.clone(), base.clone(), shops.clone(), written.clone());
        let every = Duration::from_secs_f64(1.0 / p.writes_per_sec.max(0.1));
        let until = Instant::now() + p.duration * 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut i = p.products;
            let mut g = Gen(7);
            while Instant::now() < until {
                tick.tick().await;
                let (token, shop) = &shops[i % shops.len()];
                let r = surge_api::call(
                    &client,
                    reqwest::Method::POST,
                    format!("{base}/api/v1/shops/{shop}/products"),
                    Some(token),
                    product_body(&mut g, i),
                )
                .await;
                if r.is_ok() {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    let search = drive(&client, &base, p.clients, p.duration, search_path).await;
    let suggest = drive(&client, &base, p.clients, p.duration, suggest_path).await;
    // The same at a quarter of the clients: latency without the queue a
    // saturated box adds.
    let quiet = (p.clients / 4).max(1);
    let suggest_quiet = drive(&client, &base, quiet, p.duration / 2, suggest_path).await;
    writer.await?;
    let scan = drive(&client, &base, p.clients, p.duration, scan_path).await;
    let written = written.load(Ordering::Relaxed);
    let want = want + written;
    indexed(&client, &base, want, Duration::from_secs(60)).await?;
    // A known product is found by its exact name.
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let first = product_body(&mut g, 0);
    let name = first["name"].as_str().context("name")?.to_owned();
    let found: Value = client
        .get(format!("{base}/api/v1/search"))
        .query(&[("q", name.as_str()), ("limit", "100")])
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        found["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|h| h["name"] == name.as_str())),
        "{name} not found: {found}"
    );
    server.stop();

    let index_dir = dir.path().join("search");
    let size = dir_bytes(&index_dir);
    std::fs::remove_dir_all(&index_dir)?;
    let t = Instant::now();
    let server = start_surge(settings)?;
    let rebuilt = indexed(&client, &server.base(), want, Duration::from_secs(600)).await?;
    let rebuild = t.elapsed().max(rebuilt);
    server.stop();

    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    let row = |target: &str, m: &Measured, note: &str| Row {
        target: target.into(),
        values: vec![
            ("queries_per_s", m.per_second.round()),
            ("p50_ms", m.p50_ms),
            ("p99_ms", m.p99_ms),
            ("answered", m.answered as f64),
            ("failed", m.failed as f64),
        ],
        notes: vec![note.into()],
    };
    let rows = vec![
        row(
            "search",
            &search,
            &format!(
                "{} clients, {written} products written meanwhile",
                p.clients
            ),
        ),
        row("suggest", &suggest, "prefixes of 1–4 letters"),
        row(
            &format!("suggest, {quiet} clients"),
            &suggest_quiet,
            "the same, a quarter of the clients",
        ),
        row(
            "products?q= (baseline: substring scan)",
            &scan,
            "the listing's filter over the products table",
        ),
    ];
    let index = vec![Row {
            target: "index".into(),
            values: vec![
                ("entries", want as f64),
                ("load_s", (load.as_secs_f64() * 10.0).round() / 10.0),
                ("caught_up_ms", ms(caught_up)),
                ("rebuild_ms", ms(rebuild)),
                ("size_mib", (size as f64 / 1_048_576.0 * 10.0).round() / 10.0),
            ],
            notes: vec!["caught up: from the last product's 201 to the index holding all; rebuild: start with the index deleted".into()],
        }];
    let goals = vec![
        Goal {
            text: "suggestions p99 < 10 ms".into(),
            measured: format!(
                "{:.2} ms at {} clients, {:.2} ms at {quiet} ({} products)",
                suggest.p99_ms, p.clients, suggest_quiet.p99_ms, want
            ),
            met: suggest.p99_ms < 10.0,
        },
        Goal {
            text: "every query answered 200".into(),
            measured: format!(
                "{} failed",
                search.failed + suggest.failed + suggest_quiet.failed + scan.failed
            ),
            met: search.failed + suggest.failed + suggest_quiet.failed + scan.failed == 0,
        },
    ];
    Ok((
        Report {
            scenario: "search",
            command: command.clone(),
            rows,
            goals,
            chart: "p99_ms",
        },
        Report {
            scenario: "search-index",
            command,
            rows: index,
            goals: vec![],
            chart: "rebuild_ms",
        },
    ))
}

/// Smoke invariants: every query answered, the index caught up (checked on
/// the way: `indexed` fails otherwise).
pub fn check_smoke(report: &Report) -> anyhow::Result<()> {
    let failed: f64 = report.rows.iter().filter_map(|r| r.get("failed")).sum();
    ensure!(failed == 0.0, "{failed} queries failed");
    Ok(())
}
