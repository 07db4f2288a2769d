//! Flash sales and course enrollments: thin handlers over `service::queue::flash_sales` and `service::queue::queues`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{idempotency, Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::catalog::CourseSession;
use crate::domain::claim::{Claim, ClaimStatus, QueueKind};
use crate::http::extract::PageQuery;
use crate::service::products::catalog::check_limit;
use crate::service::queue::flash_sales::{FlashSaleInput, FlashSaleView, SaleListing};
use crate::service::queue::queues::{ClaimOutcome, ClaimRequest, CourseSeats};

/// 201 for a confirmed claim, 202 for a waitlisted one.
fn claim_status(c: &ClaimOutcome) -> StatusCode {
    match c.claim.status {
        ClaimStatus::Confirmed => StatusCode::CREATED,
        _ => StatusCode::ACCEPTED,
    }
}

/// Open a flash sale on one of your products: its stock is reserved now.
#[utoipa::path(post, path = "/api/v1/flash-sales", tag = "burst", security(("bearer" = ["merchant"])),
    request_body = FlashSaleInput,
    responses((status = 201, body = FlashSaleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such product"), (status = 409, body = ErrorBody, description = "out_of_stock"), (status = 422, body = ErrorBody)))]
pub async fn create_flash_sale(
    State(s): State<AppState>,
    auth: Auth,
    Json(input): Json<FlashSaleInput>,
) -> Result<(StatusCode, Json<FlashSaleView>), AppError> {
    let sale = s
        .services
        .flash_sales
        .create_flash_sale(&auth.0.caller(), input)
        .await?;
    Ok((StatusCode::CREATED, Json(sale)))
}

#[derive(Serialize, ToSchema)]
pub struct FlashSalePage {
    pub items: Vec<FlashSaleView>,
    pub next_cursor: Option<String>,
}

/// Your flash sales (merchants), oldest first, with their live counters.
#[utoipa::path(get, path = "/api/v1/users/me/flash-sales", tag = "burst", security(("bearer" = ["merchant"])),
    params(PageQuery), responses((status = 200, body = FlashSalePage)))]
pub async fn my_flash_sales(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<FlashSalePage>, AppError> {
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .flash_sales
        .sales_of(&auth.0.id, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(FlashSalePage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SaleListQuery {
    /// `live` (open or sold out) or `upcoming` (not started); both when
    /// absent.
    #[param(inline)]
    pub state: Option<SaleListing>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The flash sales that have not ended, soonest ending first (those with
/// no end last), each with its live counters and `state`. A page may hold
/// fewer than `limit` (sales of hidden products and those not in `state`
/// are left out); follow `next_cursor` until it is null.
#[utoipa::path(get, path = "/api/v1/flash-sales", tag = "burst", params(SaleListQuery),
    responses((status = 200, body = FlashSalePage), (status = 400, body = ErrorBody, description = "an unknown `state`"), (status = 422, body = ErrorBody)))]
pub async fn list_flash_sales(
    State(s): State<AppState>,
    Query(q): Query<SaleListQuery>,
) -> Result<Json<FlashSalePage>, AppError> {
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .flash_sales
        .listed_sales(q.state, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(FlashSalePage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A flash sale: capacity, confirmed, remaining, waitlisted and state.
#[utoipa::path(get, path = "/api/v1/flash-sales/{id}", tag = "burst", params(("id" = String, Path)),
    responses((status = 200, body = FlashSaleView), (status = 404, body = ErrorBody)))]
pub async fn get_flash_sale(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FlashSaleView>, AppError> {
    Ok(Json(s.services.flash_sales.flash_sale(&id).await?))
}

/// Claim units of a flash sale. 201 `confirmed` (an order at the sale
/// price follows for payment), 202 `waitlisted` with its position, 409
/// `sold_out` / `limit_reached` / `not_started` (before `opens_at`) /
/// `ended` (from `closes_at`), 429 when too many
/// claims are waiting. The answer is sent once the decision is durable; a
/// retry with the same `Idempotency-Key` answers the first decision.
#[utoipa::path(post, path = "/api/v1/flash-sales/{id}/claims", tag = "burst", security(("bearer" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = ClaimRequest,
    responses((status = 201, body = ClaimOutcome), (status = 202, body = ClaimOutcome), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn claim_flash_sale(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<ClaimRequest>>,
) -> Result<(StatusCode, Json<ClaimOutcome>), AppError> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let key = idempotency(
        &headers,
        "POST",
        &format!("/api/v1/flash-sales/{id}/claims"),
        &req,
    )?;
    let out = s
        .services
        .queues
        .claim(
            &auth.0.caller(),
            &id,
            QueueKind::FlashSale,
            req,
            key,
            auth.0.default_address.clone(),
        )
        .await?;
    Ok((claim_status(&out), Json(out)))
}

/// Enroll in a course: 201 confirmed (for a paid course, an order follows
/// for payment, id = the enrollment's id; unpaid in time, the place goes to
/// the waitlist), 202 waitlisted, 409 `sold_out` or `limit_reached` (one
/// place per person). Same guarantees as claims. Optional body
/// `{payment_method}` for paid courses (an online provider; `sandbox` by
/// default).
#[utoipa::path(post, path = "/api/v1/courses/{id}/enrollments", tag = "burst", security(("bearer" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body(content = Option<ClaimRequest>),
    responses((status = 201, body = ClaimOutcome), (status = 202, body = ClaimOutcome), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn enroll(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<ClaimRequest>>,
) -> Result<(StatusCode, Json<ClaimOutcome>), AppError> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let req = ClaimRequest {
        quantity: 1,
        address_id: None,
        ..req
    };
    let key = idempotency(
        &headers,
        "POST",
        &format!("/api/v1/courses/{id}/enrollments"),
        &req,
    )?;
    let out = s
        .services
        .queues
        .claim(&auth.0.caller(), &id, QueueKind::Course, req, key, None)
        .await?;
    Ok((claim_status(&out), Json(out)))
}

async fn cancel(
    s: AppState,
    auth: Auth,
    kind: QueueKind,
    id: String,
    claim_id: String,
) -> Result<Json<Claim>, AppError> {
    Ok(Json(
        s.services
            .queues
            .cancel_claim(&auth.0.caller(), kind, &id, &claim_id)
            .await?,
    ))
}

/// Give up a flash-sale claim (its order is cancelled); the waitlist moves up.
#[utoipa::path(delete, path = "/api/v1/flash-sales/{id}/claims/{claim_id}", tag = "burst", security(("bearer" = [])),
    params(("id" = String, Path), ("claim_id" = String, Path)),
    responses((status = 200, body = Claim), (status = 404, body = ErrorBody),
        (status = 409, description = "`claim_not_active`: the claim is already cancelled or expired", body = ErrorBody)))]
pub async fn cancel_sale_claim(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, claim_id)): Path<(String, String)>,
) -> Result<Json<Claim>, AppError> {
    cancel(s, auth, QueueKind::FlashSale, id, claim_id).await
}

/// Give up a course place; the waitlist moves up.
#[utoipa::path(delete, path = "/api/v1/courses/{id}/enrollments/{claim_id}", tag = "burst", security(("bearer" = [])),
    params(("id" = String, Path), ("claim_id" = String, Path)),
    responses((status = 200, body = Claim), (status = 404, body = ErrorBody),
        (status = 409, description = "`claim_not_active`: the claim is already cancelled or expired", body = ErrorBody)))]
