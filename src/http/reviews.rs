//! Reviews and ratings: thin handlers over `service::products::reviews`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, MaybeAuth, PageQuery, Path, Query};
use super::state::AppState;
use crate::domain::review::{
    DeliveryReviewInput, ModerationInput, RatingSummary, ReplyInput, ReportInput, ReviewEdit,
    ReviewInput, ReviewKind, ReviewStatus, ReviewView,
};
use crate::service::products::catalog::{check_limit, Page};

#[derive(Serialize, ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewView>,
    pub next_cursor: Option<String>,
}

impl From<Page<ReviewView>> for ReviewPage {
    fn from(p: Page<ReviewView>) -> Self {
        ReviewPage {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

async fn write(
    s: &AppState,
    auth: &Auth,
    kind: ReviewKind,
    subject: &str,
    input: ReviewInput,
) -> Result<(StatusCode, Json<ReviewView>), AppError> {
    let (order_id, draft) = input.split();
    let review = s
        .services
        .reviews
        .write(&auth.0.caller(), kind, Some(subject), &order_id, draft)
        .await?;
    Ok((StatusCode::CREATED, Json(review)))
}

async fn list(
    s: &AppState,
    viewer: MaybeAuth,
    kind: ReviewKind,
    subject: &str,
    q: PageQuery,
) -> Result<Json<ReviewPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let viewer = viewer.caller();
    Ok(Json(
        s.services
            .reviews
            .list(viewer.as_ref(), kind, subject, q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

/// Review a product of one of your delivered orders (once per order line).
#[utoipa::path(post, path = "/api/v1/products/{id}/reviews", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReviewInput,
    responses((status = 201, body = ReviewView), (status = 403, body = ErrorBody, description = "not the order's customer"),
        (status = 404, body = ErrorBody, description = "no such product"),
        (status = 409, body = ErrorBody, description = "`not_delivered`, `already_reviewed`"),
        (status = 422, body = ErrorBody, description = "`order_id` is no order of yours or has no such product, or the review breaks a rule")))]
pub async fn review_product(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ReviewInput>,
) -> Result<(StatusCode, Json<ReviewView>), AppError> {
    write(&s, &auth, ReviewKind::Product, &id, input).await
}

/// A product's approved reviews, newest first.
#[utoipa::path(get, path = "/api/v1/products/{id}/reviews", tag = "reviews", security((), ("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ReviewPage), (status = 404, body = ErrorBody)))]
pub async fn product_reviews(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ReviewPage>, AppError> {
    list(&s, viewer, ReviewKind::Product, &id, q).await
}

/// A product's rating: average, count and distribution of approved reviews.
#[utoipa::path(get, path = "/api/v1/products/{id}/rating-summary", tag = "reviews", security((), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RatingSummary), (status = 404, body = ErrorBody)))]
pub async fn product_rating(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<RatingSummary>, AppError> {
    let viewer = viewer.caller();
    Ok(Json(
        s.services
            .reviews
            .summary(viewer.as_ref(), ReviewKind::Product, &id)
            .await?,
    ))
}

/// Review the shop of one of your delivered orders (once per order).
#[utoipa::path(post, path = "/api/v1/shops/{id}/reviews", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReviewInput,
    responses((status = 201, body = ReviewView), (status = 403, body = ErrorBody, description = "not the order's customer"),
        (status = 404, body = ErrorBody, description = "no such shop"),
        (status = 409, body = ErrorBody, description = "`not_delivered`, `already_reviewed`"),
        (status = 422, body = ErrorBody, description = "`order_id` is no order of yours or not from this shop, or the review breaks a rule")))]
pub async fn review_shop(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ReviewInput>,
) -> Result<(StatusCode, Json<ReviewView>), AppError> {
    write(&s, &auth, ReviewKind::Shop, &id, input).await
}

/// A shop's approved reviews, newest first.
#[utoipa::path(get, path = "/api/v1/shops/{id}/reviews", tag = "reviews", security((), ("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ReviewPage), (status = 404, body = ErrorBody)))]
pub async fn shop_reviews(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ReviewPage>, AppError> {
    list(&s, viewer, ReviewKind::Shop, &id, q).await
}

/// A shop's rating: average, count and distribution of approved reviews.
#[utoipa::path(get, path = "/api/v1/shops/{id}/rating-summary", tag = "reviews", security((), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RatingSummary), (status = 404, body = ErrorBody)))]
pub async fn shop_rating(
    State(s): State<AppState>,
    viewer: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<RatingSummary>, AppError> {
    let viewer = viewer.caller();
    Ok(Json(
        s.services
            .reviews
            .summary(viewer.as_ref(), ReviewKind::Shop, &id)
            .await?,
    ))
}

/// Review the shipper who delivered one of your orders (once per order).
#[utoipa::path(post, path = "/api/v1/deliveries/{order_id}/review", tag = "reviews", security(("bearer" = [])),
    params(("order_id" = String, Path)), request_body = DeliveryReviewInput,
    responses((status = 201, body = ReviewView), (status = 403, body = ErrorBody, description = "not the order's customer"),
        (status = 404, body = ErrorBody, description = "no such order of yours"),
        (status = 409, body = ErrorBody, description = "`not_delivered`, `no_shipper` (nobody carried it), `already_reviewed`")))]
pub async fn review_delivery(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
    Json(input): Json<DeliveryReviewInput>,
) -> Result<(StatusCode, Json<ReviewView>), AppError> {
    let review = s
        .services
        .reviews
        .write(
            &auth.0.caller(),
            ReviewKind::Shipper,
            None,
            &order_id,
            input,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(review)))
}

/// The review of an order's delivery.
#[utoipa::path(get, path = "/api/v1/deliveries/{order_id}/review", tag = "reviews", security(("bearer" = [])),
    params(("order_id" = String, Path)),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody, description = "no such order of yours, or no review of its delivery"),
        (status = 409, body = ErrorBody, description = "`no_shipper`: nobody carried it")))]
