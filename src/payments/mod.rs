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

use async_trait::async_trait;
use axum::http::HeaderMap;

pub use signature::SignatureError;

/// A payment to open for an order.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// The order id; also the payment's id and its reference at the provider.
    pub reference: String,
    pub amount: u64,
    pub currency: String,
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
    fn name(&self) -> &'static str;
    /// Whether money moves online before the order is confirmed.
    fn online(&self) -> bool;
    async fn open(&self, payment: &NewPayment) -> Result<OpenedPayment, ProviderError>;
    /// Verifies a webhook (signature, freshness) and parses it.
    fn verify_webhook(
        &self,
        headers: &HeaderMap,
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
    fn name(&self) -> &'static str {
        "cod"
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
        _h: &HeaderMap,
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

/// The configured providers by name.
#[derive(Clone, Default)]
pub struct Providers(BTreeMap<&'static str, Arc<dyn Provider>>);

impl Providers {
    pub fn with(mut self, p: Arc<dyn Provider>) -> Self {
        self.0.insert(p.name(), p);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }
}
