//! Payment handlers (`service::commerce::payments`): provider webhooks, payment
//! reads, and the sandbox gateway's hosted page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, PageQuery, Path, Query};
use super::state::AppState;
use crate::domain::order::Payment;
use crate::service::commerce::payments::WebhookOutcome;
use crate::service::products::catalog::check_limit;

/// Largest webhook body read (providers send a few hundred bytes).
const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

#[derive(Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<Payment>,
    pub next_cursor: Option<String>,
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
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    Ok(Json(
        s.services
            .payments
            .payment_webhook(&provider, &headers.collect(), &body)
            .await?,
    ))
}

/// A payment (the id is its order's id).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody)))]
pub async fn get_payment(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Payment>, AppError> {
    Ok(Json(
        s.services
            .orders
            .get_order(&auth.0.caller(), &id)
            .await?
            .payment,
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
        .orders
        .my_orders(
            &auth.0.id,
            Default::default(),
            q.cursor.as_deref(),
            check_limit(q.limit)?,
        )
        .await?;
    Ok(Json(PaymentPage {
        items: page.items.into_iter().map(|o| o.payment).collect(),
        next_cursor: page.next_cursor,
    }))
}

pub(super) fn escape(s: &str) -> String {
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
         <h1>Surge sandbox gateway</h1><p>Payment <code>{r}</code>: <strong>{} {}</strong> ({:?}; refunded <span id=refunded>{}</span>)</p>\
         <form method=post action=\"/payments/sandbox/{r}/pay\"><button id=pay>Pay</button></form>\
         <form method=post action=\"/payments/sandbox/{r}/fail\"><button id=fail>Decline</button></form></body></html>",
        p.amount,
        escape(&p.currency),
        p.status,
        p.refunded
    );
    Ok(Html(html).into_response())
}

#[derive(Serialize)]
pub(super) struct Settled {
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
/// else (a stranger guessing an order id, sandbox disabled) is 404. A
/// payment's reference is a checkout's (`pay_{order id}`, `.{attempt}`
/// after the first), or an order id for orders placed before checkouts
/// were paid once.
pub(super) fn sandbox_link(s: &AppState, reference: &str, key: &str) -> Result<(), AppError> {
    let session = crate::payments::session_of(reference);
    let id = session
        .strip_prefix(crate::payments::SESSION_PREFIX)
        .unwrap_or(session);
    if uuid::Uuid::try_parse(id).is_err()
        || s.services
            .providers
            .get(crate::domain::payment::PaymentMethod::Sandbox)
            .is_none()
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

pub(super) async fn settle(
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
    // A person paying in a browser goes back to the storefront's page of
    // the checkout (of its orders); API clients get the outcome.
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser {
        let back = match reference.starts_with(crate::payments::SESSION_PREFIX) {
            true => format!("/#/checkouts/{}", crate::payments::session_of(reference)),
            false => format!("/#/orders/{reference}"),
        };
        return Ok(axum::response::Redirect::to(&back).into_response());
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
