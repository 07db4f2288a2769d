//! `spawn_app()`: the engine built exactly as `surge serve` builds it, on
//! port 0 with a fresh temp data dir, plus a typed HTTP client.

use std::path::PathBuf;
use std::sync::Once;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use surge::app::Application;
use surge::config::Settings;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TEST_SECRET: &str = "test-secret-0123456789-abcdefghij-klmnop";
/// The token that opens `/metrics` on the API port of the servers the
/// tests start as processes (`lifecycle::serve_child`).
pub const METRICS_TOKEN: &str = "test-metrics-0123456789-abcdefghij";
pub const PASSWORD: &str = "correct horse battery";

static LOG: Once = Once::new();

fn init_log() {
    LOG.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_env_filter("info").init();
        }
    });
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    /// Kept alive as long as the app (the CQL emulator it talks to).
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The running app's state: its use cases and entities, for tests that
    /// stage what no request can (a checkout interrupted by a crash).
    /// `None` for a client of a server in another process (`TestApp::at`).
    pub state: Option<surge::http::state::AppState>,
    /// Where the app serves `/metrics` (its metrics listener).
    pub metrics: Option<String>,
    /// The app's OpenAPI document, fetched on the first `/api/v1` answer:
    /// every answer a test receives is checked against it.
    doc: std::sync::Arc<tokio::sync::OnceCell<Value>>,
}

/// Every HTTP client the tests use, built one way: an idle pool below the
/// server's keep-alive and one retry of a request safe to repeat on a
/// reset (`surge::http::client`, the rule docs/api.md gives clients).
pub fn client_builder() -> reqwest::ClientBuilder {
    surge::http::client::builder()
}

/// [`client_builder`] with nothing more set.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("an HTTP client")
}

pub fn test_settings(dir: PathBuf) -> Settings {
    Settings {
        addr: "127.0.0.1:0".into(),
        metrics_addr: "127.0.0.1:0".into(),
        data_dir: dir,
        jwt_secret: Some(TEST_SECRET.into()),
        // Every test client comes from loopback: the per-address limits
        // are lifted here and switched back on by the tests of them.
        max_connections_per_ip: 1_000_000,
        login_attempts_per_ip_per_minute: 0,
        login_attempts_per_account_per_hour: 0,
        registrations_per_ip_per_hour: 0,
        password_resets_per_ip_per_hour: 0,
        // One queue actor per queue unless a test splits it (the default
        // follows the machine's cores).
        burst_queue_parts: 1,
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir, tweak).await
}

/// Starts an app on `dir` (retrying while a previous app on it releases
/// the store).
pub async fn spawn_app_in(dir: TempDir, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_log();
    let mut settings = test_settings(dir.path().to_owned());
    tweak(&mut settings);
    let mut attempts = 0;
    let app = loop {
        match Application::build(settings.clone()).await {
            Ok(app) => break app,
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("app did not start: {e}"),
        }
    };
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: crate::helpers::client(),
        dir: Some(dir),
        stop: Some(tx),
        handle: Some(handle),
        guard: None,
        state: Some(state),
        metrics,
        doc: Default::default(),
    }
}

