//! Image uploads (multipart, one `file` part) for products, courses and
//! reviews, their order, their removal, and `/media/{id}` serving them.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, MaybeAuth, Path, Query};
use super::state::AppState;
use crate::domain::catalog::{Course, Product};
use crate::domain::media::{MediaOrder, MediaRef};
use crate::domain::review::ReviewView;
use crate::media::Size;
use crate::service::products::media::Owner;

/// A multipart form with the image in its `file` part.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Upload {
    /// A JPEG, PNG or WebP image (judged by its bytes), at most
    /// `media_max_bytes` and `media_max_pixels`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The bytes of the form's `file` part (400 without one).
async fn file(form: Result<Multipart, MultipartRejection>) -> Result<Bytes, AppError> {
    let bad = |m: String| AppError::new(StatusCode::BAD_REQUEST, "invalid_upload", m);
    let mut form = form.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
            e.body_text(),
        ),
        _ => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the image as multipart/form-data, in a part named file",
        ),
    })?;
    // Parts other than `file` are skipped (and bounded by the body limit).
    for _ in 0..8 {
        let Some(part) = form.next_field().await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                e.body_text(),
            ),
            _ => bad(e.body_text()),
        })?
        else {
            break;
        };
        if part.name() == Some("file") {
            return part.bytes().await.map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "image_too_large",
                    e.body_text(),
                ),
                _ => bad(e.body_text()),
            });
        }
    }
    Err(bad("the form has no part named file".into()))
}

