//! The WebSocket transport: `GET /api/v1/ws`. Topics, payloads and the bus
//! are in `live`; who may watch what, and what a client missed, is
//! `service::platform::topics`. This module upgrades the connection (origin, token,
//! the per-user cap), runs its session and encodes frames for the wire.
//!
//! - `protocol`: the frames (JSON, or MessagePack with `surge.msgpack`).
//! - `session`: one connection's logic, generic over `Sink`/`Stream`.
//! - `gate`: the `Origin` allow-list and the per-user connection cap.
//!
//! Topics: `user:{id}` (that user, or an admin), `order:{id}` (its
//! customer, its shop's merchant, its shipper, admins), `shipper:{id}`
//! (that shipper, admins, and, scoped to their order, the customer whose
//! order the shipper is delivering) and `queue:{id}` (capacity counters,
//! any signed-in user). `/api/v1/notifications/live`,
//! `/api/v1/orders/{id}/live-updates` and
//! `/api/v1/shipping/{order_id}/live-tracking` are the same session,
//! subscribed to the one topic from the start.

mod gate;
pub mod protocol;
pub mod session;

pub use gate::{Admitted, Gate};

use std::sync::Arc;

use crate::http::extract::Query;
use async_trait::async_trait;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::domain::shipping::Fix;
use crate::http::error::AppError;
use crate::http::extract::Path;
use crate::http::state::AppState;
use crate::live::{LiveEvent, Topic};
use crate::service::platform::topics::{Scope, Topics};
use crate::service::{AuthUser, ServiceError, Services};
use protocol::{Codec, ServerMsg, JSON_PROTOCOL, MSGPACK_PROTOCOL, TOKEN_PROTOCOL_PREFIX};
use session::{Limits, SessionCtx, TopicSource};

/// Largest message a client may send (bigger closes the session with
/// 1009); the transport drops anything past 16 times this without reading it.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Read buffer per connection. tungstenite zeroes its whole read buffer
/// before each read, so its default (128 KiB) made every idle session cost
/// ~140 KiB of resident memory (`bench/`, scenario `connections`); client
/// frames are small (a position is ~100 bytes) and bigger ones are
/// assembled across reads.
pub const READ_BUFFER_BYTES: usize = 2 * 1024;
/// The session's way into the services: topics (`service::platform::topics`),
/// token renewal and shippers' positions, their refusals as frames.
pub struct Gateway {
    services: Arc<Services>,
    topics: Topics,
}

impl Gateway {
    pub fn new(services: Arc<Services>) -> Self {
        Gateway {
            topics: Topics::new(services.clone()),
            services,
        }
    }
}

#[async_trait]
impl TopicSource for Gateway {
    async fn authorize(&self, user: &AuthUser, topic: &Topic) -> Result<Scope, ServerMsg> {
        self.topics
            .authorize(user, topic)
            .await
            .map_err(|r| ServerMsg::error(r.code, r.message))
    }

    async fn reauthenticate(&self, token: &str) -> Result<AuthUser, ServerMsg> {
        self.services.auth.authenticate(token).await.map_err(|e| {
            let err = AppError::from(e);
            ServerMsg::error(&err.code, err.message)
        })
    }

    async fn location(&self, user: &AuthUser, fix: Fix) -> Result<(), ServerMsg> {
        match self
            .services
            .shipping
            .report_location(&user.caller(), fix)
            .await
        {
            Ok(_) => Ok(()),
            Err(ServiceError::Domain(d)) => {
                let err = AppError::from(ServiceError::Domain(d));
                Err(ServerMsg::error(&err.code, err.message))
            }
            Err(e) => Err(ServerMsg::error("unavailable", e.to_string())),
        }
    }

    async fn head(&self, topic: &Topic) -> Result<u64, String> {
        self.topics.head(topic).await
    }

    async fn replay(
        &self,
        topic: &Topic,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
        self.topics.replay(topic, after, until).await
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    token: Option<String>,
    /// For the single-topic paths: resume after this sequence number.
    since: Option<u64>,
}

fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What a path subscribes to from the start.
enum Initial {
    None,
    /// `user:{the caller}`.
    Mine,
    Order(String),
}

/// Authenticate (Authorization header, a `bearer.<token>` subprotocol, or
/// `?token=`), check the origin and the per-user cap, negotiate the codec,
/// then run the session.
async fn open_session(
    state: AppState,
    headers: HeaderMap,
    q: WsQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    initial: Initial,
) -> Result<Response, AppError> {
    state.ws.check_origin(&headers)?;
    let offered = offered_protocols(&headers);
    let token = match headers.get(header::AUTHORIZATION) {
        Some(_) => crate::http::extract::bearer(&headers)?.to_owned(),
        None => offered
            .iter()
            .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX).map(str::to_owned))
            .or(q.token)
            .ok_or_else(|| AppError::unauthorized("missing token: use the Authorization header, a bearer.<token> subprotocol or ?token="))?,
    };
    // Watch the user's revocations before checking the session, so one
    // that ends in between is not missed.
    let subject = state.services.auth.token_subject(&token)?;
    let revocations = state.services.bus.watch_revocations(&subject);
    let user = state.services.auth.authenticate(&token).await?;
    let upgrade = upgrade.map_err(|r| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "websocket_upgrade_required",
            r.to_string(),
        )
    })?;
    let admitted = state.ws.admit(&user.id)?;
    let (codec, selected) = if offered.iter().any(|p| p == MSGPACK_PROTOCOL) {
        (Codec::MsgPack, Some(MSGPACK_PROTOCOL))
    } else if offered.iter().any(|p| p == JSON_PROTOCOL) {
        (Codec::Json, Some(JSON_PROTOCOL))
    } else {
        (Codec::Json, None)
    };
    let upgrade = match selected {
        Some(p) => upgrade.protocols([p]),
        None => upgrade,
    };
    let initial = match initial {
        Initial::None => vec![],
        Initial::Mine => vec![(Topic::user(&user.id).to_string(), q.since)],
        Initial::Order(id) => vec![(Topic::order(&id).to_string(), q.since)],
    };
    let ctx = SessionCtx {
        user,
        revocations,
        codec,
        bus: state.services.bus.clone(),
        topics: Arc::new(Gateway::new(state.services.clone())),
        limits: Limits {
            max_message: MAX_MESSAGE_BYTES,
            ..Limits::default()
        },
        shutdown: state.shutdown.clone(),
        initial,
        metrics: state.metrics.clone(),
    };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES * 16)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _admitted = admitted;
            let (sink, stream) = futures_util::StreamExt::split(socket);
            session::run(sink, stream, ctx).await;
        }))
}

/// `GET /api/v1/ws`: a multiplexed session.
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    open_session(state, headers, q, upgrade, Initial::None).await
}

/// `GET /api/v1/notifications/live`: the session, subscribed to `user:{me}`.
pub async fn notifications_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    open_session(state, headers, q, upgrade, Initial::Mine).await
}

/// `GET /api/v1/orders/{id}/live-updates`: the session, subscribed to `order:{id}`.
pub async fn order_live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    open_session(state, headers, q, upgrade, Initial::Order(id)).await
}
