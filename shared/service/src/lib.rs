//! The run-time kit every part of the suite is built on:
//!
//! - [`CommonConfig`]: the settings every part reads (listen address, database, Kafka, Redis);
//! - [`Problem`]: RFC 9457 `application/problem+json` answers with stable codes;
//! - [`Base`]: the connected resources of a part (database, producer, cache, metrics, outbox
//!   relay) and its operational routes (`/healthz`, `/readyz`, `/metrics`);
//! - [`PartServer`]: serves a part's HTTP API, runs its consumer and relay, and drains them in
//!   order on shutdown;
//! - [`db`] and [`shutdown`] helpers.

#![forbid(unsafe_code)]

mod base;
mod common;
pub mod db;
mod middleware;
mod ops;
mod problem;
mod server;
pub mod shutdown;

pub use base::Base;
pub use common::CommonConfig;
pub use problem::Problem;
pub use server::PartServer;
