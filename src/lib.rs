//! Surge: an actor-based real-time commerce engine.
//!
//! # Layout
//! - [`config`]: settings from flags, environment, a TOML file and defaults.
//! - [`app`]: `Application::build(settings)` → `port()` → `run_until_stopped`,
//!   used alike by `surge serve` and every integration test.
//! - [`store`]: the narrow storage trait, its codec, and the embedded redb
//!   backend with group commit.
//! - [`actors`]: the entity actor runtime (registry, supervisor,
//!   passivation) and the entities: user, email claim, shop, product, course.
//! - [`domain`]: pure rules and data (validation, roles, addresses, catalog).
//! - [`auth`]: password hashing (bounded) and JWT issuing/validation.
//! - [`service`]: use cases that span several entities (register, login,
//!   catalog search); no HTTP types.
//! - [`http`]: the axum edge: routes, error shape, auth extractor, OpenAPI,
//!   metrics, the server loop with header-read timeout and graceful shutdown.
//! - [`ws`]: live updates: the topic bus and the WebSocket gateway.
//! - [`payments`]: payment providers (cod, sandbox) and webhook signatures.
//! - [`metrics`]: the Prometheus registry.

pub mod actors;
pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
#[cfg(feature = "cql-emulator")]
pub mod emulator;
pub mod http;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod payments;
pub mod service;
pub mod store;
pub mod ws;