pub async fn delivery_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services
            .reviews
            .of_delivery(&auth.0.caller(), &order_id)
            .await?,
    ))
}

/// A shipper's rating (the shipper, merchants and admins).
#[utoipa::path(get, path = "/api/v1/shippers/{id}/rating-summary", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = RatingSummary), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn shipper_rating(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<RatingSummary>, AppError> {
    Ok(Json(
        s.services
            .reviews
            .summary(Some(&auth.0.caller()), ReviewKind::Shipper, &id)
            .await?,
    ))
}

/// The reviews written for one of your orders (its products', shop's and
/// shipper's) that you may see.
#[utoipa::path(get, path = "/api/v1/orders/{id}/reviews", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<ReviewView>), (status = 404, body = ErrorBody)))]
pub async fn order_reviews(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReviewView>>, AppError> {
    Ok(Json(
        s.services.reviews.of_order(&auth.0.caller(), &id).await?,
    ))
}

/// One review: public once approved; before that, to its author, the
/// shop's merchant and admins.
#[utoipa::path(get, path = "/api/v1/reviews/{id}", tag = "reviews", security((), ("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody)))]
pub async fn get_review(
    State(s): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services.reviews.get(auth.caller().as_ref(), &id).await?,
    ))
}

/// Edit your review within the edit window (absent fields keep their
/// value; an edit that changes nothing changes nothing).
#[utoipa::path(put, path = "/api/v1/reviews/{id}", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReviewEdit,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody, description = "not its author"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`edit_window_closed`")))]
pub async fn edit_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(edit): Json<ReviewEdit>,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services.reviews.edit(&auth.0.caller(), &id, edit).await?,
    ))
}

/// Reply to a review of your shop, its products or its deliveries (once).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/reply", tag = "reviews", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = ReplyInput,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody, description = "not the shop's merchant"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`already_replied`")))]
pub async fn reply_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ReplyInput>,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services
            .reviews
            .reply(&auth.0.caller(), &id, input)
            .await?,
    ))
}

/// Report a review (a person's report counts once; enough reports since an
/// admin last approved it send it back to moderation). The reviewed shop's
/// merchant cannot report its reviews; reports are throttled per account.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/report", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReportInput,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody, description = "the reviewed shop's merchant"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`own_review`"),
        (status = 429, body = ErrorBody, description = "too many reports from this account")))]
pub async fn report_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ReportInput>,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services
            .reviews
            .report(&auth.0.caller(), &id, input)
            .await?,
    ))
}

/// Reviews waiting for moderation, oldest first (admins).
#[utoipa::path(get, path = "/api/v1/reviews/moderation/pending", tag = "reviews", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = ReviewPage), (status = 403, body = ErrorBody)))]
pub async fn pending_reviews(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<ReviewPage>, AppError> {
    let limit = check_limit(q.limit)?;
    Ok(Json(
        s.services
            .reviews
            .pending(&auth.0.caller(), q.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}

async fn moderate(
    s: &AppState,
    auth: &Auth,
    id: &str,
    to: ReviewStatus,
    input: ModerationInput,
) -> Result<Json<ReviewView>, AppError> {
    Ok(Json(
        s.services
            .reviews
            .moderate(&auth.0.caller(), id, to, input)
            .await?,
    ))
}

/// Approve a review (admins): public and counted.
#[utoipa::path(put, path = "/api/v1/reviews/{id}/approve", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ModerationInput,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`already_approved`")))]
pub async fn approve_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ModerationInput>,
) -> Result<Json<ReviewView>, AppError> {
    moderate(&s, &auth, &id, ReviewStatus::Approved, input).await
}

/// Reject a review (admins): hidden and not counted.
#[utoipa::path(put, path = "/api/v1/reviews/{id}/reject", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ModerationInput,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`already_rejected`")))]
pub async fn reject_review(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ModerationInput>,
) -> Result<Json<ReviewView>, AppError> {
    moderate(&s, &auth, &id, ReviewStatus::Rejected, input).await
}
