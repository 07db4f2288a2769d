//! The merchant's console over one shop: its orders by status (the
//! pending-orders queue), bulk confirmation, revenue, sales by product,
//! and the orders as CSV (`service::commerce::orders`, `service::commerce::shop_reports`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody, ErrorDetail};
use super::extract::{Auth, Json, Path, Query};
use super::orders::OrderPage;
use super::state::AppState;
use crate::domain::order::{Order, OrderStatus};
use crate::service::commerce::shop_reports::{ProductSales, RevenueDay};
use crate::service::products::catalog::check_limit;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ShopOrdersQuery {
    /// Only orders in this status now (`paid`: waiting for confirmation).
    pub status: Option<OrderStatus>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A shop's orders, newest first (its merchant); with `status`, the ones in
/// that status now.
#[utoipa::path(get, path = "/api/v1/shops/{id}/orders", tag = "orders", security(("bearer" = ["merchant"])), params(("id" = String, Path), ShopOrdersQuery),
    responses((status = 200, body = OrderPage), (status = 403, body = ErrorBody)))]
pub async fn shop_orders(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ShopOrdersQuery>,
) -> Result<Json<OrderPage>, AppError> {
    let page = s
        .services
        .orders
        .shop_orders(
            &auth.0.caller(),
            &id,
            q.status,
            q.cursor.as_deref(),
            check_limit(q.limit)?,
        )
        .await?;
    Ok(Json(OrderPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkConfirm {
    /// 1 to 100 order ids of this shop.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<AnId>)]
    pub order_ids: Vec<String>,
}

/// An entity's id as a request names it: 1 to 100 visible characters.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
#[allow(dead_code)]
pub struct AnId(String);

/// What became of one order of a bulk request.
#[derive(Serialize, ToSchema)]
pub struct BulkOutcome {
    pub order_id: String,
    /// The status a single request for it would have answered.
    pub status: u16,
    /// The order as it is now, when it was confirmed.
    pub order: Option<Order>,
    /// Why not, otherwise (as a single request would have been told).
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkResults {
    /// One per id asked, in the order asked.
    pub results: Vec<BulkOutcome>,
}

/// Confirm several of the shop's orders at once (its merchant). Each is
/// confirmed on its own, as `PUT /orders/{id}/confirm` would: the answer
/// lists, in the order asked, each order confirmed or the refusal it met
/// (an order of another shop is `not_found`; a repeated id is refused
/// once confirmed). Refused ones are left as they were.
#[utoipa::path(post, path = "/api/v1/shops/{id}/orders/confirm", tag = "orders", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = BulkConfirm,
    responses((status = 200, body = BulkResults), (status = 403, body = ErrorBody)))]
pub async fn confirm_orders(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<BulkConfirm>,
) -> Result<Json<BulkResults>, AppError> {
    let outcomes = s
        .services
        .orders
        .confirm_many(&auth.0.caller(), &id, input.order_ids)
        .await?;
    let results = outcomes
        .into_iter()
        .map(|(order_id, result)| match result {
            Ok(order) => BulkOutcome {
                order_id,
                status: 200,
                order: Some(order),
                error: None,
            },
            Err(e) => {
                let e = AppError::from(e);
                BulkOutcome {
                    order_id,
                    status: e.status.as_u16(),
                    order: None,
                    error: Some(e.detail()),
                }
            }
        })
        .collect();
    Ok(Json(BulkResults { results }))
}

/// Revenue and order count by day (its merchant; the newest 10,000 orders).
#[utoipa::path(get, path = "/api/v1/shops/{id}/analytics/revenue", tag = "orders", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<RevenueDay>), (status = 403, body = ErrorBody)))]
pub async fn shop_revenue(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<RevenueDay>>, AppError> {
    Ok(Json(
        s.services.reports.revenue(&auth.0.caller(), &id).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// Orders created at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Orders created before this instant (RFC 3339); after `from`.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SalesQuery {
    /// Orders created at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Orders created before this instant (RFC 3339); after `from`.
    pub to: Option<DateTime<Utc>>,
    /// How many products: 1 to 100, default 20.
    pub limit: Option<usize>,
}

/// Sales by product (its merchant): the top products by revenue of paid
/// orders, then units, over the orders created in `[from, to)` (the newest
/// 10,000 of them). Cancelled orders count nowhere.
#[utoipa::path(get, path = "/api/v1/shops/{id}/analytics/products", tag = "orders", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), SalesQuery),
    responses((status = 200, body = Vec<ProductSales>), (status = 403, body = ErrorBody)))]
pub async fn product_sales(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SalesQuery>,
) -> Result<Json<Vec<ProductSales>>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .reports
            .product_sales(&auth.0.caller(), &id, q.from, q.to, limit)
            .await?,
    ))
}

/// The shop's orders created in `[from, to)` as CSV (its merchant), newest
/// first, one row per order, at most 10,000: `X-Export-Truncated: true`
/// says more were left (narrow the range). Money in minor units.
#[utoipa::path(get, path = "/api/v1/shops/{id}/orders/export", tag = "orders", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), RangeQuery),
    responses((status = 200, content_type = "text/csv", body = String,
        headers(("X-Export-Truncated" = String, description = "`true` when the range held more orders than one export"))),
        (status = 403, body = ErrorBody)))]
pub async fn export_orders(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let export = s
        .services
        .reports
        .export_csv(&auth.0.caller(), &id, q.from, q.to)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"orders-{id}.csv\""),
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
