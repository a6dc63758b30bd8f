//! Kafka plumbing shared by every part (ARCHITECTURE.md, "Delivery and consistency"):
//!
//! - [`KafkaConfig`] and [`Topics`]: broker settings, prefixed topic names, topic creation;
//! - [`Producer`]: idempotent, `acks=all`, typed by [`crm_envelope::Topic`], trace context in headers;
//! - [`consumer`]: a loop that stores offsets only after the handler's effect is durable,
//!   retries transient errors forever with backoff and dead-letters permanent ones;
//! - [`dedupe`]: the applied-message record, written in the effect's transaction;
//! - [`outbox`]: the transactional outbox and its in-order relay;
//! - [`dlq`]: putting dead-lettered messages back on their topic;
//! - [`sqlstate`]: which database errors are retried and which dead-lettered.

#![forbid(unsafe_code)]

mod config;
pub mod consumer;
pub mod dedupe;
pub mod dlq;
mod headers;
pub mod outbox;
mod producer;
pub mod sqlstate;
mod topics;

pub use config::KafkaConfig;
pub use consumer::{require_customer, BatchItem, HandleError, Handler, MessageMeta};
pub use producer::{ProduceError, Producer};
pub use topics::{ensure_topics, Topics};

/// Migrations for the tables this crate owns in every part's database (outbox, applied
/// messages). Each part runs them beside its own; both ignore the other's versions.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
