//! Checkout and order handlers (`service::commerce::checkout`, `service::commerce::orders`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::domain::order::returns::ReturnInput;
use crate::domain::order::Step;
use crate::domain::order::{Order, TimelineEntry};
use crate::service::commerce::checkout_payment::CheckoutPayment;
use crate::service::products::catalog::check_limit;

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub address_id: String,
    /// `cod` or `sandbox`.
    pub payment_method: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutResponse {
    /// One order per shop.
    pub orders: Vec<Order>,
    /// Online: the one payment of all of them (pay at its `checkout_url`);
    /// null for cash on delivery, which is due per order.
    pub payment: Option<CheckoutPayment>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

/// An optional reason: free text, checked like every other (1–500
/// characters, no control or invisible formatting characters).
pub(super) fn reason(body: Option<Json<Reason>>) -> Result<Option<String>, AppError> {
    body.and_then(|Json(r)| r.reason)
        .map(|r| crate::domain::check_text("reason", &r, 500))
        .transpose()
        .map_err(AppError::from)
}

/// Check out the cart: holds stock, redeems the coupon, creates one order
/// per shop and empties the cart. `Idempotency-Key` makes retries safe.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CheckoutResponse), (status = 404, body = ErrorBody, description = "no such address of yours, or a product in the cart is gone"), (status = 409, body = ErrorBody, description = "out_of_stock, coupon_exhausted, cart_empty…"), (status = 422, body = ErrorBody, description = "validation_failed, idempotency_key_reused")))]
pub async fn checkout(
    State(s): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Json(r): Json<CheckoutRequest>,
) -> Result<(StatusCode, Json<CheckoutResponse>), AppError> {
    let key = super::extract::idempotency(&headers, "POST", "/api/v1/orders", &r)?;
    let orders = s
        .services
        .checkout
        .checkout(&auth.0.caller(), &r.address_id, &r.payment_method, key)
        .await?;
    let payment = CheckoutPayment::of(&orders);
    Ok((
        StatusCode::CREATED,
        Json(CheckoutResponse { orders, payment }),
    ))
}

/// Your checkout's payment: its status, its current link, its deadline
/// and its orders.
#[utoipa::path(get, path = "/api/v1/checkouts/{id}", tag = "orders", security(("bearer" = [])), params(("id" = String, Path, description = "the payment's id (`payment.session.id` of each of its orders)")),
    responses((status = 200, body = CheckoutPayment), (status = 404, body = ErrorBody, description = "no such checkout payment of yours")))]
pub async fn get_checkout(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CheckoutPayment>, AppError> {
    Ok(Json(
        s.services.checkout.payment(&auth.0.caller(), &id).await?,
    ))
}

/// Pay your checkout again: after a declined payment, or a payment page
/// closed or lost, a new link for the same total, until the checkout's
/// deadline. The link before stops taking payments.
#[utoipa::path(post, path = "/api/v1/checkouts/{id}/pay", tag = "orders", security(("bearer" = [])), params(("id" = String, Path, description = "the payment's id (`payment.session.id` of each of its orders)")),
    responses((status = 200, body = CheckoutPayment), (status = 404, body = ErrorBody, description = "no such checkout payment of yours"),
        (status = 409, body = ErrorBody, description = "already_paid; checkout_expired (past the deadline: the orders are cancelled and what they held released); checkout_cancelled (you cancelled one of its orders); too_many_attempts")))]
