//! The HTTP edge: error shape for unknown routes, wrong methods, oversized
//! and mistyped bodies; OpenAPI and docs; ops endpoints; header and
//! keep-alive deadlines; the client rule (idle pool, one retry).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
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
async fn the_metrics_leave_the_api_port_for_a_listener_of_their_own() {
    // By default on loopback.
    let default: std::net::SocketAddr = surge::config::Settings::default()
        .metrics_addr
        .parse()
        .unwrap();
    assert!(default.ip().is_loopback());
    let app = spawn_app().await;
    app.user("customer").await;
    let get = |url: String, token: Option<&'static str>| {
        let client = app.client.clone();
        async move {
            let mut req = client.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // The API port has none: the counts per route and status tell who logs
    // in, registers, orders or is suspended.
    let (status, body) = get(format!("{}/metrics", app.base), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.contains("surge_http_requests_total"));
    // Their own listener has them, and nothing else.
    let own = app.metrics.clone().unwrap();
    let (status, text) = get(format!("{own}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"route="/api/v1/auth/register",status="201"} 1"#),
        "{text}"
    );
    for path in ["/healthz", "/api/v1/products", "/openapi.json"] {
        assert_eq!(
            get(format!("{own}{path}"), None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    // The runtime, sampled at the scrape; the search index's lag, once
    // the indexer has run (every 500 ms by default).
    let metric = |text: &str, name: &str| crate::helpers::metric_value(text, &format!("{name} "));
    assert!(metric(&text, "surge_runtime_workers") >= 1.0, "{text}");
    assert!(metric(&text, "surge_runtime_alive_tasks") >= 1.0);
    assert!(text.contains("surge_runtime_busy_seconds "));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, text) = get(format!("{own}/metrics"), None).await;
        let lag = metric(&text, "surge_search_index_lag_seconds");
        if text.contains("surge_search_index_lag_seconds ") && lag > 0.0 && lag < 5.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "search lag {lag}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // With a token set, the API port serves them to that bearer only.
    const TOKEN: &str = "metrics-token-0123456789-abcdefghijk";
    let app = spawn_app_with(|s| s.metrics_token = Some(TOKEN.into())).await;
    let url = format!("{}/metrics", app.base);
    assert_eq!(get(url.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    let wrong = "metrics-token-0123456789-abcdefghijX";
    assert_eq!(
        get(url.clone(), Some(wrong)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = get(url, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("surge_http_requests_total"));
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

/// Reads one HTTP/1.1 answer (headers and a `Content-Length` body) off
/// `stream`, within `limit`; `None` when the server closed the connection
/// first.
async fn read_answer(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return Some(text);
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.expect("an answer or a close within the limit")
}

#[tokio::test]
async fn a_kept_alive_connection_idles_past_the_header_deadline_until_its_own() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout_secs = 1;
        s.keep_alive_idle_secs = 3;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(request).await.unwrap();
    let first = read_answer(&mut conn, Duration::from_secs(5)).await;
    assert!(first.is_some_and(|a| a.starts_with("HTTP/1.1 200")));

    // Idle for twice the header deadline: still open, and it answers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    conn.write_all(request).await.unwrap();
    let second = read_answer(&mut conn, Duration::from_secs(5)).await;
    assert!(
        second
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "a kept-alive connection idle past the header deadline was closed: {second:?}"
    );

    // A head started after idling still has only the header deadline.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let cut = read_answer(&mut conn, Duration::from_secs(5)).await;
    assert!(cut.is_none(), "{cut:?}");
    let after = started.elapsed();
    assert!(
        after < Duration::from_millis(2_500),
        "unfinished headers were cut off after {after:?}, not by the header deadline"
    );

    // Idle without a byte: closed by the keep-alive idle deadline.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(request).await.unwrap();
    assert!(read_answer(&mut idle, Duration::from_secs(5))
        .await
        .is_some());
    let idled = std::time::Instant::now();
    assert!(read_answer(&mut idle, Duration::from_secs(8))
        .await
        .is_none());
    let after = idled.elapsed();
    assert!(
        after >= Duration::from_millis(2_500),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn the_test_client_idles_below_the_servers_keep_alive() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_settings(dir.path().to_owned()).keep_alive_idle_secs;
    assert!(
        surge::http::client::CLIENT_IDLE < Duration::from_secs(server),
        "the tests' client pool keeps idle connections {:?}, the server {server} s",
        surge::http::client::CLIENT_IDLE
    );
}

#[tokio::test]
async fn a_client_pool_longer_than_the_keep_alive_gets_no_reset() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout_secs = 1;
        s.keep_alive_idle_secs = 1;
    })
    .await;
    // A pool that keeps idle connections 90 s, as reqwest's and Go's do,
    // in front of a server that closes them after 1 s: requests land just
    // just before, at and just after the server's close, half a
    // millisecond apart (where a plain client meets the race: about one
    // request in ten fails there, `IncompleteMessage` or a reset).
    let client = client_builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let url = format!("{}/healthz", app.base);
    client.get(&url).send().await.unwrap();
    for step in 0..24u64 {
        let idle = Duration::from_micros(994_000 + step * 500);
        tokio::time::sleep(idle).await;
        let answer = client.get(&url).send().await;
        assert!(
            answer.as_ref().is_ok_and(|a| a.status() == StatusCode::OK),
            "after {idle:?} idle: {answer:?}"
        );
    }
}

/// A server that answers a connection's first request, then resets the
/// connection when the second comes (a load balancer closing an idle
/// connection as the client sends on it); every later connection is
/// answered. Returns its address.
async fn resets_the_second_request() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut conn, _)) = listener.accept().await {
            let reset = std::mem::take(&mut first);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                for n in 0.. {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if reset && n == 1 {
                        let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                        return;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_request_safe_to_repeat_is_sent_again_after_a_reset_and_a_post_is_not() {
    // Without the retry the reset reaches the caller: the scene is real.
    let plain = reqwest::Client::new();
    let url = format!("http://{}/x", resets_the_second_request().await);
    plain.get(&url).send().await.unwrap();
    let lost = plain.get(&url).send().await.unwrap_err();
    assert!(surge::http::client::connection_lost(&lost), "{lost:?}");

    let client = client();
    let url = format!("http://{}/x", resets_the_second_request().await);
    client.get(&url).send().await.unwrap();
    let again = client.get(&url).send().await;
    assert!(again.is_ok_and(|a| a.status() == StatusCode::OK));

    let url = format!("http://{}/x", resets_the_second_request().await);
    client.get(&url).send().await.unwrap();
    let post = client.post(&url).body("{}").send().await;
    assert!(post.is_err(), "a POST is never repeated: {post:?}");
}

/// The TypeScript SDK (`web/sdk`) is generated from `web/sdk/openapi.json`:
/// that file is the document the server serves, byte for byte (pretty
/// JSON), so a route or schema changed here without regenerating the SDK
/// fails. `SURGE_BLESS_SDK=1` writes it instead; then `npm run generate`
/// in `web/sdk` makes the types, which its `npm test` checks in turn.
#[tokio::test]
async fn the_sdk_document_is_the_one_the_server_serves() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    // Every reference resolves (a generator refuses a dangling one).
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").expect(r);
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    let served = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/sdk/openapi.json");
    if std::env::var_os("SURGE_BLESS_SDK").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "web/sdk/openapi.json differs from the served document: run \
         SURGE_BLESS_SDK=1 cargo nextest run -E 'test(the_sdk_document)' \
         and `npm run generate` in web/sdk"
    );
}
