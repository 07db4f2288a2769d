//! The embedded web front end: served at `/` from the binary, with a
//! policy that keeps the page on this server; `/demo.json` only on a demo.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn the_front_end_is_served_from_the_binary_and_talks_only_to_its_origin() {
    let app = spawn_app().await;
    for (path, kind, needle) in [
        ("/", "text/html", r#"<script src="/app.js">"#),
        ("/app.js", "text/javascript", "new WebSocket("),
        ("/style.css", "text/css", "svg.map"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let headers = r.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        // No third-party origin anywhere in what the page loads.
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{path} names another origin"
        );
    }
    let (status, body) = app.get("/demo.json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}
