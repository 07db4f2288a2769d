//! The web front end (`web/`), embedded in the binary and served at `/`:
//! plain files, no build step, and a Content-Security-Policy that lets the
//! page talk to this server only.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::AppState;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");

/// Scripts, styles, images and connections (HTTP and WebSocket) from this
/// origin only (images also as `blob:` URLs the page makes of images it
/// fetched with the session: a return's photos); nothing may frame the page.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `/demo.json`: the demo's logins and ids (404 unless run by `surge demo`).
pub async fn demo(State(s): State<AppState>) -> Response {
    match s.demo.get() {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => {
            super::error::AppError::new(StatusCode::NOT_FOUND, "not_found", "not a demo server")
                .into_response()
        }
    }
}
