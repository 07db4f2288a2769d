//! Webhook signatures, verified in constant time.
//!
//! - **Stripe-style** (used by Stripe and by Surge's sandbox gateway): a
//!   header `t=<unix seconds>,v1=<hex hmac>[,v1=…]`, where each `v1` is
//!   HMAC-SHA256 over `"{t}.{raw body}"`. The timestamp must be within the
//!   tolerance (5 minutes) of now; several `v1` (and several configured
//!   secrets) are accepted so secrets can be rotated.
//! - **PayOS**: the webhook's `signature` is HMAC-SHA256 (hex) with the
//!   checksum key over the `data` object's fields sorted alphabetically and
//!   joined as `key=value&key=value` (null → empty, nested values as JSON).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing or malformed signature header")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The Stripe-style header for `body` signed at `t` with `secret`.
pub fn stripe_sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let sig = mac(secret, &[t.to_string().as_bytes(), b".", body])
        .finalize()
        .into_bytes();
    format!("t={t},v1={}", hex::encode(sig))
}

/// Verifies a Stripe-style header against any of `secrets`.
pub fn stripe_verify(
    header: &str,
    body: &[u8],
    secrets: &[Vec<u8>],
    now: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let signed = [t.to_string().into_bytes(), b".".to_vec(), body.to_vec()].concat();
    let ok = secrets.iter().any(|secret| {
        sigs.iter()
            .any(|sig| mac(secret, &[&signed]).verify_slice(sig).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The PayOS canonical string of a `data` object.
pub fn payos_canonical(data: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = match &data[*k] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub fn payos_sign(
    checksum_key: &[u8],
    data: &serde_json::Map<String, serde_json::Value>,
) -> String {
    hex::encode(
        mac(checksum_key, &[payos_canonical(data).as_bytes()])
            .finalize()
            .into_bytes(),
    )
}

pub fn payos_verify(
    checksum_key: &[u8],
    data: &serde_json::Map<String, serde_json::Value>,
    signature: &str,
) -> Result<(), SignatureError> {
    let sig = hex::decode(signature.trim()).map_err(|_| SignatureError::Malformed)?;
    mac(checksum_key, &[payos_canonical(data).as_bytes()])
        .verify_slice(&sig)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stripe_style_accepts_fresh_signatures_from_any_current_secret() {
        let body = br#"{"id":"evt_1"}"#;
        let (old, new) = (b"whsec_old".to_vec(), b"whsec_new".to_vec());
        let now = 1_700_000_000;
        let header = stripe_sign(&new, now, body);
        assert_eq!(
            stripe_verify(&header, body, &[old.clone(), new.clone()], now + 10),
            Ok(())
        );
        // During rotation the sender signs with both; either secret verifies.
        let both = format!(
            "{},v1={}",
            stripe_sign(&old, now, body),
            header.split("v1=").nth(1).unwrap()
        );
        assert_eq!(
            stripe_verify(&both, body, std::slice::from_ref(&new), now),
            Ok(())
        );
        assert_eq!(
            stripe_verify(&both, body, std::slice::from_ref(&old), now),
            Ok(())
        );

        let cases = [
            (
                stripe_verify(&header, body, std::slice::from_ref(&old), now),
                SignatureError::Mismatch,
            ),
            (
                stripe_verify(
                    &header,
                    br#"{"id":"evt_2"}"#,
                    std::slice::from_ref(&new),
                    now,
                ),
                SignatureError::Mismatch,
            ),
            (
                stripe_verify(
                    &header,
                    body,
                    std::slice::from_ref(&new),
                    now + TOLERANCE_SECS + 1,
                ),
                SignatureError::Stale,
            ),
            (
                stripe_verify(
                    &header,
                    body,
                    std::slice::from_ref(&new),
                    now - TOLERANCE_SECS - 1,
                ),
                SignatureError::Stale,
            ),
            (
                stripe_verify("v1=abcd", body, std::slice::from_ref(&new), now),
                SignatureError::Malformed,
            ),
            (
                stripe_verify(&format!("t={now}"), body, std::slice::from_ref(&new), now),
                SignatureError::Malformed,
            ),
            (
                stripe_verify("", body, std::slice::from_ref(&new), now),
                SignatureError::Malformed,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
    }

    #[test]
    fn payos_checksum_over_sorted_fields() {
        let data = json!({"orderCode": 123, "amount": 3000, "description": "VQRIO123", "reference": "TF230204212323", "counterAccountName": null});
        let data = data.as_object().unwrap();
        assert_eq!(
            payos_canonical(data),
            "amount=3000&counterAccountName=&description=VQRIO123&orderCode=123&reference=TF230204212323"
        );
        let sig = payos_sign(b"checksum-key", data);
        assert_eq!(sig.len(), 64);
        assert_eq!(payos_verify(b"checksum-key", data, &sig), Ok(()));
        assert_eq!(
            payos_verify(b"other-key", data, &sig),
            Err(SignatureError::Mismatch)
        );
        let mut tampered = data.clone();
        tampered.insert("amount".into(), json!(1));
        assert_eq!(
            payos_verify(b"checksum-key", &tampered, &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            payos_verify(b"checksum-key", data, "zz"),
            Err(SignatureError::Malformed)
        );
    }
}
