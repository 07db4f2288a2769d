//! Cart handlers (`service::commerce::cart`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::cart::SavedCart;
use crate::service::commerce::cart::{CartView, QuantityChange};

pub(super) const CART: &str = "cart";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub product_id: crate::domain::ids::ProductId,
    pub quantity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    /// 0 removes the item.
    pub quantity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCoupon {
    pub code: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TotalQuery {
    /// Default: the caller's default address.
    pub address_id: Option<String>,
}

/// The caller's cart with current prices.
#[utoipa::path(get, path = "/api/v1/cart", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn get_cart(State(s): State<AppState>, auth: Auth) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.carts.get_cart(&auth.0.id).await?))
}

/// Add a product (adds to the quantity already in the cart).
#[utoipa::path(post, path = "/api/v1/cart/items", tag = CART, security(("bearer" = [])), request_body = AddItem,
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_item(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<AddItem>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services
            .carts
            .put_cart_item(&auth.0.id, &r.product_id, QuantityChange::Add(r.quantity))
            .await?,
    ))
}

/// Set a product's quantity (0 removes it).
#[utoipa::path(put, path = "/api/v1/cart/items/{product_id}", tag = CART, security(("bearer" = [])), request_body = SetQuantity,
    params(("product_id" = String, Path)), responses((status = 200, body = CartView), (status = 409, body = ErrorBody)))]
pub async fn set_item(
    State(s): State<AppState>,
    auth: Auth,
    Path(product_id): Path<String>,
    Json(r): Json<SetQuantity>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services
            .carts
            .put_cart_item(&auth.0.id, &product_id, QuantityChange::Set(r.quantity))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/cart/items/{product_id}", tag = CART, security(("bearer" = [])),
    params(("product_id" = String, Path)), responses((status = 200, body = CartView), (status = 404, body = ErrorBody)))]
pub async fn remove_item(
    State(s): State<AppState>,
    auth: Auth,
    Path(product_id): Path<String>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services
            .carts
            .remove_cart_item(&auth.0.id, &product_id)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/cart/clear", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn clear_cart(State(s): State<AppState>, auth: Auth) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.carts.clear_cart(&auth.0.id).await?))
}

/// Subtotal, discount, shipping fee, tax and total (per shop and overall).
#[utoipa::path(get, path = "/api/v1/cart/calculate-total", tag = CART, security(("bearer" = [])), params(TotalQuery),
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody, description = "no such address of yours"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn calculate_total(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<TotalQuery>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services
            .carts
            .cart_total(&auth.0.id, q.address_id.as_deref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/cart/apply-coupon", tag = CART, security(("bearer" = [])), request_body = ApplyCoupon,
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn apply_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<ApplyCoupon>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(
        s.services.carts.apply_code(&auth.0.id, &r.code).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/cart/remove-coupon", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn remove_coupon(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.carts.remove_coupon(&auth.0.id).await?))
}

/// Save the current cart for later (at most 10).
#[utoipa::path(post, path = "/api/v1/cart/save", tag = CART, security(("bearer" = [])), responses((status = 201, body = SavedCart), (status = 409, body = ErrorBody)))]
pub async fn save_cart(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<SavedCart>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(s.services.carts.save_cart(&auth.0.id).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/cart/saved", tag = CART, security(("bearer" = [])), responses((status = 200, body = Vec<SavedCart>)))]
pub async fn saved_carts(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<SavedCart>>, AppError> {
    Ok(Json(s.services.carts.saved_carts(&auth.0.id).await?))
}

/// Replace the cart with a saved one.
#[utoipa::path(post, path = "/api/v1/cart/restore/{id}", tag = CART, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody)))]
pub async fn restore_cart(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.carts.restore_cart(&auth.0.id, &id).await?))
}
