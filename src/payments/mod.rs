//! Payment providers behind one trait: `cod` (cash on delivery), `sandbox`
//! (a gateway simulated by Surge, with a hosted payment page and
//! Stripe-style signed webhooks sent over HTTP like a real gateway's), and
//! `payos` (the PayOS API).
//! `signature` holds the webhook signature schemes (Stripe-style, PayOS).

pub mod payos;
pub mod sandbox;
pub mod signature;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::order::{Payment, PaymentStatus};
use crate::domain::payment::{Money, PaymentMethod};
use async_trait::async_trait;

pub use signature::SignatureError;

/// A payment to open for an order.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// The order id; also the payment's id and its reference at the provider.
    pub reference: String,
    pub price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPayment {
    pub checkout_url: Option<String>,
    /// The provider's own id for the payment, when it is not the order id.
    pub reference: Option<String>,
}

/// A verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event_id: String,
    pub reference: String,
    pub amount: u64,
    pub paid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    Pending,
    Paid { amount: u64 },
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("webhook signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("webhook payload: {0}")]
    Payload(String),
    #[error("{0} does not support this")]
    Unsupported(&'static str),
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The payment method this provider takes.
    fn method(&self) -> PaymentMethod;
    fn name(&self) -> &'static str {
        self.method().as_str()
    }
    /// Whether money moves online before the order is confirmed.
    fn online(&self) -> bool;
    async fn open(&self, payment: &NewPayment) -> Result<OpenedPayment, ProviderError>;
    /// Verifies a webhook (signature, freshness) and parses it.
    fn verify_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, ProviderError>;
    async fn status(&self, reference: &str) -> Result<RemoteStatus, ProviderError>;
    /// Refunds a paid payment; answers the refund's reference.
    async fn refund(&self, reference: &str, amount: u64) -> Result<String, ProviderError>;
}

/// Cash on delivery: nothing online; the cash is collected on delivery.
pub struct Cod;

#[async_trait]
impl Provider for Cod {
    fn method(&self) -> PaymentMethod {
        PaymentMethod::Cod
    }
    fn online(&self) -> bool {
        false
    }
    async fn open(&self, _payment: &NewPayment) -> Result<OpenedPayment, ProviderError> {
        Ok(OpenedPayment {
            checkout_url: None,
            reference: None,
        })
    }
    fn verify_webhook(
        &self,
        _h: &WebhookHeaders,
        _b: &[u8],
        _now: i64,
    ) -> Result<WebhookEvent, ProviderError> {
        Err(ProviderError::Unsupported("cod"))
    }
    async fn status(&self, _reference: &str) -> Result<RemoteStatus, ProviderError> {
        Ok(RemoteStatus::Pending)
    }
    async fn refund(&self, _reference: &str, _amount: u64) -> Result<String, ProviderError> {
        Err(ProviderError::Unsupported("cod"))
    }
}

/// The headers of an inbound webhook as plain data (names lower-case):
/// providers and services know nothing of the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct WebhookHeaders(Vec<(String, String)>);

impl WebhookHeaders {
    /// The first value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for WebhookHeaders {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        WebhookHeaders(
            iter.into_iter()
                .map(|(k, v)| (k.into().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }
}

/// Opens the payment of a new order with `provider`: the order's
/// payment record and, for online providers, its deadline.
pub async fn open_payment(
    payment_timeout: chrono::Duration,
    provider: &dyn crate::payments::Provider,
    order_id: &str,
    price: Money,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Payment, Option<chrono::DateTime<chrono::Utc>>), ProviderError> {
    let opened = provider
        .open(&NewPayment {
            reference: order_id.to_owned(),
            price: price.clone(),
        })
        .await?;
    let payment = Payment {
        id: order_id.to_owned(),
        provider: provider.method(),
        status: if provider.online() {
            PaymentStatus::Pending
        } else {
            PaymentStatus::DueOnDelivery
        },
        amount: price.amount,
        currency: price.currency,
        checkout_url: opened.checkout_url,
        reference: opened.reference.unwrap_or_else(|| order_id.to_owned()),
        paid_at: None,
        refund_reference: None,
    };
    let deadline = provider.online().then(|| now + payment_timeout);
    Ok((payment, deadline))
}

/// The configured providers by payment method.
#[derive(Clone, Default)]
pub struct Providers(BTreeMap<PaymentMethod, Arc<dyn Provider>>);

impl Providers {
    pub fn with(mut self, p: Arc<dyn Provider>) -> Self {
        self.0.insert(p.method(), p);
        self
    }

    pub fn get(&self, method: PaymentMethod) -> Option<&Arc<dyn Provider>> {
        self.0.get(&method)
    }

    /// The provider of the method called `name`, if it is configured.
    pub fn named(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.get(name.parse().ok()?)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.keys().map(|m| m.as_str()).collect()
    }
}
