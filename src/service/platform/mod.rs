//! The platform: statistics, backups, live topics, the feeds workers tail.

pub mod backups;
pub mod feed;
pub mod stats;
pub mod topics;
