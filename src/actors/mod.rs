//! Entity actors (ractor): one long-lived actor per entity id, the single
//! writer of its stream.
//!
//! - `entity`: the `Entity` trait (pure decide/apply) and the generic actor
//!   that runs one: recover from snapshot + tail, decide, persist, reply.
//! - `registry`: spawn-on-first-use, passivation, supervision, call timeouts.
//! - the aggregates: `user` (accounts, sessions, addresses, notifications),
//!   `email` (uniqueness claims), `shop`, `product` (the catalog and its
//!   stock), `stock_bucket` (a share of a hot product's stock), `course`, `cart`, `coupon`, `order`, `queue` (enrollments and
//!   flash-sale claims), `shipper`, `sandbox_payment`, `review` (one
//!   review of an order line, shop or delivery) and `rating` (a product's,
//!   shop's or shipper's summary), `category` (the one category tree). Each defines its
//!   commands, replies and events (serializable), its state, and — where
//!   the reply is an enum — a typed client on `Registry<E>`, the one place
//!   that reply is matched.

pub mod cart;
pub mod category;
pub mod coupon;
pub mod course;
pub mod email;
pub mod entity;
pub mod order;
pub mod product;
pub mod queue;
pub mod rating;
pub mod registry;
pub mod review;
pub mod sandbox_payment;
pub mod shipper;
pub mod shop;
pub mod stock_bucket;
pub mod user;

use std::sync::Arc;
use std::time::Duration;

pub use entity::{recover, CallError, Ctx, Entity};
pub use registry::Registry;

use crate::live::Bus;
use crate::metrics::Metrics;
use crate::store::Store;

/// What every entity actor needs from its surroundings.
#[derive(Clone)]
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Passivate an actor after this long without a command.
    pub idle_after: Duration,
    /// Upper bound of every call to an actor.
    pub call_timeout: Duration,
    /// Write a snapshot after this many events (0: never).
    pub snapshot_every: u64,
    /// Bound of live entity ids per kind.
    pub max_live: usize,
    /// Bound of commands waiting in one actor's mailbox; beyond it callers
    /// are refused at once (`CallError::Overloaded`).
    pub max_pending: usize,
    /// Where persisted events are published for live subscribers.
    pub bus: Arc<Bus>,
    /// Prefix of actor names, unique per running app.
    pub instance: String,
    /// Cluster mode: placement, leases and forwarding. `None` on one node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}
