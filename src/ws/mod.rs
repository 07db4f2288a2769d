//! Live updates over WebSocket: `GET /api/v1/ws`.
//!
//! - `bus`: in-process topic pub/sub that entity actors publish to after
//!   persisting.
//! - `protocol`: the frames (JSON, or MessagePack with `surge.msgpack`).
//! - `session`: one connection's logic, generic over `Sink`/`Stream`.
//!
//! Topics served today: `user:{id}` (that user, or an admin). Order,
//! shipper and queue topics arrive with their entities.

pub mod bus;
pub mod protocol;
pub mod session;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::actors::entity::stream_id;
use crate::actors::user::{User, UserEvent};
use crate::actors::Entity;
use crate::domain::Role;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::{AuthUser, Services};
use crate::store::codec;
use protocol::{Codec, ServerMsg, JSON_PROTOCOL, MSGPACK_PROTOCOL, TOKEN_PROTOCOL_PREFIX};
use session::{Limits, SessionCtx, TopicSource};

/// Largest frame a client may send.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Journal records read per replay page.
pub const REPLAY_PAGE: usize = 1024;

/// Topic authorization and replay over the entities.
pub struct Topics {
    services: Arc<Services>,
}

impl Topics {
    pub fn new(services: Arc<Services>) -> Self {
        Topics { services }
    }
}

fn user_id_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("user:")
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
}

#[async_trait]
impl TopicSource for Topics {
    async fn authorize(&self, user: &AuthUser, topic: &str) -> Result<(), ServerMsg> {
        match topic.split_once(':') {
            Some(("user", _)) => match user_id_of(topic) {
                Some(id) if id == user.id || user.role == Role::Admin => Ok(()),
                _ => Err(ServerMsg::error(
                    "forbidden",
                    format!("you may not watch {topic}"),
                )),
            },
            Some((kind @ ("order" | "shipper" | "queue"), _)) => Err(ServerMsg::error(
                "unknown_topic",
                format!("{kind} topics are not served yet"),
            )),
            _ => Err(ServerMsg::error(
                "unknown_topic",
                format!("no such topic: {topic}"),
            )),
        }
    }

    async fn head(&self, topic: &str) -> Result<u64, String> {
        let id = user_id_of(topic).ok_or("unknown topic")?;
        self.services
            .store
            .head(&stream_id::<User>(id))
            .await
            .map_err(|e| e.to_string())
    }

    async fn replay(
        &self,
        topic: &str,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, serde_json::Value)>, u64), String> {
        let id = user_id_of(topic).ok_or("unknown topic")?;
        let limit = REPLAY_PAGE.min(until.saturating_sub(after) as usize);
        let page = self
            .services
            .store
            .read(&stream_id::<User>(id), after, limit)
            .await
            .map_err(|e| e.to_string())?;
        let mut covered = after;
        let mut out = Vec::with_capacity(page.len());
        for rec in page {
            covered = rec.seq;
            let event: UserEvent =
                codec::decode(User::VERSION, &rec.payload).map_err(|e| e.to_string())?;
            if let Some((_, data)) = User::publish(id, &event) {
                out.push((rec.seq, data));
            }
        }
        Ok((out, covered))
    }
}

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
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

/// `GET /api/v1/ws`: authenticate (Authorization header, a `bearer.<token>`
/// subprotocol, or `?token=`), negotiate the codec, then run the session.
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let offered = offered_protocols(&headers);
    let token = match headers.get(header::AUTHORIZATION) {
        Some(_) => crate::http::extract::bearer(&headers)?.to_owned(),
        None => offered
            .iter()
            .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX).map(str::to_owned))
            .or(q.token)
            .ok_or_else(|| AppError::unauthorized("missing token: use the Authorization header, a bearer.<token> subprotocol or ?token="))?,
    };
    let user = state.services.authenticate(&token).await?;
    let upgrade = upgrade.map_err(|r| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "websocket_upgrade_required",
            r.to_string(),
        )
    })?;
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
    let ctx = SessionCtx {
        user,
        codec,
        bus: state.services.bus.clone(),
        topics: Arc::new(Topics::new(state.services.clone())),
        limits: Limits::default(),
        shutdown: state.shutdown.clone(),
    };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = futures_util::StreamExt::split(socket);
            session::run(sink, stream, ctx).await;
        }))
}
