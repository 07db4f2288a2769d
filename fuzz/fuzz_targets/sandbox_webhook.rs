//! A sandbox gateway webhook: the signature header and the body are bytes
//! from outside. Half the inputs are correctly signed, so the body parser
//! behind the signature check is reached too.
#![no_main]
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use surge::payments::sandbox::{verify_webhook, SIGNATURE_HEADER};
use surge::payments::signature::stripe_sign;

const SECRET: &[u8] = b"fuzzing-secret";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let body = if mode % 2 == 0 {
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&stripe_sign(SECRET, NOW, rest)).unwrap(),
        );
        rest
    } else {
        // The header is fuzzed too: up to the first newline.
        let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        if let Ok(v) = HeaderValue::from_bytes(&rest[..split]) {
            headers.insert(SIGNATURE_HEADER, v);
        }
        &rest[split.min(rest.len())..]
    };
    let _ = verify_webhook(SECRET, &headers, body, NOW);
});
