//! The operator's commands: the configuration reference, the first admin,
//! reindexing, backup and restore.

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{shop_with_product, spawn_app, spawn_app_in};

/// docs/configuration.md is what `surge config reference` prints, so a
/// setting added, removed, re-documented or given another default without
/// the doc fails here. `SURGE_BLESS_DOCS=1` writes the file instead.
#[test]
fn the_configuration_doc_is_generated_from_the_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["config", "reference"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    if std::env::var_os("SURGE_BLESS_DOCS").is_some() {
        std::fs::write(&path, &printed).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written == printed,
        "docs/configuration.md differs from `surge config reference`: edit the doc \
         comments of Settings, then run SURGE_BLESS_DOCS=1 cargo nextest run \
         -E 'test(the_configuration_doc)'"
    );
    // A few rows, read back as a reader would.
    assert!(written.contains("| `addr` | `127.0.0.1:8080` |"));
    assert!(written.contains("| `hash_concurrency` | CPU count |"));
    assert!(written.contains("| `smtp_url` | unset |"));
}

/// `surge <args>` on data dir `dir`, `stdin` written to it; (success,
/// stdout, stderr).
fn surge(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(args)
        .env("SURGE_DATA_DIR", dir)
        .env("SURGE_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env_remove("RUST_LOG")
        .env("SURGE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_create_makes_the_first_admin_without_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let email = "ops@example.com";
    let password = "a long admin password 7";
    // A weak password is refused, and nothing is created.
    let (ok, _, err) = surge(dir.path(), &["admin", "create", email], "short\n");
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, err) = surge(
        dir.path(),
        &["admin", "create", email],
        &format!("{password}\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("ops@example.com is an admin"), "{out}");

    let app = spawn_app_in(dir, |_| {}).await;
    // A customer who registers later is no admin; the created one is.
    let customer = app.user("customer").await;
    let (status, _) = app.get("/api/v1/admin/users", Some(&customer.access)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": "short"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "only the strong password was kept"
    );
    let admin = app.login_with(email, password).await;
    let (status, users) = app.get("/api/v1/admin/users", Some(&admin.access)).await;
    assert_eq!(status, StatusCode::OK, "{users}");

    // Run again on an existing customer: promoted, password unchanged.
    let dir = app.stop().await;
    let (ok, _, err) = surge(
        dir.path(),
        &["admin", "create", &customer.email],
        "another long password 8\n",
    );
    assert!(ok, "{err}");
    let app = spawn_app_in(dir, |_| {}).await;
    let promoted = app.login(&customer.email).await;
    let (status, _) = app.get("/api/v1/admin/users", Some(&promoted.access)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reindex_rebuilds_the_search_index_from_the_catalog() {
    let app = spawn_app().await;
    let (_m, _shop, product) = shop_with_product(&app, 100_000, 5).await;
    let dir = app.stop().await;
    let index = dir.path().join("search");
    std::fs::remove_dir_all(&index).unwrap();
    let (ok, out, err) = surge(dir.path(), &["reindex"], "");
    assert!(ok, "{err}");
    // One shop and one product.
    assert!(out.contains("indexed 2 "), "{out}");
    assert!(index.is_dir(), "the index is written again");

    // With the server running the index is locked: refused, not spoiled.
    let app = spawn_app_in(dir, |_| {}).await;
    let (ok, _, err) = surge(&app.data_dir(), &["reindex"], "");
    assert!(!ok, "reindex beside a running server");
    assert!(!err.is_empty());
    let (status, found) = app.get("/api/v1/search?q=yoga+mat", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == product.as_str()),
        "{found}"
    );
}

/// Every answer carries its request's id; an error quotes the same id (the
/// one its log lines carry); a plain id from a proxy is kept.
#[tokio::test]
async fn an_error_quotes_the_request_id_its_answer_carries() {
    let app = spawn_app().await;
    let client = crate::helpers::client();
    let resp = client
        .post(format!("{}/api/v1/auth/register", app.base))
        .json(&json!({"email": "x@example.com", "password": "short", "name": "X", "role": "customer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["id"], id.as_str());
    let resp = client
        .get(format!("{}/api/v1/no-such-route", app.base))
        .header("x-request-id", "edge-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "edge-42");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["id"], "edge-42");
}
