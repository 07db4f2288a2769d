//! The sandbox gateway: a payment provider simulated inside Surge, for
//! development, demos and tests. It keeps its own durable record of each
//! payment (`actors::sandbox_payment`), serves a hosted payment page at
//! `{public_url}/payments/sandbox/{reference}`, and when the payer pays
//! there it POSTs a Stripe-style signed webhook (`Surge-Signature:
//! t=…,v1=…`) over HTTP to Surge's own webhook endpoint — exactly the path
//! a real gateway's webhook takes.

use std::net::SocketAddr;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::signature::{stripe_sign, stripe_verify};
use super::{NewPayment, OpenedPayment, Provider, ProviderError, RemoteStatus, WebhookEvent};
use crate::actors::sandbox_payment::{
    SandboxCommand, SandboxPayment, SandboxPaymentEntity, SandboxStatus,
};
use crate::actors::{CallError, Registry};
use crate::domain::DomainError;

pub const SIGNATURE_HEADER: &str = "surge-signature";
pub const WEBHOOK_PATH: &str = "/api/v1/payments/sandbox/webhook";

/// Verifies a sandbox webhook signed with `secret` (the signature header,
/// its freshness) and parses its body: bytes from outside, fuzzed in
/// `fuzz/`.
pub fn verify_webhook(
    secret: &[u8],
    headers: &super::WebhookHeaders,
    body: &[u8],
    now: i64,
) -> Result<WebhookEvent, ProviderError> {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .ok_or(ProviderError::Signature(super::SignatureError::Malformed))?;
    stripe_verify(sig, body, std::slice::from_ref(&secret.to_vec()), now)?;
    let parsed: WebhookBody =
        serde_json::from_slice(body).map_err(|e| ProviderError::Payload(e.to_string()))?;
    Ok(WebhookEvent {
        event_id: parsed.id,
        reference: parsed.data.reference,
        amount: parsed.data.amount,
        paid: parsed.kind == "payment.succeeded",
    })
}

pub struct Sandbox {
    payments: Registry<SandboxPaymentEntity>,
    secret: Vec<u8>,
    /// Base of the hosted page links given to customers.
    public_url: String,
    /// Where webhooks are delivered (this server's own listener).
    webhook_addr: SocketAddr,
}

#[derive(Deserialize)]
struct WebhookBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: WebhookData,
}

#[derive(Deserialize)]
struct WebhookData {
    reference: String,
    amount: u64,
}

fn unavailable(e: CallError<DomainError>) -> ProviderError {
    ProviderError::Unavailable(e.to_string())
}

impl Sandbox {
    pub fn new(
        payments: Registry<SandboxPaymentEntity>,
        secret: Vec<u8>,
        public_url: String,
        webhook_addr: SocketAddr,
    ) -> Self {
        Sandbox {
            payments,
            secret,
            public_url,
            webhook_addr,
        }
    }

    /// Stops the gateway's actors (at server shutdown).
    pub async fn shutdown(&self) {
        self.payments.shutdown().await;
    }

    /// The key in a payment page's link: only who was given the link (the
    /// order's customer, through the order's `checkout_url`) may open the
    /// page, pay or decline.
    pub fn page_key(&self, reference: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(b"page:");
        mac.update(reference.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `key` is `reference`'s page key (compared in constant time).
    pub fn check_page_key(&self, reference: &str, key: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.page_key(reference)
            .as_bytes()
            .ct_eq(key.as_bytes())
            .into()
    }

    pub async fn get(&self, reference: &str) -> Result<SandboxPayment, CallError<DomainError>> {
        self.payments.call(reference, SandboxCommand::Get).await
    }

    /// The payer paid (or gave up, `paid = false`) on the hosted page: record
    /// it, then deliver the signed webhook (unless `deliver` is false, which
    /// simulates a webhook lost on the way). Answers the webhook's status.
    pub async fn settle(
        &self,
        reference: &str,
        paid: bool,
        deliver: bool,
    ) -> Result<Option<StatusCode>, CallError<DomainError>> {
        let cmd = if paid {
            SandboxCommand::Pay
        } else {
            SandboxCommand::Fail
        };
        let payment = self.payments.call(reference, cmd).await?;
        if !deliver {
            return Ok(None);
        }
        let body = serde_json::json!({
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "type": if paid { "payment.succeeded" } else { "payment.failed" },
            "created": chrono::Utc::now().timestamp(),
            "data": {"reference": payment.reference, "amount": payment.amount, "currency": payment.currency},
        })
        .to_string();
        self.deliver(body)
            .await
            .map(Some)
            .map_err(CallError::Unavailable)
    }

    async fn deliver(&self, body: String) -> Result<StatusCode, String> {
        let signature = stripe_sign(
            &self.secret,
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        let stream = tokio::net::TcpStream::connect(self.webhook_addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::post(WEBHOOK_PATH)
            .header(header::HOST, self.webhook_addr.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp =
            tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
                .await
                .map_err(|_| "webhook delivery timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok(resp.status())
    }
}

#[async_trait]
impl Provider for Sandbox {
    fn method(&self) -> crate::domain::payment::PaymentMethod {
        crate::domain::payment::PaymentMethod::Sandbox
    }

    fn online(&self) -> bool {
        true
    }

    async fn open(&self, p: &NewPayment) -> Result<OpenedPayment, ProviderError> {
        self.payments
            .call(
                &p.reference,
                SandboxCommand::Create {
                    amount: p.price.amount,
                    currency: p.price.currency.clone(),
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(OpenedPayment {
            checkout_url: Some(format!(
                "{}/payments/sandbox/{}/{}",
                self.public_url,
                p.reference,
                self.page_key(&p.reference)
            )),
            reference: None,
        })
    }

    fn verify_webhook(
        &self,
        headers: &super::WebhookHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, ProviderError> {
        verify_webhook(&self.secret, headers, body, now)
    }

    async fn status(&self, reference: &str) -> Result<RemoteStatus, ProviderError> {
        match self.get(reference).await {
            Ok(p) => Ok(match p.status {
                SandboxStatus::Paid | SandboxStatus::Refunded => {
                    RemoteStatus::Paid { amount: p.amount }
                }
                SandboxStatus::Failed => RemoteStatus::Failed,
                SandboxStatus::Pending => RemoteStatus::Pending,
            }),
            Err(CallError::Rejected(DomainError::NotFound(_))) => Ok(RemoteStatus::Failed),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn refund(
        &self,
        reference: &str,
        amount: u64,
        key: &str,
    ) -> Result<String, ProviderError> {
        let refund = SandboxCommand::Refund {
            amount,
            key: key.to_owned(),
        };
        self.payments
            .call(reference, refund)
            .await
            .map_err(unavailable)?;
        Ok(format!("sandbox_refund_{reference}_{key}"))
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        match self.payments.call(reference, SandboxCommand::Cancel).await {
            Ok(_) | Err(CallError::Rejected(DomainError::NotFound(_))) => Ok(()),
            Err(CallError::Rejected(DomainError::Conflict { .. })) => {
                match self.get(reference).await.map_err(unavailable)?.status {
                    SandboxStatus::Failed => Ok(()),
                    _ => Err(ProviderError::AlreadyPaid),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
