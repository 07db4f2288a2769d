//! Process life: data survives a restart, `surge serve` stops cleanly on
//! SIGTERM, the CLI explains itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn data_survives_a_restart() {
    let app = spawn_app().await;
    let m = app.user("merchant").await;
    let (_, shop) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let shop_id = shop["id"].as_str().unwrap().to_owned();
    let (_, product) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&m.access),
            product_body("Mat", "yoga", 300),
        )
        .await;
    let product_id = product["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/api/v1/users/addresses",
            Some(&m.access),
            json!({"label": "home", "line1": "1 A", "city": "Hue", "lat": 16.4, "lng": 107.6}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    // The session (and its access token) survived too.
    let (status, profile) = app.get("/api/v1/users/profile", Some(&m.access)).await;
    assert_eq!(
        (status, profile["email"].as_str()),
        (StatusCode::OK, Some(m.email.as_str()))
    );
    app.login(&m.email).await;
    assert_eq!(
        app.get(&format!("/api/v1/shops/{shop_id}"), None).await.1,
        shop
    );
    assert_eq!(
        app.get(&format!("/api/v1/products/{product_id}"), None)
            .await
            .1,
        product
    );
    let (_, page) = app.get("/api/v1/products", None).await;
    assert_eq!(
        page["items"][0]["id"], product["id"],
        "read tables survive too"
    );
    let (_, addresses) = app.get("/api/v1/users/addresses", Some(&m.access)).await;
    assert_eq!(addresses[0]["label"], "home");
    // Email uniqueness survives the restart.
    let (status, _) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": m.email, "password": PASSWORD, "name": "Again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `surge serve` as a child process on `port` with data in `dir`, plus
/// `env` (`SURGE_*` settings); output discarded.
pub(crate) fn serve_child(
    dir: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> std::process::Child {
    serve_child_logging(dir, port, env, Stdio::null())
}

/// [`serve_child`], its standard output (the log) going to `log`.
pub(crate) fn serve_child_logging(
    dir: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
    log: Stdio,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("SURGE_DATA_DIR", dir)
        // Every test client comes from loopback (see `test_settings`).
        .envs([
            // Nodes side by side: no metrics listener each, the metrics on
            // the API port with the tests' token (`METRICS_TOKEN`).
            ("SURGE_METRICS_ADDR", ""),
            ("SURGE_METRICS_TOKEN", crate::helpers::METRICS_TOKEN),
            ("SURGE_MAX_CONNECTIONS_PER_IP", "1000000"),
            ("SURGE_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "0"),
            ("SURGE_LOGIN_ATTEMPTS_PER_ACCOUNT_PER_HOUR", "0"),
            ("SURGE_REGISTRATIONS_PER_IP_PER_HOUR", "0"),
        ])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `base` answers `/healthz`. The bound catches a server that
/// never comes up, not a slow one: a debug build starting on the CQL
/// emulator took over 30 s once with both cores busy with two test runs
/// (3 s alone).
pub(crate) async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become healthy");
}

#[tokio::test]
async fn serve_exits_zero_on_sigterm_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let client = crate::helpers::client();
    let spawn = |port: u16| serve_child(dir.path(), port, &[("SURGE_LOG", "warn")]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(port);
    wait_healthy(&client, &base).await;
    let resp = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "proc@example.com", "password": PASSWORD, "name": "P"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(
        dir.path().join("jwt.secret").exists(),
        "a JWT secret is generated in the data dir"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "graceful shutdown exits 0");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(port);
    wait_healthy(&client, &base).await;
    let resp = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "proc@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the account survived the restart"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--addr",
        "--data-dir",
        "--config",
        "SURGE_ADDR",
        "SURGE_DATA_DIR",
        "flag > environment > file > default",
    ] {
        assert!(
            text.contains(needle),
            "serve --help lacks {needle}:\n{text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("serve"));
    let bad = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["serve", "--addr", "nonsense"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOST:PORT"));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let app = spawn_app_with(|s| s.hash_concurrency = 1).await;
    // Each registration hashes a password (tens of milliseconds) on one
    // permit, so these are still in flight when shutdown begins.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"email": format!("inflight{i}@example.com"), "password": PASSWORD, "name": "F"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Wait until all twelve are inside the server (the /metrics request
    // goes to the metrics listener: not counted).
    let started = Instant::now();
    while app.metric("surge_http_requests_in_flight").await < 12.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "requests never arrived: {}",
            app.metric("surge_http_requests_in_flight").await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = app.stop().await;
    for t in tasks {
        let status = t
            .await
            .unwrap()
            .expect("an accepted request is answered, not cut off");
        assert_eq!(status, StatusCode::CREATED);
    }
    let app = spawn_app_in(dir, |_| {}).await;
    for i in 0..12 {
        app.login(&format!("inflight{i}@example.com")).await;
    }
}
