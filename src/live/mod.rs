//! Live events, apart from any transport: what can be watched ([`Topic`]),
//! what watchers are sent ([`LiveEvent`] and its per-topic payloads), and
//! the in-process [`Bus`] that entity actors publish to once an event is
//! durable (and that ends the connections of revoked auth sessions).
//!
//! Nothing here knows axum, sockets or frame encodings: the WebSocket
//! gateway (`ws/`) subscribes and encodes. Across nodes, `relay` carries
//! publications over Redis pub/sub behind the same calls.

mod bus;
mod event;
mod topic;

pub use bus::{
    Bus, FleetSink, FleetUpdate, PositionFrame, PositionSlot, Prev, Published, Revocation,
    RevocationWatch, Revoked, Subscription, TopicEvent, Uplink, WIRE_FORMATS,
};
pub use event::{LiveEvent, OrderLive, ProductLive, QueueLive, ShipperLive, StatsLive, UserLive};
pub use topic::{Topic, TopicError};
