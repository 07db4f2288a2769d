//! A PayOS webhook body (the checksum is inside it): refused or parsed,
//! never a panic. Half the inputs that are JSON objects with a `data`
//! object are re-signed with the right checksum, so the fields behind the
//! check are parsed too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::payments::payos::{PayOs, PayOsConfig};
use surge::payments::signature::payos_sign;
use surge::payments::Provider;

const KEY: &str = "fuzzing-checksum-key";

/// Built once: a PayOs holds an HTTP client, whose set-up dominated each
/// run when it was made per input.
fn payos() -> &'static PayOs {
    static PAYOS: std::sync::OnceLock<PayOs> = std::sync::OnceLock::new();
    PAYOS.get_or_init(|| {
        PayOs::new(PayOsConfig {
            client_id: "c".into(),
            api_key: "k".into(),
            checksum_key: KEY.into(),
            base_url: "http://127.0.0.1:9".into(),
            return_url: "http://127.0.0.1:9/".into(),
            cancel_url: "http://127.0.0.1:9/".into(),
        })
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let payos = payos();
    let mut body = rest.to_vec();
    if mode % 2 == 0 {
        if let Ok(serde_json::Value::Object(mut env)) = serde_json::from_slice(rest) {
            if let Some(serde_json::Value::Object(d)) = env.get("data").cloned() {
                env.insert("signature".into(), payos_sign(KEY.as_bytes(), &d).into());
                body = serde_json::to_vec(&env).unwrap();
            }
        }
    }
    let _ = payos.verify_webhook(&Default::default(), &body, 1_800_000_000);
});
