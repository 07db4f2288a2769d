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

use crate::domain::order::{Payment, PaymentSession, PaymentStatus};
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
    /// Closing a payment that was paid meanwhile.
    #[error("the payment was paid")]
    AlreadyPaid,
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
    /// Refunds `amount` of a paid payment (all of it, or one order's share
    /// of a checkout's payment); answers the refund's reference. `key`
    /// (the order id) makes a repeated refund a no-op.
    async fn refund(
        &self,
        reference: &str,
        amount: u64,
        key: &str,
    ) -> Result<String, ProviderError>;
    /// Closes an unpaid payment so that it can no longer be paid (a link
    /// replaced by a new attempt, a checkout past its deadline): `Ok` when
    /// it is closed or was already, `AlreadyPaid` when it was paid.
    async fn cancel(&self, reference: &str) -> Result<(), ProviderError>;
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
    async fn refund(&self, _r: &str, _amount: u64, _key: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Unsupported("cod"))
    }
    async fn cancel(&self, _reference: &str) -> Result<(), ProviderError> {
        Ok(())
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

/// What starts a checkout payment's id.
pub const SESSION_PREFIX: &str = "pay_";

/// The id of the checkout payment whose first order is `order_id`.
pub fn session_for(order_id: &str) -> String {
    format!("{SESSION_PREFIX}{order_id}")
}

/// The provider's reference of attempt `attempt` of checkout payment
/// `session`: the session id itself at first, then `{session}.{attempt}`
/// (a provider takes each reference once).
pub fn attempt_reference(session: &str, attempt: u32) -> String {
    match attempt {
        0 => session.to_owned(),
        n => format!("{session}.{n}"),
    }
}

/// The checkout payment an attempt's reference belongs to (the inverse of
/// `attempt_reference`).
pub fn session_of(reference: &str) -> &str {
    match reference.rsplit_once('.') {
        Some((session, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => session,
        _ => reference,
    }
}

/// Opens the payment of a checkout's orders (`shares`: each order's id
/// and total, in minor units of `currency`) with `provider`. Online, that
/// is one payment of the sum, attempt 0 of session `session_id`, which
/// every order names with its own share; cash on delivery is due per
/// order. Answers each order's payment record (in `shares`' order) and,
/// online, the deadline to pay by.
pub async fn open_checkout(
    payment_timeout: chrono::Duration,
    provider: &dyn Provider,
    session_id: &str,
    shares: &[(crate::domain::ids::OrderId, u64)],
    currency: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<Payment>, Option<chrono::DateTime<chrono::Utc>>), ProviderError> {
    let record = |id: &str, amount: u64, opened: OpenedPayment, reference: &str| Payment {
        id: id.to_owned(),
        provider: provider.method(),
        status: if provider.online() {
            PaymentStatus::Pending
        } else {
            PaymentStatus::DueOnDelivery
        },
        amount,
        currency: currency.to_owned(),
        checkout_url: opened.checkout_url,
        reference: opened.reference.unwrap_or_else(|| reference.to_owned()),
        paid_at: None,
        refund_reference: None,
        session: None,
    };
    if !provider.online() {
        let mut payments = Vec::new();
        for (order_id, amount) in shares {
            let price = Money::new(*amount, currency.to_owned());
            let new = NewPayment {
                reference: order_id.to_string(),
                price,
            };
            let opened = provider.open(&new).await?;
            payments.push(record(order_id, *amount, opened, order_id));
        }
        return Ok((payments, None));
    }
    let total = shares.iter().map(|(_, a)| a).sum();
    let reference = attempt_reference(session_id, 0);
    let new = NewPayment {
        reference: reference.clone(),
        price: Money::new(total, currency.to_owned()),
    };
    let opened = provider.open(&new).await?;
    let session = PaymentSession {
        id: session_id.to_owned(),
        total,
        orders: shares.iter().map(|(id, _)| id.clone()).collect(),
        attempt: 0,
    };
    let payments = shares
        .iter()
        .map(|(order_id, amount)| Payment {
            session: Some(session.clone()),
            ..record(order_id, *amount, opened.clone(), &reference)
        })
        .collect();
    Ok((payments, Some(now + payment_timeout)))
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
