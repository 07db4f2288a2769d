//! The WebSocket wire contract (see the README): JSON text frames, or
//! MessagePack binary frames for a client that negotiated `surge.msgpack`.

use serde::{Deserialize, Serialize};

use crate::domain::shipping::{Fix, Position};

/// Client → server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Watch `topic`; with `since`, first replay the events after that
    /// sequence number from the journal.
    Subscribe {
        topic: String,
        since: Option<u64>,
    },
    Unsubscribe {
        topic: String,
    },
    /// A shipper's position (shippers only).
    Location(Fix),
    Ping,
    /// A fresh access token of the same user, before the current one
    /// expires: the connection lives on until the new token's expiry (and
    /// follows the new token's session).
    Auth {
        token: String,
    },
}

impl ClientMsg {
    /// A text frame (JSON, on either codec).
    pub fn from_text(text: &str) -> Result<ClientMsg, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// A binary frame (MessagePack; only on a `surge.msgpack` connection).
    pub fn from_binary(codec: Codec, bytes: &[u8]) -> Result<ClientMsg, String> {
        match codec {
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Json => Err("binary frames need the surge.msgpack subprotocol".into()),
        }
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// An event of `topic` with its journal sequence number.
    Event {
        topic: String,
        seq: u64,
        data: serde_json::Value,
    },
    /// The subscription is live; events after `seq` will follow.
    Subscribed {
        topic: String,
        seq: u64,
    },
    Unsubscribed {
        topic: String,
    },
    /// The newest position of a shipper on `topic`. Not journaled and not
    /// replayed: a slow reader gets only the newest one per topic.
    Location {
        topic: String,
        data: Box<Position>,
    },
    Pong,
    /// The `auth` frame's token was accepted; the connection now ends at
    /// `expires_at` (Unix seconds) unless renewed again.
    AuthOk {
        expires_at: i64,
        expires_in: i64,
    },
    Error {
        code: String,
        message: String,
    },
}

impl ServerMsg {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// How frames are encoded on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Json,
    MsgPack,
}

/// The subprotocol that selects MessagePack frames.
pub const MSGPACK_PROTOCOL: &str = "surge.msgpack";
/// The subprotocol that selects JSON frames (the default).
pub const JSON_PROTOCOL: &str = "surge.json";
/// Prefix of a subprotocol that carries the access token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

/// Close codes (4000–4999 are the application's own).
pub mod close {
    /// The client did not read fast enough; reconnect with `since`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Nothing received within the idle timeout.
    pub const IDLE: u16 = 4000;
    /// The auth session ended (logout, password reset, refresh-token
    /// reuse, revoked by an admin): log in again.
    pub const SESSION_ENDED: u16 = 4001;
    /// The access token expired and no `auth` frame renewed it: refresh
    /// the token and reconnect (resume with `since`).
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// A frame exceeded the per-message size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
}
