//! Voucher handlers (`service::commerce::coupons`, `service::commerce::cart_vouchers`): the
//! platform's vouchers an admin issues, vouchers customers collect into
//! their wallet, and the vouchers applied to a cart.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::cart::{ApplyCoupon, CART};
use super::coupons::CouponPage;
use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::coupon::CouponInput;
use crate::service::commerce::cart::CartView;
use crate::service::commerce::cart_vouchers::VoucherChoice;
use crate::service::commerce::coupons::CouponView;
use crate::service::products::catalog::check_limit;

const TAG: &str = "catalog";

/// Issue a platform voucher (admin): on a whole checkout after the shops'
/// discounts, `percentage`, `fixed` or `free_shipping` (up to `value` off
/// the shipping fees); always collected before use. Managed afterwards
/// like a coupon (`/coupons/{code}`).
#[utoipa::path(post, path = "/api/v1/admin/vouchers", tag = TAG, security(("bearer" = ["admin"])),
    request_body = CouponInput, responses((status = 201, body = CouponView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_platform_voucher(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<CouponInput>,
) -> Result<(StatusCode, Json<CouponView>), AppError> {
    let view = s
        .services
        .coupons
        .create_platform_voucher(auth.0.caller(), input)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VoucherListQuery {
    /// A shop's vouchers; without it, the platform's.
    pub shop_id: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The vouchers that can be collected now (active), of a shop or of the
/// platform, by code. A page may hold fewer than `limit`: follow
/// `next_cursor` until it is null.
#[utoipa::path(get, path = "/api/v1/vouchers", tag = TAG, params(VoucherListQuery),
    responses((status = 200, body = CouponPage), (status = 404, body = ErrorBody, description = "no such shop")))]
pub async fn list_vouchers(
    State(s): State<AppState>,
    Query(q): Query<VoucherListQuery>,
) -> Result<Json<CouponPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .coupons
        .collectible(q.shop_id.as_deref(), q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(CouponPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Collect a voucher into your wallet (again: the same answer). 409
/// `not_a_voucher` for a coupon code (enter it in the cart instead),
/// `coupon_paused`, `coupon_expired`, `coupon_exhausted`.
#[utoipa::path(post, path = "/api/v1/vouchers/{code}/collect", tag = TAG, security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn collect_voucher(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<CouponView>, AppError> {
    Ok(Json(s.services.coupons.collect(&auth.0.id, &code).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Wallet {
    /// By code, each with its status now (at most 100).
    pub items: Vec<CouponView>,
}

/// Your wallet: the vouchers you collected that still exist.
#[utoipa::path(get, path = "/api/v1/me/vouchers", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Wallet)))]
pub async fn my_vouchers(State(s): State<AppState>, auth: Auth) -> Result<Json<Wallet>, AppError> {
    let items = s.services.coupons.wallet(&auth.0.id).await?;
    Ok(Json(Wallet { items }))
}

/// Your wallet against your cart: what each voucher would take off, or
/// why it cannot be used, and the best combination (one voucher per shop,
/// then one of the platform's).
#[utoipa::path(get, path = "/api/v1/cart/vouchers", tag = CART, security(("bearer" = [])),
    responses((status = 200, body = VoucherChoice), (status = 409, body = ErrorBody)))]
pub async fn cart_vouchers(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<VoucherChoice>, AppError> {
    let wallet = s.services.coupons.wallet(&auth.0.id).await?;
    Ok(Json(
        s.services.carts.voucher_choice(&auth.0.id, wallet).await?,
    ))
}

/// Apply a code to your cart: a voucher from your wallet (a shop's
/// replaces that shop's voucher or coupon; the platform's replaces the
/// platform's) or a shop's coupon (it replaces that shop's voucher). 409
/// `voucher_not_collected`, `coupon_not_applicable` and the code's own
/// refusals; nothing changes.
#[utoipa::path(post, path = "/api/v1/cart/vouchers", tag = CART, security(("bearer" = [])), request_body = ApplyCoupon,
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn apply_voucher(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<ApplyCoupon>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services.carts.apply_code(&auth.0.id, &r.code).await?,
    ))
}

/// Take a voucher off your cart.
#[utoipa::path(delete, path = "/api/v1/cart/vouchers/{code}", tag = CART, security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody)))]
pub async fn remove_voucher(
    State(s): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services.carts.remove_voucher(&auth.0.id, &code).await?,
    ))
}
