//! Operations endpoints, the request-context and the request-metrics
//! middleware.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::Json;
use super::state::AppState;
use crate::metrics::HttpLabels;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers and the server is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> Result<Json<Health>, AppError> {
    if s.shutting_down.load(Ordering::Acquire) {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        ));
    }
    s.services.store.ping().await.map_err(|e| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    })?;
    // Cluster mode: ready once this node holds every shard placement gives
    // it (it forwards the rest, but a node taking no shards is not done
    // starting, or is draining).
    if let Some(c) = &s.services.cluster {
        if !c.is_ready() {
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shards_not_held",
                "this node does not yet hold the shards placed on it",
            ));
        }
    }
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus metrics (text exposition format).
/// The metrics on the API port: only with `metrics_token` set, and then
/// only for `Authorization: Bearer <metrics_token>` (404 without the
/// setting, 401 without the token). Their own listener (`metrics_addr`)
/// serves them without a token.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(("metrics_token" = [])),
    responses((status = 200, content_type = "application/openmetrics-text", body = String),
        (status = 401, body = ErrorBody, description = "unauthorized: not the metrics token"),
        (status = 404, body = ErrorBody, description = "not_found: metrics_token is not set")))]
pub async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use sha2::Digest;
    let Some(want) = s.metrics_token else {
        return not_found().await.into_response();
    };
    let given = super::extract::bearer(&headers).map(|t| sha2::Sha256::digest(t.as_bytes()));
    // Digests compared: how long it takes tells nothing of the token.
    if !given.is_ok_and(|g| g[..] == want[..]) {
        return AppError::unauthorized("/metrics needs the metrics token").into_response();
    }
    exposition(&s)
}

/// The metrics on their own listener (`metrics_addr`).
pub async fn metrics_listener(State(s): State<AppState>) -> Response {
    exposition(&s)
}

fn exposition(s: &AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// Counts requests and observes latency by method, route template, status.
pub async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    s.metrics.http_in_flight.inc();
    let resp = next.run(req).await;
    s.metrics.http_in_flight.dec();
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    s.metrics.http_requests.get_or_create(&labels).inc();
    s.metrics
        .http_latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// The header carrying a request's id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves every request inside a `request` span named by its id (a valid
/// `x-request-id` the client or a proxy sent, else a new one), with the
/// id in the task's context for the actors and other nodes, and answers
/// it in `x-request-id` (`crate::context`).
pub async fn request_context(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::context::accepted)
        .unwrap_or_else(crate::context::new_id);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let mut resp = crate::context::scope(id.clone(), next.run(req).instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    resp
}

pub async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// The request-timeout layer answers a bare 408: give it the error shape,
/// and close the connection (a half-sent body may still be arriving).
pub async fn timed_out(resp: Response) -> Response {
    if resp.status() != StatusCode::REQUEST_TIMEOUT {
        return resp;
    }
    let mut resp = AppError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request (its body included) took too long",
    )
    .into_response();
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}
