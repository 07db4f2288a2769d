//! The HTTP edge: error shape for unknown routes, wrong methods, oversized
//! and mistyped bodies; OpenAPI and docs; ops endpoints; header timeout.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn every_failure_uses_the_error_shape() {
    let app = spawn_app_with(|s| s.body_limit_bytes = 1024).await;
    let (status, body) = app.get("/api/v1/no-such-thing", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = app.delete("/api/v1/auth/login", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    let big = json!({"email": "a@example.com", "password": "x".repeat(4096), "name": "X"});
    let (status, body) = app.post("/api/v1/auth/register", None, big).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    let resp = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        error_code(&resp.json().await.unwrap()),
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn openapi_docs_and_ops_endpoints() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/products",
        "/api/v1/courses/{id}",
        "/api/v1/users/addresses/{id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app
        .client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));

    assert_eq!(app.get("/healthz", None).await.1["status"], "ok");
    assert_eq!(app.get("/readyz", None).await.1["status"], "ready");
    app.user("customer").await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"surge_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("surge_http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"surge_actors_live{kind="user"}"#));
    assert!(metrics.contains("surge_journal_commit_seconds_count"));
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = spawn_app_with(|s| s.header_read_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server must close a connection whose headers never finish"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
}
