//! `/shops`, `/products`, `/courses`: thin handlers over `service::products::catalog`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, MaybeAuth, Path, Query};
use super::state::AppState;
use crate::domain::catalog::{
    Course, CourseInput, CourseKind, CoursePatch, Product, ProductFilter, ProductInput,
    ProductPatch, Shop, ShopInput, ShopPatch,
};
use crate::service::products::catalog::{check_limit, Page};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    pub category: Option<String>,
    /// A category of the tree: products in it or in one below it.
    pub category_id: Option<String>,
    pub shop_id: Option<crate::domain::ids::ShopId>,
    /// Minimum price in minor units.
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    /// Text the product name contains (case-insensitive).
    pub q: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CourseQuery {
    pub kind: Option<CourseKind>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct CoursePage {
    pub items: Vec<Course>,
    pub next_cursor: Option<String>,
}

impl From<Page<Product>> for ProductPage {
    fn from(p: Page<Product>) -> Self {
        ProductPage {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

impl From<Page<Course>> for CoursePage {
    fn from(p: Page<Course>) -> Self {
        CoursePage {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// Open a shop (merchants).
#[utoipa::path(post, path = "/api/v1/shops", tag = "catalog", security(("bearer" = ["merchant"])), request_body = ShopInput,
    responses((status = 201, body = Shop), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_shop(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<ShopInput>,
) -> Result<(StatusCode, Json<Shop>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .catalog
                .create_shop(auth.0.caller(), input)
                .await?,
        ),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ShopQuery {
    /// Text the shop's name contains (case-insensitive).
    pub q: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ShopPage {
    pub items: Vec<Shop>,
    pub next_cursor: Option<String>,
}

impl From<Page<Shop>> for ShopPage {
    fn from(p: Page<Shop>) -> Self {
        ShopPage {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// Shops, oldest first, with cursor pagination (for nearby shops, see
/// `/shops/nearby`; for words, `/search?type=shop`).
#[utoipa::path(get, path = "/api/v1/shops", tag = "catalog", params(ShopQuery),
    responses((status = 200, body = ShopPage)))]
pub async fn list_shops(
    State(s): State<AppState>,
    Query(q): Query<ShopQuery>,
) -> Result<Json<ShopPage>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .catalog
            .list_shops(q.q.as_deref(), q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

/// Your shops (merchants).
#[utoipa::path(get, path = "/api/v1/users/me/shops", tag = "catalog", security(("bearer" = ["merchant"])),
    params(super::extract::PageQuery), responses((status = 200, body = ShopPage)))]
pub async fn my_shops(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<super::extract::PageQuery>,
) -> Result<Json<ShopPage>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .catalog
            .shops_of(&auth.0.id, q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

/// Your courses (trainers), oldest first.
#[utoipa::path(get, path = "/api/v1/users/me/courses", tag = "catalog", security(("bearer" = ["merchant"])),
    params(super::extract::PageQuery), responses((status = 200, body = CoursePage)))]
pub async fn my_courses(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<super::extract::PageQuery>,
) -> Result<Json<CoursePage>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .catalog
            .courses_of(&auth.0.id, q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

/// A shop. One an admin hid is 404 to anyone but its merchant and admins.
#[utoipa::path(get, path = "/api/v1/shops/{id}", tag = "catalog", security((), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Shop), (status = 404, body = ErrorBody)))]
pub async fn get_shop(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Shop>, AppError> {
    let viewer = viewer.caller();
    Ok(Json(
        s.services.catalog.shop_for(viewer.as_ref(), &id).await?,
    ))
}

/// Change a shop (its owner only).
#[utoipa::path(put, path = "/api/v1/shops/{id}", tag = "catalog", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    request_body = ShopPatch, responses((status = 200, body = Shop), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_shop(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(patch): Json<ShopPatch>,
) -> Result<Json<Shop>, AppError> {
    Ok(Json(
        s.services
            .catalog
            .update_shop(auth.0.caller(), &id, patch)
            .await?,
    ))
}

/// Add a product to a shop (the shop's owner only).
#[utoipa::path(post, path = "/api/v1/shops/{id}/products", tag = "catalog", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    request_body = ProductInput, responses((status = 201, body = Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_product(
    State(s): State<AppState>,
    auth: Auth,
    Path(shop_id): Path<String>,
    Json(input): Json<ProductInput>,
) -> Result<(StatusCode, Json<Product>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .catalog
                .create_product(auth.0.caller(), &shop_id, input)
                .await?,
        ),
    ))
}

/// A product. One an admin hid (or whose shop they hid) is 404 to anyone
/// but its merchant and admins.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", security((), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Product>, AppError> {
    let viewer = viewer.caller();
    Ok(Json(
        s.services.catalog.product_for(viewer.as_ref(), &id).await?,
    ))
}

/// Delete a product (its merchant): it leaves listings, search, inventory
/// and carts' checkouts, reads 404, and its images are deleted. Orders
/// keep what they bought. 409 `stock_held` while orders or a flash sale
/// hold its stock (set `active: false` and delete it when they are done).
/// Deleting it again answers 204 (and finishes an interrupted deletion).
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_product(
    State(s): State<AppState>,
    auth: super::extract::Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services
        .media
        .delete_product(&auth.0.caller(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a product (its owner only); `active: false` hides it from search.
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "catalog", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    request_body = ProductPatch, responses((status = 200, body = Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "stock_buckets_fixed: the stock was split and a bucket stocked already")))]
pub async fn update_product(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(patch): Json<ProductPatch>,
) -> Result<Json<Product>, AppError> {
    Ok(Json(
        s.services
            .catalog
            .update_product(auth.0.caller(), &id, patch)
            .await?,
    ))
}

/// Search active products, oldest first, with cursor pagination.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductQuery),
    responses((status = 200, body = ProductPage), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_products(
    State(s): State<AppState>,
    Query(q): Query<ProductQuery>,
) -> Result<Json<ProductPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let filter = ProductFilter {
        category: q.category,
        categories: None,
        shop_id: q.shop_id,
        min_price: q.min_price,
        max_price: q.max_price,
        text: q.q,
    };
    Ok(Json(
        s.services
            .catalog
            .list_products(
                &filter,
                q.category_id.as_deref(),
                q.cursor.as_deref(),
                limit,
            )
            .await?
            .into(),
    ))
}

/// Publish a course (merchants acting as trainers); `price: 0` is a free course.
#[utoipa::path(post, path = "/api/v1/courses", tag = "catalog", security(("bearer" = ["merchant"])), request_body = CourseInput,
    responses((status = 201, body = Course), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_course(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<CourseInput>,
) -> Result<(StatusCode, Json<Course>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .catalog
                .create_course(auth.0.caller(), input)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/courses/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = Course), (status = 404, body = ErrorBody)))]
pub async fn get_course(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Course>, AppError> {
    Ok(Json(s.services.catalog.get_course(&id).await?))
}

/// Change a course (its trainer only).
#[utoipa::path(put, path = "/api/v1/courses/{id}", tag = "catalog", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    request_body = CoursePatch, responses((status = 200, body = Course), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_course(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(patch): Json<CoursePatch>,
) -> Result<Json<Course>, AppError> {
    Ok(Json(
        s.services
            .catalog
            .update_course(auth.0.caller(), &id, patch)
            .await?,
    ))
}

/// List courses, optionally of one kind.
#[utoipa::path(get, path = "/api/v1/courses", tag = "catalog", params(CourseQuery),
    responses((status = 200, body = CoursePage), (status = 400, body = ErrorBody)))]
pub async fn list_courses(
    State(s): State<AppState>,
    Query(q): Query<CourseQuery>,
) -> Result<Json<CoursePage>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .catalog
            .list_courses(q.kind, q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}
