//! WebSocket clients of the scenarios: connected from a chosen loopback
//! source address (so many connections do not exhaust one address's
//! ephemeral ports), optionally with a bearer token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// The `i`th of `n` loopback source addresses: 127.0.0.1 … 127.0.0.n.
pub fn source(i: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % n.max(1)) as u8))
}

/// Opens a WebSocket to `server` at `path` from `from`.
pub async fn connect(
    server: SocketAddr,
    from: IpAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connect {server} from {from}"))?;
    stream.set_nodelay(true)?;
    let mut req = format!("ws://{server}{path}").into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .with_context(|| format!("handshake {path}"))?;
    Ok(ws)
}

/// The `ts` field of a `location` frame, found without parsing the rest.
pub fn location_ts(text: &str) -> Option<i64> {
    if !text.contains(r#""type":"location""#) {
        return None;
    }
    let at = text.find(r#""ts":"#)? + 5;
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_timestamp_of_location_frames_only() {
        assert_eq!(
            location_ts(
                r#"{"type":"location","topic":"order:1","data":{"lat":1.0,"ts":1795270301000,"eta_s":3}}"#
            ),
            Some(1_795_270_301_000)
        );
        assert_eq!(location_ts(r#"{"type":"event","data":{"ts":5}}"#), None);
        assert_eq!(location_ts(r#"{"type":"location","data":{}}"#), None);
    }
}
