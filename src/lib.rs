//! Surge: an actor-based real-time commerce engine.
//!
//! # Layout
//! - [`config`]: settings from flags, environment, a TOML file and defaults.
//! - [`app`]: `Application::build(settings)` → `port()` → `run_until_stopped`,
//!   used alike by `surge serve` and every integration test.
//! - [`store`]: the narrow storage trait, its codec, the read-table
//!   catalog, the embedded redb and the ScyllaDB backends.
//! - [`actors`]: the entity actor runtime (registry, supervisor,
//!   passivation) and the aggregates, each with its typed client.
//! - [`domain`]: the business vocabulary as pure data and rules (orders,
//!   notifications, pricing, shipping, validation, roles, addresses).
//! - [`live`]: topics, typed live payloads and the in-process bus.
//! - [`auth`]: password hashing (bounded), JWT, throttles.
//! - [`service`]: the use cases, one file each; no HTTP types.
//! - [`http`]: the axum edge: routes, error shape, extractors, OpenAPI,
//!   metrics, the server loop with its deadlines and graceful shutdown,
//!   and the WebSocket transport (`http::ws`: frames, sessions).
//! - [`mail`]: the outbox and its worker.
//! - [`payments`]: payment providers (cod, sandbox) and webhook signatures.
//! - [`search`]: the full-text catalog index (tantivy) and its queries.
//! - [`context`]: the request id, carried from the edge to the actors and
//!   across nodes.
//! - [`metrics`]: the Prometheus registry.
//! - [`operator`]: `surge backup` and `surge restore`.
//! - [`telemetry`]: traces over OTLP and their context across nodes.
//! - [`worker`]: the rhythm of the background workers.

pub mod actors;
pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod context;
pub mod demo;
pub mod domain;
#[cfg(feature = "cql-emulator")]
pub mod emulator;
pub mod http;
pub mod live;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod operator;
pub mod payments;
pub mod search;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod worker;
