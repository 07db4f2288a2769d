//! `/users/me/export`: the caller's own data (`service::account::self_service`).

use axum::extract::State;

use super::error::AppError;
use super::extract::{Auth, Json};
use super::state::AppState;
use crate::service::account::self_service::AccountExport;

/// Everything Surge holds about you as one JSON document: the account,
/// addresses, notifications, mail preferences and sign-ins; your orders
/// (the newest 10,000), claims and enrollments, reviews, recently viewed
/// products, cart and saved carts; the shops and courses you run. Never
/// your password hash or token ids.
#[utoipa::path(get, path = "/api/v1/users/me/export", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = AccountExport)))]
pub async fn export(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<AccountExport>, AppError> {
    Ok(Json(s.services.account.export(&auth.0.caller()).await?))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Your password, to confirm.
    pub password: String,
}

/// Erase your account (see the erasure policy in docs/commerce.md):
/// personal data is removed from the account, its addresses, notifications
/// and queued mail, its orders' delivery addresses and tracks, its claims
/// and recently viewed products; orders keep what accounting needs. Every session and
/// live connection ends; the email may be registered again. 422 when the
/// password is wrong (attempts count against the login throttles); 409
/// `admin_account`, `owns_shops`, `orders_in_progress` or (a shipper
/// carrying an order) `deliveries_in_progress` naming it, with nothing
/// changed.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    request_body = EraseRequest,
    responses((status = 204), (status = 409, body = super::error::ErrorBody)))]
pub async fn erase(
    State(s): State<AppState>,
    auth: Auth,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    Json(r): Json<EraseRequest>,
) -> Result<axum::http::StatusCode, AppError> {
    s.services
        .account
        .erase(&s.services.auth, &auth.0, &r.password, ip)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
