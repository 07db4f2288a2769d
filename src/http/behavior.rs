//! Trending, recently viewed, bought together, similar: thin handlers
//! over `service::products::behavior`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, MaybeAuth, Path, Query};
use super::state::AppState;
use crate::domain::behavior::{Ranked, RECENT_MAX};
use crate::search::Hit;
use crate::service::products::behavior::Viewed;
use crate::service::products::catalog::check_limit;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewInput {
    /// An active product.
    pub product_id: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TrendingQuery {
    /// Only products of this category.
    pub category: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Products {
    /// Best first; `score` says how (trending: decayed activity; bought
    /// together: times; similar: relevance).
    pub items: Vec<Hit>,
}

#[derive(Serialize, ToSchema)]
pub struct RecentlyViewedList {
    /// Newest first, each product once, at most 50.
    pub items: Vec<Viewed>,
}

#[derive(Serialize, ToSchema)]
pub struct TrendingCategories {
    /// Highest decayed activity first.
    pub items: Vec<Ranked>,
}

/// Record that you viewed a product (your recently viewed list, and
/// trending: each person counts once per product per flush window).
#[utoipa::path(post, path = "/api/v1/behavior/view", tag = "discovery", security(("bearer" = [])),
    request_body = ViewInput,
    responses((status = 204, description = "recorded"),
        (status = 422, body = ErrorBody, description = "no such active product")))]
pub async fn view(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<ViewInput>,
) -> Result<StatusCode, AppError> {
    s.services
        .behavior
        .view(&auth.0.id, &input.product_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your recently viewed products still listed, newest first (at most 50).
#[utoipa::path(get, path = "/api/v1/users/me/recently-viewed", tag = "discovery", security(("bearer" = [])),
    params(LimitQuery), responses((status = 200, body = RecentlyViewedList)))]
pub async fn recently_viewed(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<LimitQuery>,
) -> Result<Json<RecentlyViewedList>, AppError> {
    let limit = check_limit(q.limit)?.min(RECENT_MAX);
    Ok(Json(RecentlyViewedList {
        items: s
            .services
            .behavior
            .recently_viewed(&auth.0.id, limit)
            .await?,
    }))
}

/// Products trending now: views and checkouts of every node, each halving
/// in weight every `trending_half_life_secs`.
#[utoipa::path(get, path = "/api/v1/trending", tag = "discovery", params(TrendingQuery),
    responses((status = 200, body = Products)))]
pub async fn trending(
    State(s): State<AppState>,
    Query(q): Query<TrendingQuery>,
) -> Result<Json<Products>, AppError> {
    let limit = check_limit(q.limit)?;
    let category = q.category.map(|c| c.trim().to_lowercase());
    Ok(Json(Products {
        items: s
            .services
            .behavior
            .trending(category.as_deref(), limit)
            .await?,
    }))
}

/// Categories trending now (the sum of their products' activity).
#[utoipa::path(get, path = "/api/v1/trending/categories", tag = "discovery", params(LimitQuery),
    responses((status = 200, body = TrendingCategories)))]
pub async fn trending_categories(
    State(s): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<TrendingCategories>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(TrendingCategories {
        items: s.services.behavior.trending_categories(limit),
    }))
}

/// Products bought in the same checkout as this one, most often first.
#[utoipa::path(get, path = "/api/v1/products/{id}/also-bought", tag = "discovery", security((), ("bearer" = [])),
    params(("id" = String, Path), LimitQuery),
    responses((status = 200, body = Products), (status = 404, body = ErrorBody)))]
pub async fn also_bought(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Products>, AppError> {
    let limit = check_limit(q.limit)?;
    let viewer = viewer.caller();
    s.services.catalog.product_for(viewer.as_ref(), &id).await?;
    Ok(Json(Products {
        items: s.services.behavior.also_bought(&id, limit).await?,
    }))
}

/// Products like this one (sharing words of its name or its category),
/// best first.
#[utoipa::path(get, path = "/api/v1/products/{id}/similar", tag = "discovery", security((), ("bearer" = [])),
    params(("id" = String, Path), LimitQuery),
    responses((status = 200, body = Products), (status = 404, body = ErrorBody)))]
pub async fn similar(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Products>, AppError> {
    let limit = check_limit(q.limit)?;
    let viewer = viewer.caller();
    s.services.catalog.product_for(viewer.as_ref(), &id).await?;
    Ok(Json(Products {
        items: s.services.behavior.similar(&id, limit).await?,
    }))
}
