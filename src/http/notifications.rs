//! Notification handlers (`service::account::notifications`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::state::AppState;
use crate::domain::Role;

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    /// Newest first (the newest 200 are kept).
    pub items: Vec<crate::domain::notification::Notification>,
    pub unread: usize,
}

/// Your notifications (they also arrive live on `user:{id}`).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = NotificationList)))]
pub async fn list_notifications(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<NotificationList>, AppError> {
    let (items, unread) = s.services.notifications.notifications(&auth.0.id).await?;
    Ok(Json(NotificationList { items, unread }))
}

#[utoipa::path(put, path = "/api/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn read_notification(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services
        .notifications
        .mark_notification_read(&auth.0.id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark every notification read.
#[utoipa::path(post, path = "/api/v1/notifications/mark-all-read", tag = "notifications", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn mark_all_read(State(s): State<AppState>, auth: Auth) -> Result<StatusCode, AppError> {
    s.services.notifications.mark_all_read(&auth.0.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: usize,
}

/// How many of your notifications are unread.
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadCount)))]
pub async fn unread_count(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<UnreadCount>, AppError> {
    let (_, unread) = s.services.notifications.notifications(&auth.0.id).await?;
    Ok(Json(UnreadCount { unread }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    pub title: String,
    pub body: String,
    /// Only users with this role; everyone when absent.
    pub role: Option<Role>,
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastOutcome {
    pub recipients: usize,
}

/// An announcement to every user (or every user with a role), in-app and
/// by mail to those who want announcements (admins).
#[utoipa::path(post, path = "/api/v1/notifications/broadcast", tag = "notifications", security(("bearer" = [])),
    request_body = BroadcastRequest, responses((status = 200, body = BroadcastOutcome), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn broadcast(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<BroadcastRequest>,
) -> Result<Json<BroadcastOutcome>, AppError> {
    let recipients = s
        .services
        .notifications
        .broadcast(&auth.0.caller(), &r.title, &r.body, r.role)
        .await?;
    Ok(Json(BroadcastOutcome { recipients }))
}
