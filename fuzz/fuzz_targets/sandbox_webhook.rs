//! A sandbox gateway webhook: the signature header and the body are bytes
//! from outside. Half the inputs are correctly signed, so the body parser
//! behind the signature check is reached too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::payments::sandbox::{verify_webhook, SIGNATURE_HEADER};
use surge::payments::signature::stripe_sign;
use surge::payments::WebhookHeaders;

const SECRET: &[u8] = b"fuzzing-secret";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (headers, body): (WebhookHeaders, _) = if mode % 2 == 0 {
        let signed = [(SIGNATURE_HEADER, stripe_sign(SECRET, NOW, rest))];
        (signed.into_iter().collect(), rest)
    } else {
        // The header is fuzzed too: up to the first newline (what the HTTP
        // layer passes on is text).
        let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let value = std::str::from_utf8(&rest[..split]).ok().map(str::to_owned);
        let headers = value.map(|v| (SIGNATURE_HEADER, v)).into_iter().collect();
        (headers, &rest[split.min(rest.len())..])
    };
    let _ = verify_webhook(SECRET, &headers, body, NOW);
});