/// Add an image to a product (its merchant). It is checked by its content
/// (422 `unsupported_image` for anything but JPEG, PNG and WebP; 415 is for
/// a body that is not a multipart form), refused
/// beyond `media_max_bytes` or `media_max_pixels` (413 `image_too_large`,
/// read from the header before decoding), turned upright, stripped of
/// EXIF and other metadata, and stored as a display size (≤ 1600 px) and a
/// thumbnail (≤ 320 px). The first image of a product is its primary one.
/// 409 `media_limit` beyond 10.
#[utoipa::path(post, path = "/api/v1/products/{id}/media", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)),
    request_body(content = inline(Upload), content_type = "multipart/form-data"),
    responses((status = 201, body = MediaRef), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload_product_media(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<MediaRef>), AppError> {
    let bytes = file(form).await?;
    let m = s
        .services
        .media
        .add(&auth.0.caller(), Owner::Product(&id), bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Reorder a product's images (its merchant): `order` names every image
/// once, the primary one first (422 otherwise).
#[utoipa::path(put, path = "/api/v1/products/{id}/media", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = MediaOrder,
    responses((status = 200, body = Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn arrange_product_media(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<MediaOrder>,
) -> Result<Json<Product>, AppError> {
    let caller = auth.0.caller();
    let p = s
        .services
        .media
        .arrange_product(&caller, &id, input.order)
        .await?;
    Ok(Json(p))
}

/// Take an image off a product and delete it (its merchant).
#[utoipa::path(delete, path = "/api/v1/products/{id}/media/{media_id}", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), ("media_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_product_media(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, media_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let caller = auth.0.caller();
    s.services
        .media
        .remove(&caller, Owner::Product(&id), &media_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add an image to a course (its trainer); as for products.
#[utoipa::path(post, path = "/api/v1/courses/{id}/media", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)),
    request_body(content = inline(Upload), content_type = "multipart/form-data"),
    responses((status = 201, body = MediaRef), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload_course_media(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<MediaRef>), AppError> {
    let bytes = file(form).await?;
    let m = s
        .services
        .media
        .add(&auth.0.caller(), Owner::Course(&id), bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Reorder a course's images (its trainer), the primary one first.
#[utoipa::path(put, path = "/api/v1/courses/{id}/media", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = MediaOrder,
    responses((status = 200, body = Course), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn arrange_course_media(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<MediaOrder>,
) -> Result<Json<Course>, AppError> {
    let caller = auth.0.caller();
    let c = s
        .services
        .media
        .arrange_course(&caller, &id, input.order)
        .await?;
    Ok(Json(c))
}

/// Take an image off a course and delete it (its trainer).
#[utoipa::path(delete, path = "/api/v1/courses/{id}/media/{media_id}", tag = "media", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), ("media_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_course_media(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, media_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let caller = auth.0.caller();
    s.services
        .media
        .remove(&caller, Owner::Course(&id), &media_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a photo to your review while it may be edited (409
/// `edit_window_closed` after; `media_limit` beyond 6 images). Its URL
/// joins the review's `images`. Checked and converted as product images.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/photos", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = inline(Upload), content_type = "multipart/form-data"),
    responses((status = 201, body = ReviewView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload_review_photo(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<ReviewView>), AppError> {
    let bytes = file(form).await?;
    let r = s
        .services
        .media
        .add_to_review(&auth.0.caller(), &id, bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Add a photo of the goods for a return of your delivered order, before
/// you ask for it (at most 6; 409 `return_closed` once asked or outside
/// the return window, `media_limit`). The return carries them; only the
/// order's customer, its merchant and admins see them. Checked and
/// converted as product images.
#[utoipa::path(post, path = "/api/v1/orders/{id}/return/photos", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = inline(Upload), content_type = "multipart/form-data"),
    responses((status = 201, body = crate::domain::order::Order), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload_return_photo(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<crate::domain::order::Order>), AppError> {
    let bytes = file(form).await?;
    let o = s
        .services
        .media
        .add_return_photo(&auth.0.caller(), &id, bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// Take a photo uploaded to your review off it and delete it.
#[utoipa::path(delete, path = "/api/v1/reviews/{id}/photos/{media_id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path), ("media_id" = String, Path)),
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_review_photo(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, media_id)): Path<(String, String)>,
) -> Result<Json<ReviewView>, AppError> {
    let caller = auth.0.caller();
    let r = s
        .services
        .media
        .remove_from_review(&caller, &id, &media_id)
        .await?;
    Ok(Json(r))
}

/// An image's bytes, as `GET /media/{id}` answers them.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ImageBytes(Vec<u8>);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SizeQuery {
    /// `display` (default) or `thumbnail`.
    #[param(inline)]
    pub size: Option<MediaSize>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaSize {
    Display,
    Thumbnail,
}

/// An image. Its bytes never change, but whether it may be seen does: a
/// hidden product's images (and a review's not visible to the caller) are
/// 404 but to its merchant and admins. Shared caches keep it an hour,
/// then ask again (304 for a matching `If-None-Match`); the answer to
/// someone who sees it only as the owner or an admin is not stored.
#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media", security((), ("bearer" = [])),
    params(("id" = String, Path), SizeQuery),
    responses((status = 200, description = "JPEG, or PNG for an image with transparency",
        content((ImageBytes = "image/jpeg"), (ImageBytes = "image/png")),
        headers(("cache-control" = String), ("etag" = String))), (status = 304), (status = 404, body = ErrorBody)))]
pub async fn get_media(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<SizeQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let size = match q.size.unwrap_or(MediaSize::Display) {
        MediaSize::Display => Size::Display,
        MediaSize::Thumbnail => Size::Thumbnail,
    };
    let viewer = viewer.caller();
    let public = s.services.media.readable(viewer.as_ref(), &id).await?;
    let bytes = s.services.media.get(&id, size).await?;
    let etag = format!("\"{id}-{}\"", matches!(size, Size::Thumbnail) as u8);
    let etag = HeaderValue::from_str(&etag)
        .map_err(|_| AppError::from(crate::domain::DomainError::NotFound("media")))?;
    let cache = HeaderValue::from_static(match public {
        true => "public, max-age=3600",
        false => "private, no-store",
    });
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes() || v.as_bytes() == b"*")
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let kind = HeaderValue::from_static(crate::media::content_type(&bytes));
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}
