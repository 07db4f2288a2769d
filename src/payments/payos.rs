//! PayOS (payos.vn), as its API documents it:
//! - open: `POST {base}/v2/payment-requests` with `x-client-id` / `x-api-key`
//!   and a `signature` = HMAC-SHA256(checksum key) over
//!   `amount=…&cancelUrl=…&description=…&orderCode=…&returnUrl=…`; the
//!   answer's `data` is signed the same way and verified;
//! - webhook: `{code, desc, success, data: {orderCode, amount, reference,
//!   paymentLinkId, code, …}, signature}`, the signature over `data`'s fields
//!   sorted alphabetically;
//! - status: `GET {base}/v2/payment-requests/{orderCode}` (`PAID`, `PENDING`,
//!   `CANCELLED`, `EXPIRED`…).
//!
//! PayOS has no refund API: a PayOS payment that must be refunded is marked
//! `refund_due` for the merchant to refund by bank transfer.
//!
//! PayOS identifies a payment by an integer `orderCode`; Surge derives it
//! from the order id (53 bits of its SHA-256), so a retried checkout asks
//! for the same code.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::signature::{payos_sign, payos_verify};
use super::{NewPayment, OpenedPayment, Provider, ProviderError, RemoteStatus, WebhookEvent};

#[derive(Debug, Clone)]
pub struct PayOsConfig {
    pub client_id: String,
    pub api_key: String,
    pub checksum_key: String,
    /// `https://api-merchant.payos.vn` in production.
    pub base_url: String,
    /// Where PayOS sends the payer back after paying / cancelling.
    pub return_url: String,
    pub cancel_url: String,
}

pub struct PayOs {
    cfg: PayOsConfig,
    http: reqwest::Client,
}

/// PayOS's integer order code for a Surge order id.
pub fn order_code(order_id: &str) -> i64 {
    let digest = Sha256::digest(order_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: exact in JavaScript numbers, as PayOS requires; never 0.
    ((u64::from_be_bytes(first) >> 11) as i64).max(1)
}

#[derive(Deserialize)]
struct Envelope {
    code: String,
    desc: String,
    data: Option<Value>,
    signature: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("payos: {e}"))
}

impl PayOs {
    pub fn new(cfg: PayOsConfig) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(unavailable)?;
        Ok(PayOs { cfg, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    /// Sends a request and returns `data`, checking `code` and (when
    /// present) the signature over `data`.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Map<String, Value>, ProviderError> {
        let resp = req
            .header("x-client-id", &self.cfg.client_id)
            .header("x-api-key", &self.cfg.api_key)
            .send()
            .await
            .map_err(unavailable)?;
        let env: Envelope = resp.json().await.map_err(unavailable)?;
        if env.code != "00" {
            return Err(unavailable(format!("{} {}", env.code, env.desc)));
        }
        let data = match env.data {
            Some(Value::Object(m)) => m,
            _ => return Err(unavailable("answer without data")),
        };
        if let Some(sig) = env.signature {
            payos_verify(self.cfg.checksum_key.as_bytes(), &data, &sig)
                .map_err(|e| unavailable(format!("answer signature: {e}")))?;
        }
        Ok(data)
    }
}

#[async_trait]
impl Provider for PayOs {
    fn method(&self) -> crate::domain::payment::PaymentMethod {
        crate::domain::payment::PaymentMethod::PayOs
    }

    fn online(&self) -> bool {
        true
    }

    async fn open(&self, p: &NewPayment) -> Result<OpenedPayment, ProviderError> {
        let code = order_code(&p.reference);
        // PayOS limits descriptions to 25 characters for most banks.
        let description = format!("SURGE {code}").chars().take(25).collect::<String>();
        let mut signed = Map::new();
        signed.insert("amount".into(), json!(p.price.amount));
        signed.insert("cancelUrl".into(), json!(self.cfg.cancel_url));
        signed.insert("description".into(), json!(description));
        signed.insert("orderCode".into(), json!(code));
        signed.insert("returnUrl".into(), json!(self.cfg.return_url));
        let signature = payos_sign(self.cfg.checksum_key.as_bytes(), &signed);
        let mut body = signed;
        body.insert("signature".into(), json!(signature));
        let data = self
            .call(self.http.post(self.url("/v2/payment-requests")).json(&body))
            .await?;
        let checkout_url = data
            .get("checkoutUrl")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(OpenedPayment {
            checkout_url,
            reference: Some(code.to_string()),
        })
    }

    fn verify_webhook(
        &self,
        _headers: &super::WebhookHeaders,
        body: &[u8],
        _now: i64,
    ) -> Result<WebhookEvent, ProviderError> {
        let env: Envelope =
            serde_json::from_slice(body).map_err(|e| ProviderError::Payload(e.to_string()))?;
        let Some(Value::Object(data)) = env.data else {
            return Err(ProviderError::Payload("webhook without data".into()));
        };
        let sig = env
            .signature
            .ok_or(ProviderError::Signature(super::SignatureError::Malformed))?;
        payos_verify(self.cfg.checksum_key.as_bytes(), &data, &sig)?;
        let field = |k: &str| data.get(k).cloned().unwrap_or(Value::Null);
        let order_code = field("orderCode")
            .as_i64()
            .ok_or_else(|| ProviderError::Payload("orderCode missing".into()))?;
        let amount = field("amount")
            .as_u64()
            .ok_or_else(|| ProviderError::Payload("amount missing".into()))?;
        let tx = field("reference").as_str().unwrap_or_default().to_owned();
        let link = field("paymentLinkId")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(WebhookEvent {
            event_id: format!("payos:{link}:{tx}"),
            reference: order_code.to_string(),
            amount,
            paid: env.code == "00" && field("code").as_str() == Some("00"),
        })
    }

    async fn status(&self, reference: &str) -> Result<RemoteStatus, ProviderError> {
        let data = self
            .call(
                self.http
                    .get(self.url(&format!("/v2/payment-requests/{reference}"))),
            )
            .await?;
        let amount = data
            .get("amountPaid")
            .or_else(|| data.get("amount"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(match data.get("status").and_then(Value::as_str) {
            Some("PAID") => RemoteStatus::Paid { amount },
            Some("CANCELLED" | "EXPIRED" | "FAILED") => RemoteStatus::Failed,
            _ => RemoteStatus::Pending,
        })
    }

    async fn refund(&self, _r: &str, _amount: u64, _key: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Unsupported("payos"))
    }

    /// `POST /v2/payment-requests/{id}/cancel`; refused by PayOS once the
    /// link is paid, which the status then tells.
    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        let url = self.url(&format!("/v2/payment-requests/{reference}/cancel"));
        let body = json!({"cancellationReason": "replaced or past the checkout's deadline"});
        match self.call(self.http.post(url).json(&body)).await {
            Ok(_) => Ok(()),
            Err(refused) => match self.status(reference).await? {
                RemoteStatus::Failed => Ok(()),
                RemoteStatus::Paid { .. } => Err(ProviderError::AlreadyPaid),
                RemoteStatus::Pending => Err(refused),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_codes_are_stable_positive_and_53_bits() {
        let a = order_code("01a1fe0e-122c-701b-8257-520dd109e9c9");
        assert_eq!(a, order_code("01a1fe0e-122c-701b-8257-520dd109e9c9"));
        assert_ne!(a, order_code("01a1fe0e-122c-701b-8257-520dd109e9ca"));
        assert!(a > 0 && a < (1i64 << 53));
    }
}
