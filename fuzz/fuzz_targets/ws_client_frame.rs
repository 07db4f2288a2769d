//! A WebSocket client frame, as text (JSON) and as binary (MessagePack on a
//! `surge.msgpack` connection, refused on a JSON one): never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::http::ws::protocol::{ClientMsg, Codec};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ClientMsg::from_text(text);
    }
    let _ = ClientMsg::from_binary(Codec::MsgPack, data);
    assert!(ClientMsg::from_binary(Codec::Json, data).is_err());
});
