//! The run-time kit every part of the suite is built on:
//!
//! - [`CommonConfig`]: the settings every part reads (listen address, database, Kafka, Redis);
//! - [`Problem`]: RFC 9457 `application/problem+json` answers with stable codes;
//! - [`Base`]: the connected resources of a part (database, producer, cache, metrics, outbox
//!   relay) and its operational routes (`/healthz`, `/readyz`, `/metrics`);
//! - [`PartServer`] / [`ConsumerApp`]: serve a part's HTTP API, run its consumer and relay, and
//!   drain them in order on shutdown;
//! - [`cli`]: the `serve` / `migrate` command line every part's binary shares;
//! - [`PartConfig`]: how a part reads its settings;
//! - [`jobs`]: persistent long-running jobs with leases, run off the async runtime's threads;
//! - [`schedule`]: periodic work that one replica runs per tick, with leases in the database;
//! - [`db`], [`shutdown`] and [`tenant_from_path`] helpers.

#![forbid(unsafe_code)]

mod base;
pub mod cli;
mod code;
mod common;
pub mod db;
mod extract;
pub mod jobs;
pub mod limits;
mod middleware;
mod ops;
mod problem;
pub mod schedule;
mod server;
pub mod shutdown;
mod token;

pub use base::Base;
pub use code::Code;
pub use common::{CommonConfig, PartConfig};
pub use extract::{actor, TenantAnd, TenantPath};
pub use problem::{tenant_from_path, Problem};
pub use server::{ConsumerApp, PartServer};
pub use token::{ServiceToken, HEADER as SERVICE_TOKEN_HEADER};
