//! Coupon handlers (`service::commerce::coupons`): a merchant's coupons and the
//! public read by code.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::coupon::{CouponInput, CouponPatch, CouponStatus, CouponUsage};
use crate::service::commerce::coupons::CouponView;
use crate::service::products::catalog::check_limit;

const TAG: &str = "catalog";

/// Create a coupon on your shop.
#[utoipa::path(post, path = "/api/v1/shops/{id}/coupons", tag = TAG, security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    request_body = CouponInput, responses((status = 201, body = CouponView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(shop_id): Path<String>,
    Json(input): Json<CouponInput>,
) -> Result<(StatusCode, Json<CouponView>), AppError> {
    let view = s
        .services
        .coupons
        .create_coupon(auth.0.caller(), &shop_id, input)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CouponListQuery {
    /// Only coupons standing so now.
    #[param(inline)]
    pub status: Option<CouponStatus>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CouponPage {
    pub items: Vec<CouponView>,
    pub next_cursor: Option<String>,
}

/// Your shop's coupons by code (deleted ones are gone), each with its
/// `status`. With `status` a page may hold fewer than `limit`: follow
/// `next_cursor` until it is null.
#[utoipa::path(get, path = "/api/v1/shops/{id}/coupons", tag = TAG, security(("bearer" = ["merchant"])),
    params(("id" = String, Path), CouponListQuery),
    responses((status = 200, body = CouponPage), (status = 403, body = ErrorBody)))]
pub async fn list_coupons(
    State(s): State<AppState>,
    auth: Auth,
    Path(shop_id): Path<String>,
    Query(q): Query<CouponListQuery>,
) -> Result<Json<CouponPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .coupons
        .coupons_of(
            &auth.0.caller(),
            &shop_id,
            q.status,
            q.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(CouponPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A coupon by code (case does not matter); a deleted one is 404.
#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = TAG, params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 404, body = ErrorBody)))]
pub async fn get_coupon(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<CouponView>, AppError> {
    Ok(Json(s.services.coupons.get_coupon(&code).await?))
}

/// Change your coupon: absent fields stay; its code and kind are fixed.
/// A limit below the uses already made is 409 `coupon_below_uses`.
#[utoipa::path(patch, path = "/api/v1/coupons/{code}", tag = TAG, security(("bearer" = ["merchant"])), params(("code" = String, Path)),
    request_body = CouponPatch,
    responses((status = 200, body = CouponView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "coupon_below_uses")))]
pub async fn edit_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
    Json(patch): Json<CouponPatch>,
) -> Result<Json<CouponView>, AppError> {
    Ok(Json(
        s.services
            .coupons
            .edit(auth.0.caller(), &code, patch)
            .await?,
    ))
}

/// Pause your coupon: carts and checkouts refuse it (409 `coupon_paused`)
/// until it is resumed; uses already made stay. Pausing a paused one
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/pause", tag = TAG, security(("bearer" = ["merchant"])), params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 403, body = ErrorBody)))]
pub async fn pause_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<CouponView>, AppError> {
    Ok(Json(
        s.services.coupons.pause(auth.0.caller(), &code).await?,
    ))
}

/// Resume your paused coupon.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/resume", tag = TAG, security(("bearer" = ["merchant"])), params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 403, body = ErrorBody)))]
pub async fn resume_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<CouponView>, AppError> {
    Ok(Json(
        s.services.coupons.resume(auth.0.caller(), &code).await?,
    ))
}

/// Delete your coupon: it is not found from now on (its code may be
/// created again, afresh); orders that used it keep their discount.
#[utoipa::path(delete, path = "/api/v1/coupons/{code}", tag = TAG, security(("bearer" = ["merchant"])), params(("code" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn delete_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services.coupons.delete(auth.0.caller(), &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your coupon's usage: uses, customers, discount given, by day.
#[utoipa::path(get, path = "/api/v1/coupons/{code}/usage", tag = TAG, security(("bearer" = ["merchant"])), params(("code" = String, Path)),
    responses((status = 200, body = CouponUsage), (status = 403, body = ErrorBody)))]
pub async fn coupon_usage(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<CouponUsage>, AppError> {
    Ok(Json(
        s.services.coupons.usage(auth.0.caller(), &code).await?,
    ))
}
