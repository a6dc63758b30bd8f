//! The transactional outbox. A part writes the events that announce a state change with
//! [`enqueue`] or [`enqueue_all`], in the same transaction as the change; the [`Relay`]
//! publishes committed rows in id order and marks them sent. A change is never published
//! without being committed, nor committed without being published (at least once: consumers
//! dedupe by message id).
//!
//! One call's messages share a row ([`packed`]): a poll that announces thousands of changes
//! writes a few rows, not thousands. Read them one message a row through the
//! `outbox_messages` view.
//!
//! Several replicas of a part may run relays: a transaction-scoped advisory lock lets one of
//! them publish at a time, which keeps the order.

pub mod packed;
mod relay;

use std::collections::HashMap;

use crm_envelope::{Envelope, TenantId, Topic};
use serde_json::value::RawValue;
use sqlx::PgConnection;
use uuid::Uuid;

pub use relay::{Pass, Relay};

/// Adds `envelope` to the outbox for `topic`, with the current trace context, inside the
/// caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    topic: Topic,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    let message = Outgoing::new(topic, envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    enqueue_all(conn, &[message]).await
}

/// One message waiting to be added to the outbox: built with the trace context current when it
/// was created, so a batch of events can enqueue all their messages at once ([`enqueue_all`])
/// and each still carries its own event's trace.
#[derive(Debug, Clone)]
pub struct Outgoing {
    topic: Topic,
    key: String,
    /// The envelope as JSON text, serialised once: the packed row and the relay use it as is.
    payload: Box<RawValue>,
    headers: HashMap<String, String>,
}

impl Outgoing {
    /// `envelope` for `topic`, with the current span's trace context.
    pub fn new(topic: Topic, envelope: &Envelope) -> Result<Self, serde_json::Error> {
        Ok(Self {
            topic,
            key: envelope.partition_key(),
            payload: serde_json::value::to_raw_value(envelope)?,
            headers: crm_telemetry::propagation::current_context_headers(),
        })
    }

    /// A new domain event `kind` about `customer` from part `source`, with `properties` (an
    /// object), for `topic`. An encoding failure is a `sqlx::Error::Encode`, as in [`enqueue`].
    pub fn domain(
        topic: Topic,
        tenant: &TenantId,
        kind: &str,
        customer: Uuid,
        source: &str,
        properties: serde_json::Value,
    ) -> Result<Self, sqlx::Error> {
        let mut envelope = Envelope::domain(tenant.clone(), kind, customer, source);
        if let serde_json::Value::Object(p) = properties {
            envelope.properties = p;
        }
        Self::new(topic, &envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))
    }
}

/// Adds `messages` to the outbox in their order, packed [`packed::PACK_MAX`] to a row, in one
/// statement, inside the caller's transaction. Thousands of messages (a recompute's chunk) go
/// in as a few rows, so there is no separate bulk path.
pub async fn enqueue_all(
    conn: &mut PgConnection,
    messages: &[Outgoing],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows = packed::pack(
        messages
            .iter()
            .map(|m| (m.topic.name(), m.key.as_str(), &*m.payload, &m.headers)),
    )
    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (texts, counts): (Vec<String>, Vec<i32>) = rows.into_iter().unzip();
    // Ordered by position, so ids (the relay's publishing order) follow the messages' order.
    sqlx::query(
        "INSERT INTO outbox (messages, message_count)
         SELECT m, n FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS x(m, n, position)
         ORDER BY position",
    )
    .bind(&texts)
    .bind(&counts)
    .execute(conn)
    .await?;
    Ok(())
}
