//! Payments: opening an order's payment with its provider, and the
//! providers' signed webhooks (verified, deduplicated, applied).

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ServiceError, Services};
use crate::actors::order::{PaymentReport, PAYMENT_REFS};
use crate::domain::order::{next_action, OrderStatus, Payment, PaymentStatus};
use crate::domain::DomainError;
use crate::payments::{NewPayment, ProviderError};

/// What a webhook did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// `processed`; `duplicate` for an event already handled; `ignored` for
    /// a correctly signed event about no known payment (e.g. a provider's
    /// test event).
    pub status: &'static str,
    pub order_id: Option<String>,
    pub order_status: Option<OrderStatus>,
}

impl Services {
    /// Opens the payment of a new order with `provider`: the order's
    /// payment record and, for online providers, its deadline.
    pub(crate) async fn open_payment(
        &self,
        provider: &dyn crate::payments::Provider,
        order_id: &str,
        amount: u64,
        currency: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<(Payment, Option<chrono::DateTime<Utc>>), ServiceError> {
        let opened = provider
            .open(&NewPayment {
                reference: order_id.to_owned(),
                amount,
                currency: currency.to_owned(),
            })
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let payment = Payment {
            id: order_id.to_owned(),
            provider: provider.name().to_owned(),
            status: if provider.online() {
                PaymentStatus::Pending
            } else {
                PaymentStatus::DueOnDelivery
            },
            amount,
            currency: currency.to_owned(),
            checkout_url: opened.checkout_url,
            reference: opened.reference.unwrap_or_else(|| order_id.to_owned()),
            paid_at: None,
            refund_reference: None,
        };
        let deadline = provider
            .online()
            .then(|| now + self.commerce.payment_timeout);
        Ok((payment, deadline))
    }

    /// A provider's webhook: verified, deduplicated, applied to its order.
    pub async fn payment_webhook(
        &self,
        provider: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, ServiceError> {
        // Only providers that take payments online send webhooks.
        let provider = self
            .providers
            .get(provider)
            .filter(|p| p.online())
            .ok_or(DomainError::NotFound("payment provider"))?;
        let event = provider
            .verify_webhook(headers, body, Utc::now().timestamp())
            .map_err(|e| match e {
                ProviderError::Signature(s) => ServiceError::Domain(DomainError::Unauthorized(
                    format!("webhook rejected: {s}"),
                )),
                ProviderError::Payload(m) => ServiceError::Domain(DomainError::invalid("body", m)),
                other => ServiceError::Unavailable(other.to_string()),
            })?;
        let ref_key = format!("{}|{}", provider.name(), event.reference);
        let Some(order_id) = self
            .store
            .get(PAYMENT_REFS, &ref_key)
            .await?
            .and_then(|v| String::from_utf8(v).ok())
        else {
            tracing::info!(provider = provider.name(), reference = %event.reference, "webhook for an unknown payment ignored");
            return Ok(WebhookOutcome {
                status: "ignored",
                order_id: None,
                order_status: None,
            });
        };
        let report = PaymentReport {
            event_id: Some(event.event_id),
            amount: event.amount,
            paid: event.paid,
        };
        let applied = self.orders.report_payment(&order_id, report).await?;
        let (status, order) = match applied.duplicate {
            true => ("duplicate", applied.order),
            false => ("processed", applied.order),
        };
        if next_action(&order).is_some_and(|(due, _)| due <= Utc::now()) {
            let _ = self.advance_order(&order.id).await;
        }
        Ok(WebhookOutcome {
            status,
            order_id: Some(order.id.clone()),
            order_status: Some(order.status),
        })
    }
}
