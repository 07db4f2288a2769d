//! `surge cql-emulator`: an in-memory CQL server for development and tests
//! of the ScyllaDB backend, built on kassandra (the server side of the CQL
//! v4 protocol, with an in-memory engine).
//!
//! It is not ScyllaDB: data lives in memory only, restrictions other than
//! `=` are not understood, and there are no lightweight transactions. Run
//! Surge against it with `scylla_emulator = true` and `scylla_lwt = false`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use kassandra::error::DbError;
use kassandra::frame::request::Request;
use kassandra::frame::response::{error::Error, Response};
use kassandra::frame::{request_stream, response_sink};
use kassandra::KassandraSession;
use tokio::net::{TcpListener, TcpStream};

/// A running emulator.
pub struct Emulator {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Binds `addr` (port 0: any free port) and serves until dropped.
    pub async fn start(addr: &str) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let db = Arc::new(Mutex::new(KassandraSession::new()));
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        // Small request/response frames: without this,
                        // Nagle's algorithm holds each answer ~40 ms.
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(client(db.clone(), stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cql emulator: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(Emulator { addr, task })
    }

    /// Serves until the process ends.
    pub async fn wait(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn client(db: Arc<Mutex<KassandraSession>>, stream: TcpStream) {
    let (read, write) = stream.into_split();
    let mut requests = request_stream(read);
    let mut responses = response_sink(write);
    while let Some(frame) = requests.next().await {
        let Ok((frame, opcode, data)) = frame else {
            break;
        };
        let response = match Request::deserialize(opcode, &data, frame.flags) {
            Ok(request) => answer(&db, request),
            Err(_) => Response::Error(Error::new(DbError::ProtocolError, "cannot parse request")),
        };
        if responses.send((response, frame.stream)).await.is_err() {
            break;
        }
    }
}

fn answer(db: &Mutex<KassandraSession>, request: Request<'_>) -> Response {
    let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
        Request::Options => return Response::options(),
        Request::Query(q) => db.process(q),
        Request::Prepare(p) => db.prepare(p),
        Request::Execute(e) => db.execute(e),
        Request::Batch(b) => db.process_batch(b),
        Request::AuthResponse => {
            return Response::Error(Error::new(
                DbError::ProtocolError,
                "the emulator has no authentication",
            ))
        }
    };
    match result {
        Ok(r) => Response::Result(r),
        Err(e) => Response::Error(e),
    }
}
