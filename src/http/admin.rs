//! `/admin/...`: the admin console's handlers over `service::account::self_service::accounts`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::user::UserView;
use crate::domain::Role;
use crate::service::account::accounts::UserFilter;
use crate::service::products::catalog::{check_limit, Page};
use axum::extract::State;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Emails starting with this (any case).
    pub email: Option<String>,
    pub role: Option<Role>,
    /// `true`: only suspended accounts; `false`: only active ones.
    pub suspended: Option<bool>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Present while more accounts may follow. A filtered page holds the
    /// matches among the accounts scanned for it, so it may be short (even
    /// empty) with more to come.
    pub next_cursor: Option<String>,
}

impl From<Page<UserView>> for UserPage {
    fn from(p: Page<UserView>) -> Self {
        UserPage {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendInput {
    /// Why (kept with the account; shown to admins). 1 to 500 characters.
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub role: Role,
}

/// Accounts (admins): in email order, or filtered by an email prefix,
/// role, suspension.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserQuery), responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<UserQuery>,
) -> Result<Json<UserPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let filter = UserFilter {
        email: q.email,
        role: q.role,
        suspended: q.suspended,
    };
    Ok(Json(
        s.services
            .accounts
            .list(&auth.0.caller(), filter, q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

/// One account (admins).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(s.services.accounts.user(&auth.0.caller(), &id).await?))
}

/// Suspend an account (admins): its sessions end and its live connections
/// close (4001) at once; logins answer 403 `account_suspended` until it is
/// reactivated. Suspending a suspended account changes nothing. 409
/// `own_account` for the caller's own.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SuspendInput,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn suspend_user(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<SuspendInput>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(
        s.services
            .accounts
            .suspend(&auth.0.caller(), &id, input.reason)
            .await?,
    ))
}

/// Lift a suspension (admins); the user logs in again.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reactivate_user(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(
        s.services
            .accounts
            .reactivate(&auth.0.caller(), &id)
            .await?,
    ))
}

/// Change an account's role (admins). Its sessions end: the next login
/// carries the new role. 409 `own_account` for the caller's own.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/role", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RoleInput,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_user_role(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<RoleInput>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(
        s.services
            .accounts
            .set_role(&auth.0.caller(), &id, input.role)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Start (RFC 3339; rounded down to its hour, or to the midnight of
    /// its day in `report_time_zone`). Default:
    /// 7 days (by day) or 24 hours (by hour) before `to`.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive (RFC 3339). Default: now.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// `day` (default; at most 366) or `hour` (at most 744).
    #[param(inline)]
    pub granularity: Option<crate::service::platform::stats::Granularity>,
    /// Top products and shops listed: 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<usize>,
}

/// Platform statistics (admins): orders, paid orders and GMV by currency,
/// refunds, deliveries and active shippers, new users, course and
/// flash-sale sign-ups, per hour or day over `[from, to)`, with totals and
/// the top products and shops by GMV. Counted from what entities recorded
/// as it happened (not by scanning orders), at most `stats_interval_ms`
/// behind; the same counters for today arrive live on `admin:stats`.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin", security(("bearer" = [])),
    params(StatsQuery),
    responses((status = 200, body = crate::service::platform::stats::StatsReport), (status = 403, body = ErrorBody)))]
pub async fn platform_stats(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<StatsQuery>,
) -> Result<Json<crate::service::platform::stats::StatsReport>, AppError> {
    let granularity = q.granularity.unwrap_or_default();
    let to = q.to.unwrap_or_else(chrono::Utc::now);
    let from = q.from.unwrap_or_else(|| match granularity {
        crate::service::platform::stats::Granularity::Day => to - chrono::Duration::days(7),
        crate::service::platform::stats::Granularity::Hour => to - chrono::Duration::hours(24),
    });
    let top = q.top.unwrap_or(10);
    if !(1..=100).contains(&top) {
        return Err(
            crate::domain::DomainError::invalid("top", "top must be between 1 and 100").into(),
        );
    }
    Ok(Json(
        s.services
            .stats
            .report(&auth.0.caller(), from, to, granularity, top)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HideInput {
    /// Why (kept with it; shown to its merchant and admins). 1 to 500
    /// characters.
    pub reason: String,
}

/// Hide a product (admins): it leaves listings and search and cannot be
/// bought (`product_unavailable`) until an admin lifts it; its merchant
/// cannot. Hiding a hidden product keeps the first reason.
#[utoipa::path(put, path = "/api/v1/admin/products/{id}/hide", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = HideInput,
    responses((status = 200, body = crate::domain::catalog::Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn hide_product(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<HideInput>,
) -> Result<Json<crate::domain::catalog::Product>, AppError> {
    Ok(Json(
        s.services
            .moderation
            .hide_product(&auth.0.caller(), &id, &input.reason)
            .await?,
    ))
}

/// Lift a product's hiding (admins).
#[utoipa::path(delete, path = "/api/v1/admin/products/{id}/hide", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = crate::domain::catalog::Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unhide_product(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::domain::catalog::Product>, AppError> {
    Ok(Json(
        s.services
            .moderation
            .unhide_product(&auth.0.caller(), &id)
            .await?,
    ))
}

/// Hide a shop (admins): it leaves listings, search and nearby, and each
/// of its products is hidden with it.
#[utoipa::path(put, path = "/api/v1/admin/shops/{id}/hide", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = HideInput,
    responses((status = 200, body = crate::domain::catalog::Shop), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn hide_shop(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<HideInput>,
) -> Result<Json<crate::domain::catalog::Shop>, AppError> {
    Ok(Json(
        s.services
            .moderation
            .hide_shop(&auth.0.caller(), &id, &input.reason)
            .await?,
    ))
}

/// Lift a shop's hiding (admins), and the hiding it gave its products
/// (not products hidden on their own).
#[utoipa::path(delete, path = "/api/v1/admin/shops/{id}/hide", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = crate::domain::catalog::Shop), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unhide_shop(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::domain::catalog::Shop>, AppError> {
    Ok(Json(
        s.services
            .moderation
            .unhide_shop(&auth.0.caller(), &id)
            .await?,
    ))
}

/// A backup's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct BackupBytes(Vec<u8>);

/// A consistent copy of the embedded store (admins), streamed while the
/// server goes on serving and writing: `surge backup` fetches it, `surge
/// restore` puts it into an empty data directory. 422
/// `backup_unsupported` on PostgreSQL and ScyllaDB (their own tools back
/// them up).
#[utoipa::path(get, path = "/api/v1/admin/backup", tag = "admin", security(("bearer" = ["admin"])),
    responses((status = 200, description = "The backup (`store::backup`'s format)",
        content((BackupBytes = "application/octet-stream"))),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn backup(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<axum::response::Response, AppError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    use futures_util::StreamExt;
    let chunks = s.services.backups.start(&auth.0.caller())?;
    let body = axum::body::Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(chunks).map(Ok::<_, std::convert::Infallible>),
    );
    let name = format!(
        "attachment; filename=\"surge-{}.backup\"",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}
