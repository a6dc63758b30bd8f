//! The transactional outbox. A part writes the events that announce a state change with
//! [`enqueue`], in the same transaction as the change; the [`Relay`] publishes committed rows in
//! id order and marks them sent. A change is never published without being committed, nor
//! committed without being published (at least once: consumers dedupe by message id).
//!
//! Several replicas of a part may run relays: a transaction-scoped advisory lock lets one of
//! them publish at a time, which keeps the order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_envelope::{Envelope, TenantId, Topic};
use crm_telemetry::Metrics;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Producer;

/// Advisory lock key for the relay ("crm-outbox" in ASCII).
const RELAY_LOCK: i64 = 0x63_72_6d_2d_6f_62_78;
/// Sent rows are kept this long for inspection, then deleted.
const SENT_RETENTION: &str = "1 hour";

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
/// was created, so a batch of events can enqueue all their messages in one statement
/// ([`enqueue_all`]) and each still carries its own event's trace.
#[derive(Debug, Clone)]
pub struct Outgoing {
    topic: Topic,
    key: String,
    payload: serde_json::Value,
    headers: HashMap<String, String>,
}

impl Outgoing {
    /// `envelope` for `topic`, with the current span's trace context.
    pub fn new(topic: Topic, envelope: &Envelope) -> Result<Self, serde_json::Error> {
        Ok(Self {
            topic,
            key: envelope.partition_key(),
            payload: serde_json::to_value(envelope)?,
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

/// Adds `messages` to the outbox in their order, in one statement, inside the caller's
/// transaction.
pub async fn enqueue_all(
    conn: &mut PgConnection,
    messages: &[Outgoing],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.name()).collect();
    let keys: Vec<&str> = messages.iter().map(|m| m.key.as_str()).collect();
    let payloads: Vec<Json<&serde_json::Value>> =
        messages.iter().map(|m| Json(&m.payload)).collect();
    let headers: Vec<Json<&HashMap<String, String>>> =
        messages.iter().map(|m| Json(&m.headers)).collect();
    // Ordered by position, so ids (the relay's publishing order) follow the events' order.
    sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, headers)
         SELECT t, k, p, h FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[])
              WITH ORDINALITY AS m(t, k, p, h, n)
         ORDER BY n",
    )
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`enqueue_all`] for large batches (a recompute's thousands of membership changes): the rows
/// go in with `COPY … FROM STDIN`, which PostgreSQL takes several times faster than an
/// `INSERT` of arrays. Ids still follow the messages' order (COPY inserts rows as they come).
pub async fn copy_all(conn: &mut PgConnection, messages: &[Outgoing]) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut text = String::with_capacity(messages.len() * 600);
    for m in messages {
        copy_field(&mut text, m.topic.name());
        text.push('\t');
        copy_field(&mut text, &m.key);
        text.push('\t');
        let payload =
            serde_json::to_string(&m.payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        copy_field(&mut text, &payload);
        text.push('\t');
        let headers =
            serde_json::to_string(&m.headers).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        copy_field(&mut text, &headers);
        text.push('\n');
    }
    let mut copy = conn
        .copy_in_raw("COPY outbox (topic, message_key, payload, headers) FROM STDIN")
        .await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Appends `value` to a `COPY` text-format row: backslash, tab, newline and carriage return
/// escaped (JSON text holds none raw but the backslash; keys may hold anything).
pub fn copy_field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Publishes the outbox of one part's database.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: Producer,
    metrics: Metrics,
    wake: Arc<Notify>,
    batch: i64,
    poll: Duration,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    topic: String,
    message_key: String,
    payload: Json<serde_json::Value>,
    headers: Json<HashMap<String, String>>,
}

impl Relay {
    /// A relay over `pool`'s outbox. Call [`Relay::waker`] after committing rows to publish them
    /// at once; otherwise they go out within `poll`.
    pub fn new(pool: PgPool, producer: Producer, metrics: Metrics, poll: Duration) -> Self {
        Self {
            pool,
            producer,
            metrics,
            wake: Arc::new(Notify::new()),
            batch: 500,
            poll,
        }
    }

    /// Wakes the relay; share it with the code that commits outbox rows.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Publishes until `shutdown`, then makes one last pass so that committed rows go out
    /// before the process exits.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last_cleanup = Instant::now();
        loop {
            match self.publish_batch().await {
                Ok(n) if n as i64 == self.batch => continue,
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox relay pass failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = Instant::now();
                let deleted = sqlx::query(&format!(
                    "DELETE FROM outbox WHERE sent_at < now() - interval '{SENT_RETENTION}'"
                ))
                .execute(&self.pool)
                .await;
                if let Err(e) = deleted {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll.max(backoff)) => {}
            }
        }
        for _ in 0..10 {
            match self.publish_batch().await {
                Ok(n) if n as i64 == self.batch => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "final outbox pass failed; rows stay for the next start");
                    break;
                }
            }
        }
    }

    /// Publishes up to one batch of unsent rows in id order; returns how many went out.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, topic, message_key, payload, headers FROM outbox
             WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            self.metrics.outbox_backlog.set(0);
            return Ok(0);
        }
        // Sends are enqueued in row order; the idempotent producer keeps that order within
        // each partition while acknowledgements are awaited together.
        let payloads: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| serde_json::to_vec(&r.payload.0))
            .collect::<Result<_, _>>()?;
        let sends = rows.iter().zip(&payloads).map(|(row, payload)| async move {
            let topic = Topic::from_name(&row.topic)
                .ok_or_else(|| anyhow::anyhow!("outbox row {} names unknown topic", row.id))?;
            let name = self.producer.topics().name(topic);
            self.producer
                .send_raw(&name, &row.message_key, payload, &row.headers.0)
                .await
                .map_err(anyhow::Error::from)
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        self.metrics.outbox_backlog.set(backlog);
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::copy_field;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_specially() {
        let mut out = String::new();
        copy_field(&mut out, "{\"a\":\"x\\\"y\"}\tz\nw\r");
        assert_eq!(out, "{\"a\":\"x\\\\\"y\"}\\tz\\nw\\r");
    }
}
