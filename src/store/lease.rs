//! What cluster mode needs from a shared store besides the journal: shard
//! leases with fencing epochs, and a member list kept by heartbeats.
//!
//! All times are the store's clock (`now()` in PostgreSQL), so nodes'
//! clocks need not agree. A node counts a lease from *before* it asked for
//! it, so it believes a lease ends no later than the store does; the store's
//! epoch check on every append (see `AppendRequest::fence`) keeps a node
//! that is wrong about it (paused, partitioned) from writing anyway.

use std::time::Duration;

use async_trait::async_trait;

use super::{Fence, StoreError};

/// A node as the member list knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    /// Its inter-node address (host:port).
    pub addr: String,
    pub draining: bool,
    /// Time since its last heartbeat, by the store's clock.
    pub silent_for: Duration,
}

/// A shard's lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard: u32,
    /// The holder; `None` when released or never taken.
    pub owner: Option<String>,
    pub epoch: u64,
    /// Time left before it expires (zero when expired or free).
    pub remaining: Duration,
}

impl Lease {
    /// The node serving the shard now, if any.
    pub fn holder(&self) -> Option<&str> {
        self.owner.as_deref().filter(|_| !self.remaining.is_zero())
    }
}

/// Shard leases and membership, implemented by the shared backends.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Creates the rows of shards `0..shards` on first use and returns the
    /// cluster's shard count: the first node's setting, fixed for the
    /// cluster's life (a node configured otherwise must refuse to start).
    async fn init_shards(&self, shards: u32) -> Result<u32, StoreError>;

    /// Records that `node` is alive (at `addr`, draining or not).
    async fn heartbeat(&self, node: &str, addr: &str, draining: bool) -> Result<(), StoreError>;

    /// Removes `node` from the member list (a clean leave).
    async fn leave(&self, node: &str) -> Result<(), StoreError>;

    /// Every member row, the silent ones included.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;

    /// Every shard's lease.
    async fn leases(&self) -> Result<Vec<Lease>, StoreError>;

    /// Takes each of `shards` that is free or expired for `ttl`, each under
    /// a new epoch; returns the ones taken.
    async fn acquire(
        &self,
        node: &str,
        shards: &[u32],
        ttl: Duration,
    ) -> Result<Vec<Fence>, StoreError>;

    /// Extends the leases `node` still holds under these epochs by `ttl`;
    /// returns the shards renewed (a lease taken over is not).
    async fn renew(
        &self,
        node: &str,
        held: &[Fence],
        ttl: Duration,
    ) -> Result<Vec<u32>, StoreError>;

    /// Gives these leases up at once (a drain or a handoff); the next owner
    /// need not wait for them to expire.
    async fn release(&self, node: &str, held: &[Fence]) -> Result<(), StoreError>;
}
