//! `/cart`, `/orders`, `/shipping`, `/payments`, coupons: thin handlers over
//! `service::commerce`. The sandbox gateway's hosted payment page is here
//! too (it is what a real gateway would host on its own site).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::state::AppState;
use crate::actors::cart::SavedCart;
use crate::actors::coupon::{Coupon, CouponInput};
use crate::domain::order::Step;
use crate::domain::order::{Order, Payment, TimelineEntry};
use crate::domain::{GeoPoint, Role};
use crate::service::cart::{CartView, ShippingQuote};
use crate::service::catalog::check_limit;
use crate::service::orders::RevenueDay;
use crate::service::payments::WebhookOutcome;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub product_id: String,
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
}

#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<Payment>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShippingStatus {
    ReadyForPickup,
    PickedUp,
    Delivering,
    Delivered,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingStatusRequest {
    pub status: ShippingStatus,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingCalcRequest {
    pub shop_id: String,
    /// The destination; or give `address_id` of one of your addresses.
    pub to: Option<GeoPoint>,
    pub address_id: Option<String>,
    pub weight_grams: u64,
}

const CART: &str = "cart";

/// An optional reason: free text, checked like every other (1–500
/// characters, no control or invisible formatting characters).
fn reason(body: Option<Json<Reason>>) -> Result<Option<String>, AppError> {
    body.and_then(|Json(r)| r.reason)
        .map(|r| crate::domain::check_text("reason", &r, 500))
        .transpose()
        .map_err(AppError::from)
}

/// The caller's cart with current prices.
#[utoipa::path(get, path = "/api/v1/cart", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn get_cart(State(s): State<AppState>, auth: Auth) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.get_cart(&auth.0.id).await?))
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
            .put_cart_item(&auth.0.id, &r.product_id, r.quantity, true)
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
            .put_cart_item(&auth.0.id, &product_id, r.quantity, false)
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
        s.services.remove_cart_item(&auth.0.id, &product_id).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/cart/clear", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn clear_cart(State(s): State<AppState>, auth: Auth) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.clear_cart(&auth.0.id).await?))
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
    Ok(Json(s.services.apply_coupon(&auth.0.id, &r.code).await?))
}

#[utoipa::path(delete, path = "/api/v1/cart/remove-coupon", tag = CART, security(("bearer" = [])), responses((status = 200, body = CartView)))]
pub async fn remove_coupon(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.remove_coupon(&auth.0.id).await?))
}

/// Save the current cart for later (at most 10).
#[utoipa::path(post, path = "/api/v1/cart/save", tag = CART, security(("bearer" = [])), responses((status = 201, body = SavedCart), (status = 409, body = ErrorBody)))]
pub async fn save_cart(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<SavedCart>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(s.services.save_cart(&auth.0.id).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/cart/saved", tag = CART, security(("bearer" = [])), responses((status = 200, body = Vec<SavedCart>)))]
pub async fn saved_carts(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<SavedCart>>, AppError> {
    Ok(Json(s.services.saved_carts(&auth.0.id).await?))
}

/// Replace the cart with a saved one.
#[utoipa::path(post, path = "/api/v1/cart/restore/{id}", tag = CART, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = ErrorBody)))]
pub async fn restore_cart(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(s.services.restore_cart(&auth.0.id, &id).await?))
}

/// Create a coupon on your shop.
#[utoipa::path(post, path = "/api/v1/shops/{id}/coupons", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = CouponInput, responses((status = 201, body = Coupon), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_coupon(
    State(s): State<AppState>,
    auth: Auth,
    Path(shop_id): Path<String>,
    Json(input): Json<CouponInput>,
) -> Result<(StatusCode, Json<Coupon>), AppError> {
    auth.require(&[Role::Merchant])?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .create_coupon(auth.0.caller(), &shop_id, input)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = "catalog", params(("code" = String, Path)),
    responses((status = 200, body = Coupon), (status = 404, body = ErrorBody)))]
pub async fn get_coupon(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<Coupon>, AppError> {
    Ok(Json(s.services.get_coupon(&code).await?))
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
        .checkout(&auth.0.caller(), &r.address_id, &r.payment_method, key)
        .await?;
    Ok((StatusCode::CREATED, Json(CheckoutResponse { orders })))
}

/// Your orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = OrderPage)))]
pub async fn list_orders(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<OrderPage>, AppError> {
    let page = s
        .services
        .my_orders(&auth.0.id, q.cursor.as_deref(), check_limit(q.limit)?)
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
    Ok(Json(s.services.get_order(&auth.0.caller(), &id).await?))
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
        s.services.get_order(&auth.0.caller(), &id).await?.timeline,
    ))
}

async fn step(
    s: &AppState,
    auth: &Auth,
    id: &str,
    step: Step,
    reason: Option<String>,
) -> Result<Json<Order>, AppError> {
    Ok(Json(
        s.services
            .order_step(&auth.0.caller(), id, step, reason)
            .await?,
    ))
}

/// Cancel (customer or merchant, before pickup). Held stock is released.
#[utoipa::path(put, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)), request_body = Option<Reason>,
    responses((status = 200, body = Order), (status = 409, body = ErrorBody, description = "illegal_transition")))]
