//! The WebSocket gateway: `GET /api/v1/ws`. Topics, payloads and the bus
//! are in `live`; this module authenticates, authorizes, replays and
//! encodes them for the wire.
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

use crate::actors::entity::stream_id;
use crate::actors::order::OrderEntity;
use crate::actors::rating::RatingEntity;
use crate::actors::shipper::ShipperEntity;
use crate::actors::user::User;
use crate::actors::Entity;
use crate::domain::review::ReviewKind;
use crate::domain::shipping::Fix;
use crate::domain::Role;
use crate::http::error::AppError;
use crate::http::extract::Path;
use crate::http::state::AppState;
use crate::live::{LiveEvent, Topic};
use crate::service::{AuthUser, ServiceError, Services};
use crate::store::codec;
use protocol::{Codec, ServerMsg, JSON_PROTOCOL, MSGPACK_PROTOCOL, TOKEN_PROTOCOL_PREFIX};
use session::{Limits, Scope, SessionCtx, TopicSource};

/// Largest message a client may send (bigger closes the session with
/// 1009); the transport drops anything past 16 times this without reading it.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Read buffer per connection. tungstenite zeroes its whole read buffer
/// before each read, so its default (128 KiB) made every idle session cost
/// ~140 KiB of resident memory (`bench/`, scenario `connections`); client
/// frames are small (a position is ~100 bytes) and bigger ones are
/// assembled across reads.
pub const READ_BUFFER_BYTES: usize = 2 * 1024;
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

/// One page of `E`'s stream `id` after `after`: its published events and
/// the last sequence number read.
async fn replay_page<E: Entity>(
    store: &dyn crate::store::Store,
    id: &str,
    after: u64,
    until: u64,
) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
    let limit = REPLAY_PAGE.min(until.saturating_sub(after) as usize);
    let page = store
        .read(&stream_id::<E>(id), after, limit)
        .await
        .map_err(|e| e.to_string())?;
    let mut covered = after;
    let mut out = Vec::with_capacity(page.len());
    for rec in page {
        covered = rec.seq;
        let event: E::Event = codec::decode(E::VERSION, &rec.payload).map_err(|e| e.to_string())?;
        if let Some((_, data)) = E::publish(id, &event) {
            out.push((rec.seq, data));
        }
    }
    Ok((out, covered))
}

#[async_trait]
impl TopicSource for Topics {
    async fn authorize(&self, user: &AuthUser, topic: &Topic) -> Result<Scope, ServerMsg> {
        let forbidden = || ServerMsg::error("forbidden", format!("you may not watch {topic}"));
        let decided = |r: Result<Scope, ServiceError>| match r {
            Ok(scope) => Ok(scope),
            Err(ServiceError::Domain(_)) => Err(forbidden()),
            Err(e) => Err(ServerMsg::error("unavailable", e.to_string())),
        };
        match topic {
            Topic::User(id) if user.id == *id || user.role == Role::Admin => Ok(None),
            Topic::User(_) => Err(forbidden()),
            // The order actor decides: its customer, its shop's merchant,
            // its shipper, admins.
            Topic::Order(id) => decided(
                self.services
                    .orders
                    .get_order(&user.caller(), id)
                    .await
                    .map(|_| None),
            ),
            Topic::Shipper(id) => decided(
                self.services
                    .shipping
                    .shipper_topic_scope(&user.caller(), id)
                    .await,
            ),
            // Capacity counters are public to every signed-in user.
            Topic::Queue(id) => match self.services.queues.watchable(id).await {
                Ok(()) => Ok(None),
                Err(ServiceError::Domain(_)) => Err(ServerMsg::error(
                    "not_found",
                    format!("no such queue: {id}"),
                )),
                Err(e) => Err(ServerMsg::error("unavailable", e.to_string())),
            },
            Topic::AdminStats if user.role == Role::Admin => Ok(None),
            Topic::AdminStats => Err(forbidden()),
            // A product's rating is public to every signed-in user.
            Topic::Product(id) => match self
                .services
                .catalog
                .product_for(Some(&user.caller()), id)
                .await
            {
                Ok(_) => Ok(None),
                Err(ServiceError::Domain(_)) => Err(ServerMsg::error(
                    "not_found",
                    format!("no such product: {id}"),
                )),
                Err(e) => Err(ServerMsg::error("unavailable", e.to_string())),
            },
        }
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
        let stream = match topic {
            Topic::User(id) => stream_id::<User>(id),
            Topic::Order(id) => stream_id::<OrderEntity>(id),
            Topic::Shipper(id) => stream_id::<ShipperEntity>(id),
            Topic::Product(id) => stream_id::<RatingEntity>(&format!("product:{id}")),
            Topic::AdminStats => {
                return self
                    .services
                    .stats
                    .applied()
                    .await
                    .map_err(|e| e.to_string())
            }
            // A split queue's counters move with its parts' journals too.
            Topic::Queue(id) => {
                return self
                    .services
                    .queue_work
                    .queue_seq(id)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        self.services
            .store
            .head(&stream)
            .await
            .map_err(|e| e.to_string())
    }

    async fn replay(
        &self,
        topic: &Topic,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
        let store = self.services.store.as_ref();
        match topic {
            Topic::User(id) => replay_page::<User>(store, id, after, until).await,
            Topic::Order(id) => replay_page::<OrderEntity>(store, id, after, until).await,
            Topic::Shipper(id) => replay_page::<ShipperEntity>(store, id, after, until).await,
            // Counters, not a log: what was missed is the state at the head.
            Topic::Queue(id) => {
                let status = self
                    .services
                    .queues
                    .queue_status(id)
                    .await
                    .map_err(|e| e.to_string())?;
                let counters = crate::service::queue_work::counters(&status);
                Ok((vec![(until, counters)], until))
            }
            // Counters, not a log: what was missed is today's now.
            Topic::AdminStats => {
                let today = self
                    .services
                    .stats
                    .today()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((vec![(until, today)], until))
            }
            // A summary, not a log: what was missed is the one at the head.
            Topic::Product(id) => {
                let summary = crate::service::ratings::rating_of(store, ReviewKind::Product, id)
                    .await
                    .map_err(|e| e.to_string())?;
                let data = LiveEvent::Product(crate::live::ProductLive::Rating { summary });
                Ok((vec![(until, data)], until))
            }
        }
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
        topics: Arc::new(Topics::new(state.services.clone())),
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
