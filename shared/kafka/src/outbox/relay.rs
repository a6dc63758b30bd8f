//! The relay: publishes a part's committed outbox rows in id order, each row's messages in
//! their order, then marks the rows sent.
//!
//! A row is packed (`messages`, see [`packed`]) or, written by a replica of the release before
//! packing during a rolling deploy, a single message (`topic`, `message_key`, `payload`,
//! `headers`): both are published, in one id order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_envelope::Topic;
use crm_telemetry::Metrics;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::packed::{self, Packed};
use crate::Producer;

/// Advisory lock key for the relay ("crm-outbox" in ASCII).
const RELAY_LOCK: i64 = 0x63_72_6d_2d_6f_62_78;
/// Sent rows are kept this long for inspection, then deleted.
const SENT_RETENTION: &str = "1 hour";
/// A pass takes rows until it holds this many messages (always at least one row), so that a
/// pass of large rows does not overfill the producer's queue.
const PASS_MESSAGES: i64 = 5_000;
/// …and at most this many rows.
const PASS_ROWS: i64 = 500;

/// Publishes the outbox of one part's database.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: Producer,
    metrics: Metrics,
    wake: Arc<Notify>,
    poll: Duration,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    messages: Option<String>,
    topic: Option<String>,
    message_key: Option<String>,
    payload: Option<String>,
    headers: Json<HashMap<String, String>>,
}

impl Row {
    /// The row's messages in order, whichever form it has.
    fn messages(self) -> anyhow::Result<Vec<Packed>> {
        if let Some(text) = self.messages {
            return packed::unpack(&text)
                .map_err(|e| anyhow::anyhow!("outbox row {} is not a packed row: {e}", self.id));
        }
        let (Some(topic), Some(key), Some(payload)) = (self.topic, self.message_key, self.payload)
        else {
            anyhow::bail!("outbox row {} has neither messages nor a message", self.id);
        };
        let payload = RawValue::from_string(payload)
            .map_err(|e| anyhow::anyhow!("outbox row {} has a bad payload: {e}", self.id))?;
        Ok(vec![Packed {
            topic,
            key,
            payload,
            headers: self.headers.0,
        }])
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Messages published.
    pub published: usize,
    /// Messages still unsent after it (committed meanwhile, or past the pass's budget).
    pub backlog: i64,
}

impl Pass {
    /// Whether another pass should follow at once: this one published, and more is waiting.
    fn more(&self) -> bool {
        self.published > 0 && self.backlog > 0
    }
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
                Ok(pass) if pass.more() => continue,
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
                Ok(pass) if pass.more() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "final outbox pass failed; rows stay for the next start");
                    break;
                }
            }
        }
    }

    /// Publishes the oldest unsent rows, up to a pass's budget, in id order and each row's
    /// messages in order; marks them sent.
    pub async fn publish_batch(&self) -> anyhow::Result<Pass> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut *tx)
            .await?;
        // The budget is counted on the unsent index's rows and their counts; only the rows
        // taken are read whole (a large row's text is read once, when it is published).
        let rows: Vec<Row> = sqlx::query_as(
            "WITH head AS (
                 SELECT id, sum(n) OVER (ORDER BY id) - n AS before
                 FROM (SELECT id, coalesce(message_count, 1) AS n FROM outbox
                       WHERE sent_at IS NULL ORDER BY id LIMIT $1) h)
             SELECT o.id, o.messages, o.topic, o.message_key, o.payload::text AS payload,
                    o.headers
             FROM outbox o JOIN head USING (id)
             WHERE head.before < $2 ORDER BY o.id",
        )
        .bind(PASS_ROWS)
        .bind(PASS_MESSAGES)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            self.metrics.outbox_backlog.set(0);
            return Ok(Pass {
                published: 0,
                backlog: 0,
            });
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut messages = Vec::new();
        for row in rows {
            let id = row.id;
            for m in row.messages()? {
                let topic = Topic::from_name(&m.topic).ok_or_else(|| {
                    anyhow::anyhow!("outbox row {id} names unknown topic {:?}", m.topic)
                })?;
                messages.push((self.producer.topics().name(topic), m));
            }
        }
        // Sends are enqueued in order; the idempotent producer keeps that order within each
        // partition while acknowledgements are awaited together.
        let sends = messages.iter().map(|(name, m)| {
            self.producer
                .send_raw(name, &m.key, m.payload.get().as_bytes(), &m.headers)
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        let backlog: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(coalesce(message_count, 1)), 0)::bigint FROM outbox
             WHERE sent_at IS NULL",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.metrics.outbox_backlog.set(backlog);
        Ok(Pass {
            published: messages.len(),
            backlog,
        })
    }
}