pub async fn cancel_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<Json<Reason>>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::Cancel, reason(body)?).await
}

/// Confirm (the shop's merchant).
#[utoipa::path(put, path = "/api/v1/orders/{id}/confirm", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 409, body = ErrorBody)))]
pub async fn confirm_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::Confirm, None).await
}

/// Request a return (customer, within the return window after delivery).
#[utoipa::path(post, path = "/api/v1/orders/{id}/return", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)), request_body = Option<Reason>,
    responses((status = 200, body = Order), (status = 409, body = ErrorBody)))]
pub async fn return_order(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<Json<Reason>>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::RequestReturn, reason(body)?).await
}

/// The merchant received the returned goods; the payment is refunded.
#[utoipa::path(put, path = "/api/v1/orders/{id}/return/receive", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 409, body = ErrorBody)))]
pub async fn receive_return(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    step(&s, &auth, &id, Step::ReceiveReturn, None).await
}

/// Delivery progress: `ready_for_pickup` (the shop's merchant), then
/// `picked_up`, `delivering`, `delivered` (the assigned shipper, or the
/// merchant delivering by themselves; admins).
#[utoipa::path(put, path = "/api/v1/shipping/{order_id}/status", tag = "orders", security(("bearer" = [])), params(("order_id" = String, Path)),
    request_body = ShippingStatusRequest, responses((status = 200, body = Order), (status = 409, body = ErrorBody)))]
pub async fn shipping_status(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(r): Json<ShippingStatusRequest>,
) -> Result<Json<Order>, AppError> {
    let st = match r.status {
        ShippingStatus::ReadyForPickup => Step::ReadyForPickup,
        ShippingStatus::PickedUp => Step::PickUp,
        ShippingStatus::Delivering => Step::StartDelivery,
        ShippingStatus::Delivered => Step::Deliver,
    };
    step(&s, &auth, &id, st, None).await
}

/// The shipping fee from a shop to a point (or one of your addresses).
#[utoipa::path(post, path = "/api/v1/shipping/calculate", tag = "orders", security(("bearer" = [])), request_body = ShippingCalcRequest,
    responses((status = 200, body = ShippingQuote), (status = 404, body = ErrorBody, description = "no such shop, or no such address of yours"), (status = 409, body = ErrorBody, description = "out_of_delivery_area, no_address"), (status = 422, body = ErrorBody)))]
pub async fn shipping_calculate(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<ShippingCalcRequest>,
) -> Result<Json<ShippingQuote>, AppError> {
    let quote = s
        .services
        .shipping_quote(
            &auth.0.id,
            &r.shop_id,
            r.to,
            r.address_id.as_deref(),
            r.weight_grams,
        )
        .await?;
    Ok(Json(quote))
}

/// A shop's orders, newest first (its merchant).
#[utoipa::path(get, path = "/api/v1/shops/{id}/orders", tag = "orders", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = OrderPage), (status = 403, body = ErrorBody)))]
pub async fn shop_orders(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<OrderPage>, AppError> {
    let page = s
        .services
        .shop_orders(
            &auth.0.caller(),
            &id,
            q.cursor.as_deref(),
            check_limit(q.limit)?,
        )
        .await?;
    Ok(Json(OrderPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Revenue and order count by day (its merchant).
#[utoipa::path(get, path = "/api/v1/shops/{id}/analytics/revenue", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<RevenueDay>), (status = 403, body = ErrorBody)))]
pub async fn shop_revenue(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<RevenueDay>>, AppError> {
    Ok(Json(s.services.shop_revenue(&auth.0.caller(), &id).await?))
}

/// A payment provider's webhook. Verified (signature, timestamp), applied
/// once per event id; a replay answers `duplicate` and changes nothing.
#[utoipa::path(post, path = "/api/v1/payments/{provider}/webhook", tag = "payments", params(("provider" = String, Path)),
    responses((status = 200, body = WebhookOutcome), (status = 401, body = ErrorBody, description = "bad or stale signature"), (status = 409, body = ErrorBody, description = "amount_mismatch")))]
pub async fn webhook(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    req: axum::extract::Request,
) -> Result<Json<WebhookOutcome>, AppError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, WEBHOOK_BODY_LIMIT)
        .await
        .map_err(|_| {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the webhook body is too large",
            )
        })?;
    Ok(Json(
        s.services
            .payment_webhook(&provider, &parts.headers, &body)
            .await?,
    ))
}

