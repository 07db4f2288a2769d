//! `/auth/*` and `/users/*`: thin handlers over `service::account::auth` and the
//! user entity.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, ClientIp, Json, Path};
use super::state::AppState;
use crate::domain::user::{Address, AddressInput, UserView};
use crate::domain::Role;
use crate::service::TokenPair;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub name: String,
    /// `customer` (default), `merchant` or `shipper`.
    pub role: Option<SelfRole>,
}

/// The roles a person may choose at registration (`admin` is given, never
/// chosen).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfRole {
    Customer,
    Merchant,
    Shipper,
}

impl From<SelfRole> for Role {
    fn from(r: SelfRole) -> Role {
        match r {
            SelfRole::Customer => Role::Customer,
            SelfRole::Merchant => Role::Merchant,
            SelfRole::Shipper => Role::Shipper,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    /// An empty string clears the phone number.
    pub phone: Option<String>,
}

/// Register an account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody, description = "email taken"),
              (status = 422, body = ErrorBody)))]
pub async fn register(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(r): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    let user = s
        .services
        .auth
        .register(&r.email, &r.password, &r.name, r.role.map(Role::from), ip)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Log in with email and password. 403 `account_suspended` when the
/// password is right but an admin has suspended the account.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(r): Json<LoginRequest>,
) -> Result<Json<TokenPair>, AppError> {
    Ok(Json(
        s.services.auth.login(&r.email, &r.password, ip).await?,
    ))
}

/// Exchange a refresh token for a new pair (the old refresh token stops working).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(s): State<AppState>,
    Json(r): Json<RefreshRequest>,
) -> Result<Json<TokenPair>, AppError> {
    Ok(Json(s.services.auth.refresh(&r.refresh_token).await?))
}

/// End the current session; its tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, auth: Auth) -> Result<StatusCode, AppError> {
    s.services.auth.logout(&auth.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/users/profile", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn get_profile(auth: Auth) -> Json<UserView> {
    Json(auth.0.view)
}

/// Change name or phone.
#[utoipa::path(put, path = "/api/v1/users/profile", tag = "users", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 422, body = ErrorBody)))]
pub async fn update_profile(
    State(s): State<AppState>,
    auth: Auth,
    Json(p): Json<ProfileUpdate>,
) -> Result<Json<UserView>, AppError> {
    let view = s
        .services
        .profiles
        .update_profile(&auth.0.id, p.name, p.phone)
        .await?;
    Ok(Json(view))
}

/// The caller's delivery addresses.
#[utoipa::path(get, path = "/api/v1/users/addresses", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<Address>)))]
pub async fn list_addresses(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Address>>, AppError> {
    Ok(Json(s.services.profiles.addresses(&auth.0.id).await?))
}

/// Add a delivery address (the first one, or one with `is_default`, becomes the default).
#[utoipa::path(post, path = "/api/v1/users/addresses", tag = "users", security(("bearer" = [])), request_body = AddressInput,
    responses((status = 201, body = Address), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_address(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<AddressInput>,
) -> Result<(StatusCode, Json<Address>), AppError> {
    let address = s.services.profiles.add_address(&auth.0.id, input).await?;
    Ok((StatusCode::CREATED, Json(address)))
}

/// Replace a delivery address.
#[utoipa::path(put, path = "/api/v1/users/addresses/{id}", tag = "users", security(("bearer" = [])), request_body = AddressInput,
    params(("id" = String, Path)), responses((status = 200, body = Address), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "default_address_required: make another address the default first")))]
pub async fn update_address(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<AddressInput>,
) -> Result<Json<Address>, AppError> {
    Ok(Json(
        s.services
            .profiles
            .update_address(&auth.0.id, id, input)
            .await?,
    ))
}

/// Delete a delivery address (if it was the default, the oldest remaining one becomes the default).
#[utoipa::path(delete, path = "/api/v1/users/addresses/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_address(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services.profiles.remove_address(&auth.0.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub email: String,
    /// The 6-digit code from the mail.
    pub otp: String,
    pub new_password: String,
}

/// Mail a password-reset code. Answers 202 whether or not the account
/// exists; a new code is sent at most every 30 s per account.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "auth", request_body = ForgotPasswordRequest,
    responses((status = 202), (status = 422, body = ErrorBody)))]
pub async fn forgot_password(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(r): Json<ForgotPasswordRequest>,
) -> Result<StatusCode, AppError> {
    s.services.auth.forgot_password(&r.email, ip).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the mailed code. The code works once, expires,
/// and stops working after a few wrong tries; every session of the
/// account ends.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 422, body = ErrorBody, description = "validation_failed: a wrong, expired or used-up code (the same answer for an email without an account), or a weak password")))]
pub async fn reset_password(
    State(s): State<AppState>,
    Json(r): Json<ResetPasswordRequest>,
) -> Result<StatusCode, AppError> {
    s.services
        .auth
        .reset_password(&r.email, &r.otp, &r.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change your password (the current one required; attempts are throttled
/// like logins). Every session of the account ends — other devices, their
/// live connections, and this session too; the answer is a new pair for
/// this client.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 200, body = TokenPair),
        (status = 403, body = ErrorBody, description = "account_suspended: suspended meanwhile"),
        (status = 409, body = ErrorBody, description = "password_changed: it was changed meanwhile"),
        (status = 422, body = ErrorBody, description = "validation_failed: the current password is wrong, or the new one is weak or the same"),
        (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(s): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    Json(r): Json<ChangePasswordRequest>,
) -> Result<Json<TokenPair>, AppError> {
    Ok(Json(
        s.services
            .auth
            .change_password(&auth.0, &r.current_password, &r.new_password, ip)
            .await?,
    ))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// Which notifications are mailed as well.
    pub email: crate::domain::notification::MailPrefs,
}

/// Your notification preferences.
#[utoipa::path(get, path = "/api/v1/users/me/notification-preferences", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = NotificationPreferences)))]
pub async fn get_preferences(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<NotificationPreferences>, AppError> {
    let email = s
        .services
        .notifications
        .mail_prefs(&auth.0.id, None)
        .await?;
    Ok(Json(NotificationPreferences { email }))
}

/// Choose which notifications are mailed as well.
#[utoipa::path(put, path = "/api/v1/users/me/notification-preferences", tag = "users", security(("bearer" = [])),
    request_body = NotificationPreferences, responses((status = 200, body = NotificationPreferences), (status = 422, body = ErrorBody)))]
pub async fn set_preferences(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<NotificationPreferences>,
) -> Result<Json<NotificationPreferences>, AppError> {
    let email = s
        .services
        .notifications
        .mail_prefs(&auth.0.id, Some(r.email))
        .await?;
    Ok(Json(NotificationPreferences { email }))
}

/// End every session of a user (admin): their tokens stop working and their
/// live connections close with 4001 at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn end_sessions(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services
        .auth
        .end_all_sessions(&auth.0.caller(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
