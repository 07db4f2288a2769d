//! Integration tests: one binary, one module per area. Each test starts its
//! own app through `helpers::spawn_app()` (port 0, its own temp data dir).

mod actors;
mod auth;
pub(crate) mod burst;
mod catalog;
mod cluster;
mod commerce;
mod conformance;
mod hardening;
mod helpers;
mod http_edge;
mod journal;
pub(crate) mod lifecycle;
mod mail;
mod payos;
mod postgres;
mod scylla;
mod shipping;
mod split;
mod stock;
mod web;
mod ws;