pub async fn pay_checkout(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CheckoutPayment>, AppError> {
    Ok(Json(
        s.services.checkout.pay_again(&auth.0.caller(), &id).await?,
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MyOrdersQuery {
    /// Only orders in this status now (`return_requested`, `returned`
    /// and `refunded` list returns and refunds).
    #[param(inline)]
    pub status: Option<crate::domain::order::OrderStatus>,
    /// Only orders created at or after this time.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only orders created before this time (after `from`).
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Your orders, newest first, by status and creation time. A page reads
/// at most 500 orders, so one narrowed by `status` may hold fewer than
/// `limit`: follow `next_cursor` until it is null.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(MyOrdersQuery), responses((status = 200, body = OrderPage)))]
pub async fn list_orders(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<MyOrdersQuery>,
) -> Result<Json<OrderPage>, AppError> {
    let filter = crate::service::commerce::orders::OrderFilter {
        status: q.status,
        from: q.from,
        to: q.to,
    };
    let limit = check_limit(q.limit)?;
    let page = s
        .services
        .orders
        .my_orders(&auth.0.id, filter, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(OrderPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// An order (its customer, its shop's merchant, or an admin).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    Ok(Json(
        s.services.orders.get_order(&auth.0.caller(), &id).await?,
    ))
}

/// "Buy again": your order's lines back in your cart at today's prices,
/// each at least at the quantity ordered (again changes nothing); what
/// cannot be bought now is left out with why.
#[utoipa::path(post, path = "/api/v1/orders/{id}/buy-again", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = crate::service::commerce::cart::BuyAgain), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn buy_again(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::service::commerce::cart::BuyAgain>, AppError> {
    let caller = auth.0.caller();
    let order = s.services.orders.get_order(&caller, &id).await?;
    Ok(Json(s.services.carts.buy_again(&caller, &order).await?))
}

/// Every transition with who, when and why.
#[utoipa::path(get, path = "/api/v1/orders/{id}/timeline", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<TimelineEntry>), (status = 404, body = ErrorBody)))]
pub async fn order_timeline(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<TimelineEntry>>, AppError> {
    Ok(Json(
        s.services
            .orders
            .get_order(&auth.0.caller(), &id)
            .await?
            .timeline,
    ))
}

pub(super) async fn step(
    s: &AppState,
    auth: &Auth,
    id: &str,
    step: Step,
    reason: Option<String>,
) -> Result<Json<Order>, AppError> {
    Ok(Json(
        s.services
            .orders
            .order_step(&auth.0.caller(), id, step, reason)
            .await?,
    ))
}

/// Cancel (customer or merchant, before pickup). Held stock is released.
#[utoipa::path(put, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)), request_body = Option<Reason>,
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "`forbidden`: the caller's part in the order may not take this step"), (status = 409, body = ErrorBody, description = "illegal_transition")))]
pub async fn cancel_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<Json<Reason>>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::Cancel, reason(body)?).await
}

/// Confirm (the shop's merchant).
#[utoipa::path(put, path = "/api/v1/orders/{id}/confirm", tag = "orders", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "`forbidden`: the caller's part in the order may not take this step"), (status = 409, body = ErrorBody)))]
pub async fn confirm_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::Confirm, None).await
}

/// Request a return (customer, within the return window after delivery,
/// once per order): every line, or `lines` with how many units of each,
/// with a reason and photos. Accepting it refunds `return_request.amount`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/return", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)), request_body = Option<ReturnInput>,
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "`forbidden`: the caller's part in the order may not take this step"), (status = 409, body = ErrorBody, description = "illegal_transition, return_window_closed, return_already_requested, partial_return_unavailable"), (status = 422, body = ErrorBody)))]
pub async fn return_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<Json<ReturnInput>>,
) -> Result<Json<Order>, AppError> {
    let input = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(
        s.services
            .orders
            .request_return(&auth.0.caller(), &id, input)
            .await?,
    ))
}

/// Refuse a requested return (the shop's merchant), saying why: the order
/// is delivered again, and the shop is paid at the return window's end.
#[utoipa::path(put, path = "/api/v1/orders/{id}/return/refuse", tag = "orders", security(("bearer" = ["merchant"])), params(("id" = String, Path)), request_body = Reason,
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "`forbidden`: the caller's part in the order may not take this step"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody, description = "no reason")))]
pub async fn refuse_return(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<Json<Reason>>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::RefuseReturn, reason(body)?).await
}

/// The merchant received the returned goods; the return's amount is
/// refunded (all of the payment for a whole return).
#[utoipa::path(put, path = "/api/v1/orders/{id}/return/receive", tag = "orders", security(("bearer" = ["merchant"])), params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "`forbidden`: the caller's part in the order may not take this step"), (status = 409, body = ErrorBody)))]
pub async fn receive_return(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::ReceiveReturn, None).await
}
