//! Inventory handlers over `service::commerce::inventory`: a product's levels and
//! history, recorded movements, a shop's inventory, low stock, CSV.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, PageQuery, Path, Query};
use super::state::AppState;
use crate::domain::inventory::{AdjustmentInput, InventoryItem, StockLevels};
use crate::service::commerce::inventory::ProductInventory;
use crate::service::products::catalog::check_limit;

#[derive(Serialize, ToSchema)]
pub struct InventoryPage {
    pub items: Vec<InventoryItem>,
    pub next_cursor: Option<String>,
}

/// A product's stock (its merchant): on hand, reserved, available, the
/// threshold, and its movements newest first (paged by `cursor`).
#[utoipa::path(get, path = "/api/v1/products/{id}/inventory", tag = "inventory", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ProductInventory), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn product_inventory(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ProductInventory>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .inventory
            .product(&auth.0.caller(), &id, q.cursor.as_deref(), limit)
            .await?,
    ))
}

/// Record a movement (its merchant): `received` goods, an `adjusted`
/// correction with its reason (a decrease never takes reserved units: 409
/// `below_reserved`), or `returned` goods of a returned order put back
/// (409 `already_returned` the second time). Answers the levels after it.
#[utoipa::path(post, path = "/api/v1/products/{id}/inventory/adjustments", tag = "inventory", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = AdjustmentInput,
    responses((status = 201, body = StockLevels), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn adjust_inventory(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<AdjustmentInput>,
) -> Result<(StatusCode, Json<StockLevels>), AppError> {
    let levels = s
        .services
        .inventory
        .adjust(&auth.0.caller(), &id, input)
        .await?;
    Ok((StatusCode::CREATED, Json(levels)))
}

async fn shop_page(
    s: &AppState,
    auth: &Auth,
    id: &str,
    low: bool,
    q: PageQuery,
) -> Result<Json<InventoryPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .inventory
        .shop(&auth.0.caller(), id, low, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(InventoryPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A shop's stock levels by product (its merchant).
#[utoipa::path(get, path = "/api/v1/shops/{id}/inventory", tag = "inventory", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = InventoryPage), (status = 403, body = ErrorBody)))]
pub async fn shop_inventory(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<InventoryPage>, AppError> {
    shop_page(&s, &auth, &id, false, q).await
}

/// The shop's products at or below their low-stock threshold now (its
/// merchant).
#[utoipa::path(get, path = "/api/v1/shops/{id}/products/low-stock", tag = "inventory", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = InventoryPage), (status = 403, body = ErrorBody)))]
pub async fn low_stock(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<InventoryPage>, AppError> {
    shop_page(&s, &auth, &id, true, q).await
}

/// The shop's inventory as CSV (its merchant): one row per product, at
/// most 50,000 (`X-Export-Truncated: true` when there were more).
#[utoipa::path(get, path = "/api/v1/shops/{id}/inventory/export", tag = "inventory", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String,
        headers(("X-Export-Truncated" = String, description = "`true` when the shop had more products than one export holds"))),
        (status = 403, body = ErrorBody)))]
pub async fn export_inventory(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let export = s
        .services
        .inventory
        .export_csv(&auth.0.caller(), &id)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"inventory-{id}.csv\""),
            ),
            (
                header::HeaderName::from_static("x-export-truncated"),
                export.truncated.to_string(),
            ),
        ],
        export.csv,
    )
        .into_response())
}
