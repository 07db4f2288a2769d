//! The accept loop. `axum::serve` sets no header-read timeout, so this
//! drives hyper's HTTP/1 connection directly, with a deadline for every
//! phase of a connection:
//!
//! - a new connection's first byte and every request's headers once its
//!   first byte came: `header_read_timeout` (a client that connects and
//!   never sends anything is closed too);
//! - the wait for the next request on a kept-alive connection:
//!   `keep_alive_idle` (`keepalive`: hyper has one timer for both);
//! - the request body and the handler: `request_timeout` (408, set in the
//!   router with tower-http's `TimeoutLayer`), after which the connection
//!   is closed;
//! - an upgraded WebSocket: its own ping and idle timeouts (`ws::session`).
//!
//! It also bounds open connections (`max_connections`, further ones wait in
//! the kernel backlog) and connections per client address
//! (`max_connections_per_ip`, further ones are answered 429 and closed), and
//! shuts down gracefully: stop accepting, wait for in-flight requests.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use dashmap::DashMap;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::keepalive::{self, HeadDeadlines};

#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A new connection's wait for its first byte, and a request's time
    /// for its headers once their first byte came.
    pub header_read_timeout: Duration,
    /// A kept-alive connection's wait for its next request. Longer than
    /// the idle pools of the clients in front (a client that reuses a
    /// connection just as the server closes it gets a reset).
    pub keep_alive_idle: Duration,
    pub max_connections: usize,
    /// Open connections one client address may hold.
    pub max_connections_per_ip: usize,
    /// Kernel send buffer per connection (`SO_SNDBUF`); `None` keeps the
    /// kernel's auto-tuning. With it, a WebSocket client that stops
    /// reading backs up into Surge's bounded queue after this many bytes.
    pub send_buffer: Option<usize>,
    /// How long to wait for in-flight requests after shutdown begins.
    pub grace: Duration,
}

/// Open connections per client address; a slot is given back when its
/// guard drops.
#[derive(Default)]
struct PerIp {
    open: DashMap<IpAddr, usize>,
}

struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.table.open.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// What a client over its address's connection cap is told before the
/// connection is closed.
fn too_many_connections() -> Vec<u8> {
    let body = r#"{"error":{"code":"too_many_connections","message":"too many open connections from this address","id":"connection"}}"#;
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Tells a client over its per-address cap so, within a second, and lets
/// the connection go.
async fn refuse(mut stream: tokio::net::TcpStream, permit: tokio::sync::OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&too_many_connections()).await?;
        stream.shutdown().await
    })
    .await;
    drop(permit);
}

/// One accepted connection and what it holds until it ends.
struct Connection {
    deadlines: HeadDeadlines,
    stopping: tokio::sync::watch::Receiver<bool>,
    slot: IpSlot,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Connection {
    async fn serve<S>(mut self, stream: tokio::net::TcpStream, service: S)
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = axum::response::Response,
            > + Send,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // HTTP/1 only, and driven directly rather than through hyper-util's
        // auto builder: the auto builder first reads the HTTP/2 preface
        // without any deadline, so a client that sends nothing (or "PRI")
        // held its connection for ever.
        let (stream, timer) = keepalive::watch(stream, self.deadlines);
        let conn = http1::Builder::new()
            .timer(timer)
            // Arms the timer; the deadlines are the timer's.
            .header_read_timeout(self.deadlines.header)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let stopping = &mut self.stopping;
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            _ = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        drop(self.slot);
        drop(self.permit);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    // Flips when shutdown begins: every connection finishes its request in
    // flight and closes.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = per_ip.admit(peer.ip(), opts.max_connections_per_ip) else {
            tracing::debug!(%peer, "connection refused: too many from this address");
            tokio::spawn(refuse(stream, permit));
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = opts.send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
        }
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            },
        ));
        let conn = Connection {
            deadlines: HeadDeadlines {
                first: opts.header_read_timeout,
                idle: opts.keep_alive_idle,
                header: opts.header_read_timeout,
            },
            stopping: stopping.clone(),
            slot,
            permit,
        };
        tokio::spawn(conn.serve(stream, service));
    }
    drop(listener);
    stopping_tx.send_replace(true);
    // Every connection task gives its permit back when it ends.
    let all = u32::try_from(opts.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(opts.grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}