/// The document's path template `path` matches: same segments, `{..}`
/// standing for any one; the template with the most literal segments wins
/// (`/orders/mine` over `/orders/{id}`).
fn documented_path<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') {
                    continue;
                }
                if p != s {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

pub struct Session {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// The app's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.as_ref().expect("running").path().to_owned()
    }

    /// The port the app listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Graceful stop; returns the data dir for a restart.
    pub async fn stop(mut self) -> TempDir {
        let _ = self.stop.take().expect("running").send(());
        self.handle
            .take()
            .expect("running")
            .await
            .expect("server task");
        self.dir.take().expect("dir")
    }

    /// A client of `base` — a load balancer in front of several apps — as a
    /// `TestApp` (sharing this app's state handle; it cannot be stopped).
    /// Every request opens a new connection, so a balancer that picks a
    /// node per connection spreads the requests.
    pub fn behind(&self, base: String) -> TestApp {
        TestApp {
            client: crate::helpers::client_builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            doc: self.doc.clone(),
            ..TestApp::at(base)
        }
    }

    /// A client of the server at `base` (`http://host:port`), one this test
    /// did not start (a `surge serve` process): the same typed helpers,
    /// nothing to stop.
    pub fn at(base: String) -> TestApp {
        TestApp {
            base,
            client: crate::helpers::client_builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("client"),
            dir: None,
            stop: None,
            handle: None,
            guard: None,
            state: None,
            metrics: None,
            doc: Default::default(),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        self.assert_documented(&method, path, status, &value).await;
        (status, value)
    }

    /// Fails the test if the OpenAPI document does not list `status` for
    /// the operation `path` (an `/api/v1` path) reached: the document
    /// states every answer the server gives.
    async fn assert_documented(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        body: &Value,
    ) {
        if !path.starts_with("/api/v1/") {
            return;
        }
        let doc = self
            .doc
            .get_or_init(|| async {
                let resp = self
                    .client
                    .get(format!("{}/openapi.json", self.base))
                    .send()
                    .await
                    .expect("openapi request");
                resp.json().await.expect("openapi json")
            })
            .await;
        let path = path.split('?').next().unwrap_or(path);
        let Some(template) = documented_path(doc, path) else {
            return;
        };
        let Some(op) = doc["paths"][template].get(method.as_str().to_lowercase()) else {
            return;
        };
        let responses = &op["responses"];
        assert!(
            responses.get(status.as_str()).is_some() || responses.get("default").is_some(),
            "{method} {template} answered {status}, which the OpenAPI document does not list: {body}"
        );
    }

    /// Every item of a paged list: `path` (with its query, if any) then
    /// each `next_cursor`; fails past `max_pages` pages.
    pub async fn all_pages(&self, path: &str, token: Option<&str>, max_pages: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages {
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_owned(),
            };
            let (status, page) = self.get(&page_path, token).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
        panic!("{path}: pagination did not end");
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, token, None).await
    }

    pub async fn register(&self, email: &str, role: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Test User", "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn login(&self, email: &str) -> Session {
        self.login_with(email, PASSWORD).await
    }

    pub async fn login_with(&self, email: &str, password: &str) -> Session {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, profile) = self
            .get("/api/v1/users/profile", body["access_token"].as_str())
            .await;
        Session {
            id: profile["id"].as_str().expect("id").to_owned(),
            email: email.to_owned(),
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// A fresh user of `role`, logged in.
    pub async fn user(&self, role: &str) -> Session {
        let email = format!("{}-{}@example.com", role, uuid::Uuid::new_v4().simple());
        self.register(&email, role).await;
        self.login(&email).await
    }

    /// The `/metrics` exposition, from the app's metrics listener.
    pub async fn metrics_text(&self) -> String {
        let metrics = self
            .metrics
            .as_deref()
            .expect("an app with a metrics listener");
        let resp = self
            .client
            .get(format!("{metrics}/metrics"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// A value of a Prometheus metric line starting with `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics_text().await, prefix)
    }
}

pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Asserts the error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    assert!(
        e["id"].as_str().is_some_and(|m| !m.is_empty()),
        "error without id: {body}"
    );
    e["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without code: {body}"))
}

pub fn shop_body() -> Value {
    json!({"name": "Hanoi Yoga Shop", "location": {"lat": 21.03, "lng": 105.85}, "address": "1 Trang Tien"})
}

pub fn product_body(name: &str, category: &str, price: u64) -> Value {
    json!({"name": name, "category": category, "price": price, "currency": "VND", "stock": 10, "weight_grams": 500})
}

/// A merchant with a shop and one 800 g product of `price` and `stock`:
/// `(merchant, shop id, product id)`.
pub async fn shop_with_product(app: &TestApp, price: u64, stock: u64) -> (Session, String, String) {
    let m = app.user("merchant").await;
    let (status, shop) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let shop_id = shop["id"].as_str().unwrap().to_owned();
    let mut body = product_body("Yoga Mat", "yoga", price);
    body["stock"] = json!(stock);
    body["weight_grams"] = json!(800);
    let (status, p) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&m.access),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    (m, shop_id, p["id"].as_str().unwrap().to_owned())
}
