//! Driving a Surge server under test: its settings, starting it on a
//! runtime of its own, and the HTTP calls the scenarios' setups make.

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use surge::app::Application;
use surge::config::Settings;
pub use surge::demo::call;

use crate::servers::ServerThread;

/// The token that opens a bench server's `/metrics` on its API port (the
/// bench runs several servers at once: none has a metrics listener).
pub const METRICS_TOKEN: &str = "bench-metrics-0123456789-abcdefghij";

/// `GET {base}/metrics` with the bench's metrics token.
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

pub fn surge_settings(dir: &std::path::Path, clients: usize) -> Settings {
    Settings {
        addr: "127.0.0.1:0".into(),
        metrics_addr: String::new(),
        metrics_token: Some(METRICS_TOKEN.into()),
        data_dir: dir.to_owned(),
        jwt_secret: Some("bench-secret-0123456789-abcdefghij-klmnopqr".into()),
        log: "warn".into(),
        // Cheap password hashes: the setup registers thousands of users.
        hash_memory_kib: 8,
        hash_iterations: 1,
        hash_queue: clients.max(256),
        burst_max_pending: clients + 1_000,
        // Every simulated client comes from loopback: lift the
        // per-address limits meant for the open internet.
        max_connections_per_ip: 1_000_000,
        login_attempts_per_ip_per_minute: 0,
        login_attempts_per_account_per_hour: 0,
        registrations_per_ip_per_hour: 0,
        ..Settings::default()
    }
}

/// A private PostgreSQL server (the one the `postgres` baseline runs on:
/// fsync and synchronous commit on) with Surge's schema migrated, and
/// `settings` pointed at it. Keep the server as long as Surge runs.
pub async fn on_postgres(settings: &mut Settings) -> anyhow::Result<crate::servers::Daemon> {
    let pg = crate::servers::postgres().await?;
    settings.store = surge::config::StoreKind::Postgres;
    settings.postgres_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    settings.postgres_schema = "surge".into();
    let options = settings.postgres()?;
    let pool = surge::store::postgres::pool(&options)?;
    let mut client = pool
        .get()
        .await
        .context("connecting to the bench's PostgreSQL")?;
    surge::store::postgres::schema::migrate(&mut client, &options.schema).await?;
    Ok(pg)
}

pub fn start_surge(settings: Settings) -> anyhow::Result<ServerThread> {
    ServerThread::start(move |bound, stop| async move {
        let app = Application::build(settings).await?;
        let _ = bound.send(([127, 0, 0, 1], app.port()).into());
        app.run_until_stopped(async {
            let _ = stop.await;
        })
        .await;
        Ok(())
    })
}

