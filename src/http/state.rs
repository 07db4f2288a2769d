//! What every handler can reach.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::http::ws::Gate;
use crate::metrics::Metrics;
use crate::service::Services;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The header a trusted reverse proxy puts the client's address in.
    pub client_ip_header: Option<axum::http::HeaderName>,
    pub services: Arc<Services>,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins; `/readyz` turns 503.
    pub shutting_down: Arc<AtomicBool>,
    /// Flips to `true` when shutdown begins; WebSocket sessions close (1001).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Who may open live sessions.
    pub ws: Arc<Gate>,
    /// The digest of `metrics_token`: the bearer that opens `/metrics` on
    /// the API port (none: 404 there).
    pub metrics_token: Option<[u8; 32]>,
    /// What `surge demo` seeded (logins, ids), served as `/demo.json`.
    pub demo: Arc<std::sync::OnceLock<serde_json::Value>>,
}