const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// A payment (the id is its order's id).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody)))]
pub async fn get_payment(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Payment>, AppError> {
    Ok(Json(
        s.services.get_order(&auth.0.caller(), &id).await?.payment,
    ))
}

/// Your payments, newest first.
#[utoipa::path(get, path = "/api/v1/payments/history", tag = "payments", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = PaymentPage)))]
pub async fn payment_history(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<PaymentPage>, AppError> {
    let page = s
        .services
        .my_orders(&auth.0.id, q.cursor.as_deref(), check_limit(q.limit)?)
        .await?;
    Ok(Json(PaymentPage {
        items: page.items.into_iter().map(|o| o.payment).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The sandbox gateway's hosted payment page.
pub async fn sandbox_page(
    State(s): State<AppState>,
    Path((reference, key)): Path<(String, String)>,
) -> Result<Response, AppError> {
    sandbox_link(&s, &reference, &key)?;
    let p = s
        .services
        .sandbox
        .get(&reference)
        .await
        .map_err(|e| AppError::from(crate::service::ServiceError::from(e)))?;
    let r = format!("{}/{}", escape(&p.reference), escape(&key));
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Sandbox payment</title></head><body>\
         <h1>Surge sandbox gateway</h1><p>Payment <code>{r}</code>: <strong>{} {}</strong> ({:?})</p>\
         <form method=post action=\"/payments/sandbox/{r}/pay\"><button id=pay>Pay</button></form>\
         <form method=post action=\"/payments/sandbox/{r}/fail\"><button id=fail>Decline</button></form></body></html>",
        p.amount,
        escape(&p.currency),
        p.status
    );
    Ok(Html(html).into_response())
}

#[derive(Serialize)]
struct Settled {
    reference: String,
    /// The status Surge's webhook endpoint answered; null when skipped.
    webhook_status: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleQuery {
    /// `skip` simulates a webhook lost on the way.
    webhook: Option<String>,
}

/// A sandbox page link names a payment and carries its key; anything
/// else (a stranger guessing an order id, sandbox disabled) is 404.
fn sandbox_link(s: &AppState, reference: &str, key: &str) -> Result<(), AppError> {
    if uuid::Uuid::try_parse(reference).is_err()
        || s.services.providers.get("sandbox").is_none()
        || !s.services.sandbox.check_page_key(reference, key)
    {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such payment",
        ));
    }
    Ok(())
}

async fn settle(
    s: &AppState,
    (reference, key): (String, String),
    paid: bool,
    q: SettleQuery,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let reference = reference.as_str();
    sandbox_link(s, reference, &key)?;
    let deliver = match q.webhook.as_deref() {
        None | Some("send") => true,
        Some("skip") => false,
        Some(_) => {
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "webhook must be send or skip",
            ))
        }
    };
    let status = s
        .services
        .sandbox
        .settle(reference, paid, deliver)
        .await
        .map_err(|e| AppError::from(crate::service::ServiceError::from(e)))?;
    // A person paying in a browser goes back to the order's page (the
    // payment's reference is the order id); API clients get the outcome.
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser {
        return Ok(axum::response::Redirect::to(&format!("/#/orders/{reference}")).into_response());
    }
    Ok(Json(Settled {
        reference: reference.to_owned(),
        webhook_status: status.map(|s| s.as_u16()),
    })
    .into_response())
}

/// The payer pays on the sandbox page; the gateway then sends the webhook.
pub async fn sandbox_pay(
    State(s): State<AppState>,
    Path(link): Path<(String, String)>,
    Query(q): Query<SettleQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    settle(&s, link, true, q, &headers).await
}

/// The payer declines on the sandbox page.
pub async fn sandbox_fail(
    State(s): State<AppState>,
    Path(link): Path<(String, String)>,
    Query(q): Query<SettleQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    settle(&s, link, false, q, &headers).await
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    /// Newest first (the newest 200 are kept).
    pub items: Vec<crate::domain::notification::Notification>,
    pub unread: usize,
}

/// Your notifications (they also arrive live on `user:{id}`).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = NotificationList)))]
pub async fn list_notifications(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<NotificationList>, AppError> {
    let (items, unread) = s.services.notifications(&auth.0.id).await?;
    Ok(Json(NotificationList { items, unread }))
}

#[utoipa::path(put, path = "/api/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn read_notification(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services.mark_notification_read(&auth.0.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark every notification read.
#[utoipa::path(post, path = "/api/v1/notifications/mark-all-read", tag = "notifications", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn mark_all_read(State(s): State<AppState>, auth: Auth) -> Result<StatusCode, AppError> {
    s.services.mark_all_read(&auth.0.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: usize,
}

/// How many of your notifications are unread.
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadCount)))]
pub async fn unread_count(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<UnreadCount>, AppError> {
    let (_, unread) = s.services.notifications(&auth.0.id).await?;
    Ok(Json(UnreadCount { unread }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    pub title: String,
    pub body: String,
    /// Only users with this role; everyone when absent.
    pub role: Option<Role>,
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastOutcome {
    pub recipients: usize,
}

/// An announcement to every user (or every user with a role), in-app and
/// by mail to those who want announcements (admins).
#[utoipa::path(post, path = "/api/v1/notifications/broadcast", tag = "notifications", security(("bearer" = [])),
    request_body = BroadcastRequest, responses((status = 200, body = BroadcastOutcome), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn broadcast(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<BroadcastRequest>,
) -> Result<Json<BroadcastOutcome>, AppError> {
    let recipients = s
        .services
        .broadcast(&auth.0.caller(), &r.title, &r.body, r.role)
        .await?;
    Ok(Json(BroadcastOutcome { recipients }))
}
