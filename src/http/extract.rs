//! Extractors whose rejections use the error shape, and the bearer-token
//! extractor that authenticates a request.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::error::AppError;
use super::state::AppState;
use crate::service::AuthUser;

/// An optional JSON body: absent when the request has no `Content-Type`,
/// or when the body is JSON `null`.
impl<T, S> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(
        req: axum::extract::Request,
        state: &S,
    ) -> Result<Option<Self>, AppError> {
        if !req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(None);
        }
        let value = json_value(req, state).await?;
        if value.is_null() {
            return Ok(None);
        }
        typed(value).map(|v| Some(Json(v)))
    }
}

/// JSON body in and out; a bad body is a 4xx in the error shape. Numbers
/// with a zero fraction (`1.0`) count as the integers they equal, as JSON
/// Schema (and so the OpenAPI document) has it.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        typed(json_value(req, state).await?).map(Json)
    }
}

/// The body as a JSON value, whole-valued floats turned into integers.
async fn json_value<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<serde_json::Value, AppError> {
    let axum::Json(mut value) =
        <axum::Json<serde_json::Value> as FromRequest<S>>::from_request(req, state).await?;
    whole_numbers(&mut value);
    Ok(value)
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    // Every body is an object (serde would take an array for a struct).
    if !value.is_object() {
        return Err(AppError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        AppError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("Failed to deserialize the JSON body into the target type: {e}"),
        )
    })
}

/// Largest integer a double holds exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// Rewrites every number with a zero fraction (`352830.0`) as an integer.
pub fn whole_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                *n = if f < 0.0 {
                    (f as i64).into()
                } else {
                    (f as u64).into()
                };
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// The authenticated caller (`Authorization: Bearer <access token>`).
pub struct Auth(pub AuthUser);

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::unauthorized("missing Authorization: Bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::unauthorized("the Authorization header must be 'Bearer <token>'"))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // The role guard authenticated an operation that requires a role.
        if let Some(caller) = parts.extensions.get::<AuthUser>() {
            return Ok(Auth(caller.clone()));
        }
        let token = bearer(&parts.headers)?;
        Ok(Auth(state.services.auth.authenticate(token).await?))
    }
}

/// The caller when the request carries a token (which must then be valid:
/// 401 otherwise), or nobody.
pub struct MaybeAuth(pub Option<AuthUser>);

impl MaybeAuth {
    pub fn caller(&self) -> Option<crate::domain::Caller> {
        self.0.as_ref().map(AuthUser::caller)
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match parts.headers.contains_key(AUTHORIZATION) {
            false => Ok(MaybeAuth(None)),
            true => Ok(MaybeAuth(Some(
                Auth::from_request_parts(parts, state).await?.0,
            ))),
        }
    }
}

/// The `Idempotency-Key` header bound to the request it came with: the
/// digest of `method`, `path` and the parsed `body`.
pub fn idempotency(
    headers: &axum::http::HeaderMap,
    method: &str,
    path: &str,
    body: &impl Serialize,
) -> Result<Option<crate::domain::IdempotencyKey>, AppError> {
    use sha2::Digest;
    let Some(key) = idempotency_key(headers)? else {
        return Ok(None);
    };
    let mut h = sha2::Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(body).expect("request bodies serialize"));
    Ok(Some(crate::domain::IdempotencyKey {
        key,
        request: hex::encode(h.finalize()),
    }))
}

/// The `Idempotency-Key` header, if any (400 `invalid_header` unless it is
/// 1 to 200 visible ASCII characters, no spaces).
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, AppError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| {
            AppError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_header",
                "Idempotency-Key must be 1 to 200 visible ASCII characters (no spaces)",
            )
        })
}

/// The client's address: from `client_ip_header` when a trusted proxy sets
/// it (the last address in it, the one the proxy added), otherwise the TCP
/// peer. Throttles key on it.
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let from_header = state.client_ip_header.as_ref().and_then(|h| {
            parts
                .headers
                .get(h)?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse()
                .ok()
        });
        let peer = || {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
        };
        Ok(ClientIp(from_header.unwrap_or_else(peer)))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}