pub async fn cancel_enrollment(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, claim_id)): Path<(String, String)>,
) -> Result<Json<Claim>, AppError> {
    cancel(s, auth, QueueKind::Course, id, claim_id).await
}

#[derive(Serialize, ToSchema)]
pub struct ClaimPage {
    pub items: Vec<Claim>,
    pub next_cursor: Option<String>,
}

async fn claims_page(
    s: AppState,
    auth: Auth,
    kind: QueueKind,
    id: String,
    q: PageQuery,
) -> Result<Json<ClaimPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let (items, next_cursor) = s
        .services
        .queues
        .queue_claims(&auth.0.caller(), kind, &id, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(ClaimPage { items, next_cursor }))
}

/// The claims of your flash sale (its merchant).
#[utoipa::path(get, path = "/api/v1/flash-sales/{id}/claims", tag = "burst", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ClaimPage), (status = 403, body = ErrorBody)))]
pub async fn sale_claims(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ClaimPage>, AppError> {
    claims_page(s, auth, QueueKind::FlashSale, id, q).await
}

/// A course's seats: capacity, confirmed, remaining, waitlisted (live on
/// `queue:{id}`).
#[utoipa::path(get, path = "/api/v1/courses/{id}/seats", tag = "burst", params(("id" = String, Path)),
    responses((status = 200, body = CourseSeats), (status = 404, body = ErrorBody)))]
pub async fn course_seats(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<CourseSeats>, AppError> {
    Ok(axum::Json(s.services.queues.course_seats(&id).await?))
}

/// The enrollments of your course (its trainer).
#[utoipa::path(get, path = "/api/v1/courses/{id}/enrollments", tag = "burst", security(("bearer" = ["merchant"])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ClaimPage), (status = 403, body = ErrorBody)))]
pub async fn course_enrollments(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ClaimPage>, AppError> {
    claims_page(s, auth, QueueKind::Course, id, q).await
}

/// Your enrollments and flash-sale claims.
#[utoipa::path(get, path = "/api/v1/users/me/enrollments", tag = "burst", security(("bearer" = [])),
    responses((status = 200, body = Vec<Claim>)))]
pub async fn my_enrollments(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Claim>>, AppError> {
    Ok(Json(s.services.queues.my_claims(&auth.0.id).await?))
}

/// Add a session (with its exercises) to your course; everyone enrolled is
/// notified.
#[utoipa::path(post, path = "/api/v1/courses/{id}/sessions", tag = "burst", security(("bearer" = ["merchant"])),
    params(("id" = String, Path)), request_body = CourseSession,
    responses((status = 201, body = CourseSession), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_session(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(session): Json<CourseSession>,
) -> Result<(StatusCode, Json<CourseSession>), AppError> {
    let added = s
        .services
        .course_sessions
        .add_course_session(&auth.0.caller(), &id, session)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// The course's sessions with their exercises (enrolled users, the trainer).
#[utoipa::path(get, path = "/api/v1/courses/{id}/sessions", tag = "burst", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<CourseSession>), (status = 403, body = ErrorBody)))]
pub async fn sessions(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<CourseSession>>, AppError> {
    Ok(Json(
        s.services
            .course_sessions
            .course_sessions(&auth.0.caller(), &id)
            .await?,
    ))
}
