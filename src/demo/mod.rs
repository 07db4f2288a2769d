//! `surge demo`: the engine on embedded defaults, seeded through its own
//! public HTTP API with a shop and products, a trainer with a free course, a
//! flash sale, customers (one with an order already on its way), and
//! simulated people: a customer (An) who orders again whenever nothing is
//! on its way, a merchant who confirms orders and hands them over, and
//! shippers who accept offers and drive to the customer along the streets,
//! reporting positions like a phone would.
//!
//! Seeding runs once per data directory (`demo.json` there records what was
//! created); later starts only restart the simulations. `/demo.json` serves
//! the logins and ids to the web front end.
//!
//! - `seed`: the people, shops, generated catalog, orders and reviews.
//! - `simulate`: the simulated customer, merchants and shippers.

mod seed;
mod simulate;

use seed::seed;
pub use simulate::step_towards;
use simulate::{run_customer, run_merchant, run_shipper};

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The password of every demo account.
pub const PASSWORD: &str = "surge demo password";
/// The demo's admin (made at start, as `admin_email` makes one).
pub const ADMIN_EMAIL: &str = "admin@demo.surge";
/// The shop (Hoan Kiem, Hanoi) and where the seeded customers live.
const SHOP: (f64, f64) = (21.0285, 105.8542);
const HOMES: [(f64, f64); 3] = [
    (21.0362, 105.8601),
    (21.0231, 105.8467),
    (21.0330, 105.8455),
];
/// Simulated shippers' speed, metres per second, and report interval.
const SPEED_MPS: f64 = 12.0;
const TICK: Duration = Duration::from_secs(1);
const METRES_PER_DEG: f64 = 111_195.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub role: String,
    pub email: String,
    pub name: String,
    /// Played by the demo itself (not for you to log in as).
    #[serde(default)]
    pub simulated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    pub id: String,
    pub title: String,
    pub owner_id: crate::domain::ids::UserId,
}

/// What the seed created; served as `/demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seeded {
    pub password: String,
    pub logins: Vec<Login>,
    pub shop_id: crate::domain::ids::ShopId,
    pub flash_sales: Vec<Queue>,
    pub courses: Vec<Queue>,
    /// The generated shops, in `SHOPS` order (their merchants are
    /// simulated).
    #[serde(default)]
    pub shops: Vec<crate::domain::ids::ShopId>,
}

/// One JSON call to Surge's API: the answer's body, or an error naming the
/// URL, the status and the body when it is not a success. (Also the
/// benchmark's client.)
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.request(method, &url);
    if !body.is_null() {
        req = req.json(&body);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{url}: {status} {v}");
    Ok(v)
}

/// A client of this server's own API.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        call(
            &self.http,
            method,
            format!("{}{path}", self.base),
            token,
            body,
        )
        .await
    }
    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, Some(token), Value::Null)
            .await
    }
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, body).await
    }
    async fn put(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(token), body)
            .await
    }

    /// Logs in, registering the account first when it does not exist.
    async fn account(&self, login: &Login) -> anyhow::Result<(String, String)> {
        let creds = json!({"email": login.email, "password": PASSWORD});
        let pair = match self.post("/api/v1/auth/login", None, creds.clone()).await {
            Ok(p) => p,
            Err(_) => {
                self.post("/api/v1/auth/register", None,
                    json!({"email": login.email, "password": PASSWORD, "name": login.name, "role": login.role})).await?;
                self.post("/api/v1/auth/login", None, creds).await?
            }
        };
        let token = pair["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        let me = self.get("/api/v1/users/profile", &token).await?;
        Ok((token, me["id"].as_str().context("user id")?.to_owned()))
    }
}

/// Seeds the server at `base` (once per `data_dir`) and starts the
/// simulations; returns what was seeded. The simulations run until the
/// process ends.
pub async fn start(base: &str, data_dir: &Path) -> anyhow::Result<Seeded> {
    let c = Client {
        http: crate::http::client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: base.trim_end_matches('/').to_owned(),
    };
    let file = data_dir.join("demo.json");
    let seeded = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("demo.json")?,
        Err(_) => {
            let s = seed(&c).await?;
            std::fs::write(&file, serde_json::to_vec_pretty(&s)?)?;
            s
        }
    };
    let logins = seeded.logins.clone();
    let find = |email: &str| {
        logins
            .iter()
            .find(|l| l.email == email)
            .cloned()
            .context("demo login")
    };
    let merchants = std::iter::once(("mai@demo.surge".to_owned(), seeded.shop_id.clone())).chain(
        seeded
            .shops
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("shop{i}@demo.surge"), s.clone())),
    );
    for (email, shop) in merchants {
        let (mc, merchant) = (c.clone(), find(&email)?);
        tokio::spawn(
            async move { forever("merchant", || run_merchant(&mc, &merchant, &shop)).await },
        );
    }
    let customer = find("an@demo.surge")?;
    let cc = c.clone();
    tokio::spawn(async move { forever("customer", || run_customer(&cc, &customer)).await });
    for l in logins.iter().filter(|l| l.simulated && l.role == "shipper") {
        let (c, l) = (c.clone(), l.clone());
        tokio::spawn(async move { forever("shipper", || run_shipper(&c, &l)).await });
    }
    Ok(seeded)
}

/// Runs a simulation again after a failure (a restart of the server, say).
async fn forever<F, Fut>(what: &str, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        if let Err(e) = run().await {
            tracing::warn!(error = %format!("{e:#}"), "demo {what} stopped; restarting");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
