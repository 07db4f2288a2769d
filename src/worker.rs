//! The rhythm of Surge's background workers (the outbox, stock alerts,
//! statistics): a round whenever one is woken or its interval passes,
//! until the server shuts down.

use std::time::Duration;

use tokio::sync::{watch, Notify};

/// Waits for the next round: `true` when it is due (woken, or `every`
/// passed), `false` once `shutdown` flips.
pub async fn next_round(
    every: Duration,
    wake: Option<&Notify>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let woken = async {
        match wake {
            Some(w) => w.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = woken => true,
        _ = tokio::time::sleep(every) => true,
        _ = shutdown.wait_for(|d| *d) => false,
    }
}
