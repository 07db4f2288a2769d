//! A checkout's one online payment: what it is (`GET /checkouts/{id}`) and
//! paying it again after a decline or an abandoned page
//! (`POST /checkouts/{id}/pay`) until the checkout's deadline.
//!
//! The session is not an entity of its own: each order of the checkout
//! records it (`Payment::session`: id, total, the orders, the attempt), and
//! `PAYMENT_REFS` maps `checkout|{id}` to one of them. A new attempt closes
//! the one before at the provider first, so two links are never payable at
//! once, then opens `{id}.{attempt}` for the same total and records it on
//! every order (idempotent by attempt).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::order::{payment_closed, session_key, OrderCommand, PAYMENT_REFS};
use crate::domain::ids::OrderId;
use crate::domain::order::{Order, OrderStatus, PaymentStatus};
use crate::domain::payment::{Money, PaymentMethod};
use crate::domain::{Caller, DomainError};
use crate::payments::{attempt_reference, NewPayment, ProviderError};
use crate::service::commerce::checkout::Checkouts;
use crate::service::ServiceError;

/// At most this many payment links per checkout (the first included).
pub const MAX_ATTEMPTS: u32 = 10;

/// A checkout's one online payment, for all of its orders.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckoutPayment {
    /// `POST /checkouts/{id}/pay` asks a new link for it.
    pub id: String,
    /// `pending` (pay at `checkout_url`), `declined` (pay again), `paid`,
    /// `voided` (the deadline passed: the orders were cancelled), or
    /// `refunded` / `refund_due` once an order's share went back.
    pub status: PaymentStatus,
    pub provider: PaymentMethod,
    /// The checkout's total, in minor units: the sum of its orders' totals.
    pub amount: u64,
    pub currency: String,
    /// The hosted payment page of the current attempt.
    pub checkout_url: Option<String>,
    /// 0 for the first link, one more for each asked again.
    pub attempt: u32,
    /// Links left to ask (`MAX_ATTEMPTS` in all).
    pub attempts_left: u32,
    /// Pay by then; after it the orders are cancelled and what they held
    /// (stock, coupon uses) goes back.
    pub deadline: Option<DateTime<Utc>>,
    /// The checkout's orders, one per shop, each paid its own total.
    pub orders: Vec<OrderId>,
}

impl CheckoutPayment {
    /// The session of `orders` (one checkout's), from the first that
    /// records one; `None` for cash on delivery.
    pub fn of(orders: &[Order]) -> Option<Self> {
        let o = orders.iter().find(|o| o.payment.session.is_some())?;
        let session = o.payment.session.as_ref()?;
        Some(CheckoutPayment {
            id: session.id.clone(),
            status: o.payment.status,
            provider: o.payment.provider,
            amount: session.total,
            currency: o.payment.currency.clone(),
            checkout_url: o.payment.checkout_url.clone(),
            attempt: session.attempt,
            attempts_left: MAX_ATTEMPTS.saturating_sub(session.attempt + 1),
            deadline: o.payment_deadline,
            orders: session.orders.clone(),
        })
    }
}

impl Checkouts {
    /// Checkout payment `id`'s orders, for their customer (404 to anyone
    /// else, as for an unknown id).
    async fn session_orders(&self, caller: &Caller, id: &str) -> Result<Vec<Order>, ServiceError> {
        let missing = || ServiceError::Domain(DomainError::NotFound("checkout"));
        let named = self
            .store
            .get(PAYMENT_REFS, &session_key(id))
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(missing)?;
        let first = self.orders.get(&named).await?;
        let session = first.payment.session.as_ref().ok_or_else(missing)?;
        if first.customer_id != caller.user_id || session.id != id {
            return Err(missing());
        }
        let orders = self.orders.checkout_orders(first).await?;
        Ok(orders)
    }

    /// Checkout payment `id`, as its customer sees it.
    pub async fn payment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<CheckoutPayment, ServiceError> {
        let orders = self.session_orders(caller, id).await?;
        CheckoutPayment::of(&orders).ok_or(DomainError::NotFound("checkout").into())
    }

    /// A new payment link for checkout `id` (declined, abandoned, or the
    /// page lost), while every order awaits its payment and the deadline
    /// has not passed: 409 `already_paid`, `checkout_expired`,
    /// `checkout_cancelled` (its customer cancelled one of its orders) or
    /// `too_many_attempts` otherwise. The attempt before is closed at the
    /// provider first; when it turns out paid meanwhile, that payment
    /// stands (its webhook, or the provider asked at the deadline, records
    /// it) and the answer is `already_paid`.
    pub async fn pay_again(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<CheckoutPayment, ServiceError> {
        let orders = self.session_orders(caller, id).await?;
        let current = CheckoutPayment::of(&orders).ok_or(DomainError::NotFound("checkout"))?;
        let paid = |o: &&Order| {
            matches!(
                o.payment.status,
                PaymentStatus::Paid | PaymentStatus::Refunded | PaymentStatus::RefundDue
            )
        };
        if let Some(o) = orders.iter().find(paid) {
            return Err(payment_closed(o).into());
        }
        let past = current.deadline.is_some_and(|d| d <= Utc::now());
        if past || orders.iter().any(Order::expired_unpaid) {
            return Err(DomainError::conflict(
                "checkout_expired",
                "this checkout's deadline passed: its orders are cancelled and what they held released; check out again",
            )
            .into());
        }
        if let Some(o) = orders
            .iter()
            .find(|o| o.status != OrderStatus::PendingPayment)
        {
            return Err(match o.status {
                OrderStatus::Cancelled => DomainError::conflict(
                    "checkout_cancelled",
                    "an order of this checkout was cancelled; check out the rest again",
                ),
                _ => payment_closed(o),
            }
            .into());
        }
        if current.attempts_left == 0 {
            return Err(DomainError::conflict(
                "too_many_attempts",
                format!(
                    "a checkout's payment is asked at most {MAX_ATTEMPTS} times; check out again"
                ),
            )
            .into());
        }
        let provider = self
            .providers
            .get(current.provider)
            .cloned()
            .ok_or_else(|| {
                ServiceError::Unavailable(format!("{} is not configured", current.provider))
            })?;
        let unavailable = |e: ProviderError| ServiceError::Unavailable(e.to_string());
        let before = &orders[0].payment.reference;
        match provider.cancel(before).await {
            Ok(()) => {}
            Err(ProviderError::AlreadyPaid) => {
                return Err(DomainError::conflict("already_paid", "this checkout is paid").into())
            }
            Err(e) => return Err(unavailable(e)),
        }
        let attempt = current.attempt + 1;
        let reference = attempt_reference(id, attempt);
        let new = NewPayment {
            reference: reference.clone(),
            price: Money::new(current.amount, current.currency.clone()),
        };
        let opened = provider.open(&new).await.map_err(unavailable)?;
        let mut reopened = Vec::with_capacity(orders.len());
        for o in &orders {
            let reopen = OrderCommand::Reopen {
                attempt,
                reference: opened
                    .reference
                    .clone()
                    .unwrap_or_else(|| reference.clone()),
                checkout_url: opened.checkout_url.clone(),
            };
            reopened.push(self.orders.send(&o.id, reopen).await?);
        }
        CheckoutPayment::of(&reopened).ok_or(DomainError::NotFound("checkout").into())
    }
}
