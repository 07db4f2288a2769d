//! Payments: the providers' signed webhooks (verified, deduplicated,
//! applied). Opening a payment is `payments::open_payment`.

use crate::actors::order::OrderEntity;
use crate::actors::Registry;
use crate::service::commerce::fulfilment::Fulfilment;
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::actors::order::{PaymentReport, PAYMENT_REFS};
use crate::domain::order::{next_action, OrderStatus};
use crate::domain::DomainError;
use crate::payments::ProviderError;
use crate::service::ServiceError;

/// What a webhook did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// `processed`; `duplicate` for an event already handled; `ignored` for
    /// a correctly signed event about no known payment (e.g. a provider's
    /// test event).
    pub status: &'static str,
    /// The order the payment's reference names, and its status now.
    pub order_id: Option<crate::domain::ids::OrderId>,
    pub order_status: Option<OrderStatus>,
    /// Every order the payment was for (a checkout's payment is each of
    /// its orders').
    pub order_ids: Vec<crate::domain::ids::OrderId>,
}

/// What payment providers report (webhooks).
pub struct Payments {
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) providers: crate::payments::Providers,
    pub(in crate::service) store: Arc<dyn crate::store::Store>,
    pub(in crate::service) fulfilment: Arc<Fulfilment>,
}

impl Payments {
    /// A provider's webhook: verified, deduplicated, applied to its order.
    pub async fn payment_webhook(
        &self,
        provider: &str,
        headers: &crate::payments::WebhookHeaders,
        body: &[u8],
    ) -> Result<WebhookOutcome, ServiceError> {
        // Only providers that take payments online send webhooks.
        let provider = self
            .providers
            .named(provider)
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
                order_ids: Vec::new(),
            });
        };
        // A checkout's payment is every one of its orders': each takes its
        // share, or none does when the amount is not the checkout's total.
        let named = self.orders.get(&order_id).await?;
        let orders = self.orders.checkout_orders(named).await?;
        let mut shares = Vec::new();
        for o in &orders {
            let share = match event.paid {
                true => o.payment.share_of(event.amount).ok_or_else(|| {
                    DomainError::conflict(
                        "amount_mismatch",
                        format!(
                            "paid {} but the checkout's total is {}",
                            event.amount,
                            o.payment.session.as_ref().map_or(0, |s| s.total)
                        ),
                    )
                })?,
                false => event.amount,
            };
            shares.push((o.id.clone(), share));
        }
        let mut applied = Vec::new();
        for (id, amount) in shares {
            let report = PaymentReport {
                event_id: Some(event.event_id.clone()),
                amount,
                paid: event.paid,
            };
            applied.push(self.orders.report_payment(&id, report).await?);
        }
        for a in &applied {
            if next_action(&a.order).is_some_and(|(due, _)| due <= Utc::now()) {
                let _ = self.fulfilment.advance_order(&a.order.id).await;
            }
        }
        // The order the reference names answers for the payment.
        let first = applied
            .iter()
            .find(|a| a.order.id == order_id)
            .unwrap_or(&applied[0]);
        let status = match applied.iter().all(|a| a.duplicate) {
            true => "duplicate",
            false => "processed",
        };
        Ok(WebhookOutcome {
            status,
            order_id: Some(first.order.id.clone()),
            order_status: Some(first.order.status),
            order_ids: applied.iter().map(|a| a.order.id.clone()).collect(),
        })
    }
}
