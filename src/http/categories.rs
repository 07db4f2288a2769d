//! `/categories`: the category tree, read by anyone, arranged by admins.

use axum::extract::State;
use axum::http::StatusCode;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::state::AppState;
use crate::domain::category::{Category, CategoryInput, CategoryPatch};

/// Every category in reading order: each root, then its subtree (siblings
/// by `position`, then name). Build the tree from `parent_id`.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog",
    responses((status = 200, body = Vec<Category>)))]
pub async fn list_categories(State(s): State<AppState>) -> Result<Json<Vec<Category>>, AppError> {
    Ok(Json(s.services.categories.list().await?))
}

#[utoipa::path(get, path = "/api/v1/categories/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = Category), (status = 404, body = ErrorBody)))]
pub async fn get_category(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Category>, AppError> {
    Ok(Json(s.services.categories.get(&id).await?))
}

/// Add a category (admins). 409 `slug_taken`, `category_limit`; 422 for a
/// bad slug or name, an unknown parent, or a tree deeper than 6 levels.
#[utoipa::path(post, path = "/api/v1/categories", tag = "catalog", security(("bearer" = [])),
    request_body = CategoryInput,
    responses((status = 201, body = Category), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_category(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<CategoryInput>,
) -> Result<(StatusCode, Json<Category>), AppError> {
    let c = s.services.categories.create(auth.0.caller(), input).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Rename, move (`parent_id`; `null`: to the top) or reorder a category
/// (admins); its slug is fixed. 422 when the move would put it under
/// itself or one of its own, or deeper than 6 levels.
#[utoipa::path(put, path = "/api/v1/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CategoryPatch,
    responses((status = 200, body = Category), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_category(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(patch): Json<CategoryPatch>,
) -> Result<Json<Category>, AppError> {
    Ok(Json(
        s.services
            .categories
            .update(auth.0.caller(), &id, patch)
            .await?,
    ))
}

/// Delete a category without subcategories (admins; 409 `has_children`).
/// Its products keep its slug as their free-text category.
#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_category(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services.categories.delete(auth.0.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
