//! `/users/me/export`: the caller's own data (`service::account`).

use axum::extract::State;

use super::error::AppError;
use super::extract::{Auth, Json};
use super::state::AppState;
use crate::service::account::AccountExport;

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
