//! A list cursor from a query string: decoded or refused, never a panic; a
//! cursor this server issues decodes back to what it encoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::service::products::catalog::{decode_cursor, encode_cursor};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_cursor(text);
        assert_eq!(decode_cursor(&encode_cursor(text)).unwrap(), text);
    }
});