/// Registers and logs in a user; its access token.
pub async fn user(client: &reqwest::Client, base: &str, role: &str) -> anyhow::Result<String> {
    let email = format!("{role}-{}@bench.example", uuid::Uuid::new_v4().simple());
    let password = "bench password 123";
    call(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/auth/register"),
        None,
        json!({"email": email, "password": password, "name": "Bench", "role": role}),
    )
    .await?;
    let v = call(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/auth/login"),
        None,
        json!({"email": email, "password": password}),
    )
    .await?;
    Ok(v["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned())
}

/// The shop every scenario's orders come from, and its customers' home.
pub const SHOP: (f64, f64) = (21.03, 105.85);
pub const HOME: (f64, f64) = (21.04, 105.85);

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A merchant with a shop and one product of `stock` units:
/// `(merchant token, shop id, product id)`.
pub async fn shop(
    client: &reqwest::Client,
    base: &str,
    stock: u64,
) -> anyhow::Result<(String, String, String)> {
    split_shop(client, base, stock, 1).await
}

/// A merchant with a shop and one product of `stock` split over
/// `stock_buckets`: `(merchant token, shop id, product id)`.
pub async fn split_shop(
    client: &reqwest::Client,
    base: &str,
    stock: u64,
    stock_buckets: u32,
) -> anyhow::Result<(String, String, String)> {
    let merchant = user(client, base, "merchant").await?;
    let post = reqwest::Method::POST;
    let shop = call(client, post.clone(), format!("{base}/api/v1/shops"), Some(&merchant),
        json!({"name": "Bench shop", "location": {"lat": SHOP.0, "lng": SHOP.1}, "address": "1 Trang Tien"})).await?;
    let shop_id = shop["id"].as_str().context("shop id")?.to_owned();
    let product = call(client, post, format!("{base}/api/v1/shops/{shop_id}/products"), Some(&merchant),
        json!({"name": "Mat", "category": "yoga", "price": 100_000, "currency": "VND", "stock": stock, "weight_grams": 500, "stock_buckets": stock_buckets})).await?;
    let product_id = product["id"].as_str().context("product id")?.to_owned();
    Ok((merchant, shop_id, product_id))
}

/// A customer with a home address: `(token, address id)`.
pub async fn customer(client: &reqwest::Client, base: &str) -> anyhow::Result<(String, String)> {
    let token = user(client, base, "customer").await?;
    let a = call(client, reqwest::Method::POST, format!("{base}/api/v1/users/addresses"), Some(&token),
        json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": HOME.0, "lng": HOME.1})).await?;
    Ok((token, a["id"].as_str().context("address id")?.to_owned()))
}

/// Puts one unit of `product` in the customer's cart and checks out.
pub async fn order(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    address: &str,
    product: &str,
    payment: &str,
) -> anyhow::Result<Value> {
    let post = reqwest::Method::POST;
    call(
        client,
        post.clone(),
        format!("{base}/api/v1/cart/items"),
        Some(token),
        json!({"product_id": product, "quantity": 1}),
    )
    .await?;
    let placed = call(
        client,
        post,
        format!("{base}/api/v1/orders"),
        Some(token),
        json!({"address_id": address, "payment_method": payment}),
    )
    .await?;
    Ok(placed["orders"][0].clone())
}

/// An order on its way: its id, its customer's token and its shipper's.
pub struct Delivery {
    pub order_id: String,
    pub customer: String,
    pub shipper: String,
}

/// `n` orders of one shop, each confirmed, dispatched to its own shipper,
/// picked up and on its way — through the public API, in waves.
pub async fn deliveries(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<Delivery>> {
    use futures::StreamExt;
    let (merchant, _, product) = shop(client, base, n as u64).await?;
    let progress = crate::load::bar(n as u64, "deliveries");
    let mut out = Vec::with_capacity(n);
    let wave = 32;
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    for start in (0..n).step_by(wave) {
        let size = wave.min(n - start);
        // Shippers first, so every order finds one free.
        let shippers: Vec<String> = futures::stream::iter(0..size)
            .map(|_| async {
                let s = user(client, base, "shipper").await?;
                call(client, put.clone(), format!("{base}/api/v1/shipping/shippers/me/status"), Some(&s),
                    json!({"status": "online", "location": {"lat": SHOP.0, "lng": SHOP.1, "ts": now_ms()}})).await?;
                anyhow::Ok(s)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let orders: Vec<(String, String)> = futures::stream::iter(0..size)
            .map(|_| async {
                let (c, address) = customer(client, base).await?;
                let o = order(client, base, &c, &address, &product, "cod").await?;
                let id = o["id"].as_str().context("order id")?.to_owned();
                call(
                    client,
                    put.clone(),
                    format!("{base}/api/v1/orders/{id}/confirm"),
                    Some(&merchant),
                    json!({}),
                )
                .await?;
                anyhow::Ok((id, c))
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let customers: std::collections::HashMap<String, String> = orders.into_iter().collect();
        // Each shipper takes the offer it is given.
        let taken: Vec<(String, String)> = futures::stream::iter(shippers)
            .map(|s| async {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let order_id = loop {
                    let me = call(
                        client,
                        reqwest::Method::GET,
                        format!("{base}/api/v1/shipping/shippers/me"),
                        Some(&s),
                        Value::Null,
                    )
                    .await?;
                    if let Some(id) = me["offer"]["order_id"].as_str() {
                        break id.to_owned();
                    }
                    ensure!(
                        std::time::Instant::now() < deadline,
                        "no offer within 60 s: {me}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                };
                call(
                    client,
                    post.clone(),
                    format!("{base}/api/v1/shipping/{order_id}/accept"),
                    Some(&s),
                    json!({}),
                )
                .await?;
                call(
                    client,
                    put.clone(),
                    format!("{base}/api/v1/shipping/{order_id}/status"),
                    Some(&merchant),
                    json!({"status": "ready_for_pickup"}),
                )
                .await?;
                for step in ["picked_up", "delivering"] {
                    call(
                        client,
                        put.clone(),
                        format!("{base}/api/v1/shipping/{order_id}/status"),
                        Some(&s),
                        json!({"status": step}),
                    )
                    .await?;
                }
                progress.inc(1);
                anyhow::Ok((order_id, s))
            })
            .buffer_unordered(size)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        for (order_id, shipper) in taken {
            let customer = customers
                .get(&order_id)
                .context("a shipper was offered an order of another wave")?
                .clone();
            out.push(Delivery {
                order_id,
                customer,
                shipper,
            });
        }
    }
    progress.finish_and_clear();
    Ok(out)
}

/// Surge's journal counters from `/metrics`: (appends, commits, seconds
/// spent committing), to tell what a run's group commit did.
pub async fn journal_counters(client: &reqwest::Client, base: &str) -> anyhow::Result<[f64; 3]> {
    let text = metrics_text(client, base).await?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok([
        value("surge_journal_appends_total"),
        value("surge_journal_commits_total"),
        value("surge_journal_commit_seconds_sum"),
    ])
}
