//! The at-least-once consumer loop every part runs (the pattern of vector's Kafka source and
//! svix's Kafka bridge):
//!
//! 1. take a message; parse it as an [`Envelope`] (the ingest contract on `crm.ingest.v1`);
//! 2. call the [`Handler`], inside a span whose parent is the W3C context in the headers;
//! 3. on a transient error, retry with exponential backoff, forever: the message is never
//!    skipped, and shutdown during retries leaves its offset uncommitted;
//! 4. on a permanent error (after a few attempts) or an unparsable message, produce it to
//!    `<topic>.dlq` with headers naming the source topic, partition, offset, group and reason;
//! 5. only then store the offset; librdkafka commits stored offsets in the background, and a
//!    synchronous commit runs when partitions are revoked and when the loop stops.
//!
//! Messages are handled one at a time per consumer, in partition order.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crm_envelope::{Envelope, Topic};
use crm_telemetry::Metrics;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::headers::from_kafka;
use crate::{KafkaConfig, Producer, Topics};

/// Where a message came from, for handlers that need it.
#[derive(Debug, Clone)]
pub struct MessageMeta {
    /// The logical topic.
    pub topic: Topic,
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// The consumer group handling it.
    pub group: String,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Database, broker or cache unreachable, a serialisation conflict: retried until it succeeds.
    #[error("transient failure: {0:#}")]
    Transient(anyhow::Error),
    /// The message can never be applied (it breaks the contract): dead-lettered.
    #[error("{code}: {reason}")]
    Permanent {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable reason (no personal data).
        reason: String,
    },
}

impl HandleError {
    /// A permanent failure with a stable code.
    pub fn permanent(code: &'static str, reason: impl Into<String>) -> Self {
        Self::Permanent {
            code,
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for HandleError {
    /// Connection, pool, I/O errors and serialisation failures or deadlocks are transient; a
    /// rejected statement (constraint, data) is permanent, since retrying cannot change it.
    fn from(err: sqlx::Error) -> Self {
        let transient = match &err {
            sqlx::Error::Database(db) => matches!(
                db.code().as_deref(),
                Some("40001" | "40P01" | "23505" | "55P03" | "57P01" | "53300")
            ),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        };
        if transient {
            Self::Transient(err.into())
        } else {
            Self::permanent("database_rejected", err.to_string())
        }
    }
}

/// Applies one message. Implementations make their effect durable (normally one database
/// transaction that includes [`crate::dedupe::first_delivery`]) before returning `Ok`.
pub trait Handler: Send + Sync + 'static {
    /// Applies `envelope`, taken from the topic described by `meta`.
    fn handle(
        &self,
        envelope: &Envelope,
        meta: &MessageMeta,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Applies several messages of one poll at once, all or nothing (normally one
    /// transaction), in order. `Ok(true)` when done; `Ok(false)` (the default) when the handler
    /// does not batch. On `Ok(false)` or an error, the loop applies the messages one at a time
    /// with [`Handler::handle`], so retries and dead letters work as for single messages.
    fn handle_batch(
        &self,
        batch: &[BatchItem],
    ) -> impl Future<Output = Result<bool, HandleError>> + Send {
        let _ = batch;
        async { Ok(false) }
    }
}

/// One message of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// The parsed envelope.
    pub envelope: Envelope,
    /// Where it came from.
    pub meta: MessageMeta,
    /// Its Kafka headers (the W3C trace context among them).
    pub headers: HashMap<String, String>,
}

/// Most messages handed to [`Handler::handle_batch`] at once: those already fetched when the
/// first arrives, up to this many (`CRM_KAFKA__MAX_BATCH` overrides it per part).
pub const DEFAULT_MAX_BATCH: usize = 500;

/// What a part consumes.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The part's name; the consumer group is `<prefix>crm-<part>`.
    pub part: &'static str,
    /// The logical topics it reads.
    pub topics: Vec<Topic>,
}

/// Attempts before a permanent handler error is dead-lettered.
const PERMANENT_ATTEMPTS: u32 = 3;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

struct LoopContext {
    metrics: Metrics,
    topics: Topics,
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            let label = self
                .topics
                .logical(name)
                .map(Topic::name)
                .unwrap_or(name.as_str());
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[label, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Handling is sequential and happens between polls, so every message handled so far
        // has its offset stored: commit them before the partitions move elsewhere.
        if let Rebalance::Revoke(_) = rebalance {
            commit_stored(consumer);
        }
    }
}

fn commit_stored<C: Consumer<LoopContext>>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "synchronous offset commit failed"),
    }
}

/// Runs the consumer loop until `shutdown` is cancelled; then finishes the message in hand,
/// commits stored offsets synchronously and returns.
pub async fn run<H: Handler>(
    config: &KafkaConfig,
    subscription: Subscription,
    handler: H,
    producer: Producer,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_prefix);
    let group = topics.group(subscription.part);
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        )
        .set(
            "statistics.interval.ms",
            config.stats_interval.as_millis().to_string(),
        )
        .set(
            "fetch.wait.max.ms",
            config.fetch_wait.as_millis().to_string(),
        );
    let context = LoopContext {
        metrics: metrics.clone(),
        topics: topics.clone(),
    };
    let consumer: StreamConsumer<LoopContext> =
        tokio::task::spawn_blocking(move || client.create_with_context(context)).await??;
    let names: Vec<String> = subscription
        .topics
        .iter()
        .map(|t| topics.name(*t))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&name_refs)?;
    tracing::info!(group = %group, topics = ?names, "consumer started");

    let worker = Worker {
        handler,
        producer,
        metrics,
        topics,
        group,
        shutdown: shutdown.clone(),
    };
    'poll: loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consumer poll error");
                tokio::time::sleep(BACKOFF_START).await;
                continue;
            }
        };
        // The messages already fetched join the first one (a zero timeout polls once).
        let mut batch = vec![message];
        while batch.len() < config.max_batch {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m),
                _ => break,
            }
        }
        if batch.len() > 1 && worker.process_batch(&batch).await {
            for message in &batch {
                consumer.store_offset_from_message(message)?;
            }
            continue;
        }
        for message in &batch {
            match worker.process(message).await {
                Disposition::Done => consumer.store_offset_from_message(message)?,
                Disposition::Stopped => break 'poll,
            }
        }
    }
    commit_stored(&consumer);
    close(consumer).await;
    tracing::info!(group = %worker.group, "consumer stopped");
    Ok(())
}

/// Longest shutdown waits for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes the consumer (leaves the group) on a thread of its own, waiting at most
/// [`CLOSE_TIMEOUT`]. Closing serves the rebalance events still queued, and when a rebalance
/// is in flight librdkafka can block there indefinitely (seen in tests that stop right after
/// starting): a shutdown must never hang on it, and offsets were committed already.
async fn close<C: Send + 'static>(consumer: C) {
    let (done, closed) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if spawned.is_err() {
        tracing::warn!("could not start a thread to close the consumer; leaving it open");
        return;
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_err() {
        tracing::warn!(
            timeout_s = CLOSE_TIMEOUT.as_secs(),
            "consumer did not leave its group in time; abandoning the close (offsets are committed)"
        );
    }
}

enum Disposition {
    /// Applied or dead-lettered: the offset may move past it.
    Done,
    /// Shutdown came while the message was still failing: leave its offset alone.
    Stopped,
}

struct Worker<H> {
    handler: H,
    producer: Producer,
    metrics: Metrics,
    topics: Topics,
    group: String,
    shutdown: CancellationToken,
}

impl<H: Handler> Worker<H> {
    fn meta_of(&self, message: &BorrowedMessage<'_>, topic: Topic) -> MessageMeta {
        MessageMeta {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            group: self.group.clone(),
        }
    }

    /// Tries the batch path: every message parses and the handler applies them all at once.
    /// `false` leaves them to the one-at-a-time path.
    async fn process_batch(&self, batch: &[BorrowedMessage<'_>]) -> bool {
        let mut items = Vec::with_capacity(batch.len());
        for message in batch {
            let Some(topic) = self.topics.logical(message.topic()) else {
                return false;
            };
            let Ok(envelope) = parse(topic, message.payload().unwrap_or_default()) else {
                return false;
            };
            items.push(BatchItem {
                envelope,
                meta: self.meta_of(message, topic),
                headers: from_kafka(message.headers()),
            });
        }
        let span =
            tracing::info_span!("kafka.consume_batch", size = items.len(), group = %self.group);
        match self.handler.handle_batch(&items).instrument(span).await {
            Ok(true) => {
                for item in &items {
                    let topic = [item.meta.topic.name()];
                    self.metrics.consumed.with_label_values(&topic).inc();
                    self.metrics.batched.with_label_values(&topic).inc();
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, size = items.len(), "batch failed; applying its messages one at a time");
                false
            }
        }
    }

    async fn process(&self, message: &BorrowedMessage<'_>) -> Disposition {
        let Some(topic) = self.topics.logical(message.topic()) else {
            tracing::warn!(
                topic = message.topic(),
                "message from an unknown topic skipped"
            );
            return Disposition::Done;
        };
        self.metrics
            .consumed
            .with_label_values(&[topic.name()])
            .inc();
        let headers = from_kafka(message.headers());
        let meta = self.meta_of(message, topic);
        let span = tracing::info_span!(
            "kafka.consume",
            topic = topic.name(),
            partition = meta.partition,
            offset = meta.offset,
            group = %self.group,
            message_id = tracing::field::Empty,
        );
        crm_telemetry::propagation::set_remote_parent(&span, &headers);
        self.apply(message, &headers, &meta).instrument(span).await
    }

    async fn apply(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &HashMap<String, String>,
        meta: &MessageMeta,
    ) -> Disposition {
        let payload = message.payload().unwrap_or_default();
        let envelope = match parse(meta.topic, payload) {
            Ok(e) => e,
            Err((code, reason)) => {
                return self
                    .dead_letter(message, headers, meta, code, &reason)
                    .await;
            }
        };
        tracing::Span::current().record("message_id", envelope.id.as_str());
        let mut backoff = BACKOFF_START;
        let mut permanent_failures = 0;
        loop {
            match self.handler.handle(&envelope, meta).await {
                Ok(()) => return Disposition::Done,
                Err(HandleError::Transient(e)) => {
                    self.metrics
                        .failed
                        .with_label_values(&[meta.topic.name(), "transient"])
                        .inc();
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "transient failure, retrying");
                }
                Err(HandleError::Permanent { code, reason }) => {
                    self.metrics
                        .failed
                        .with_label_values(&[meta.topic.name(), "permanent"])
                        .inc();
                    permanent_failures += 1;
                    if permanent_failures >= PERMANENT_ATTEMPTS {
                        return self
                            .dead_letter(message, headers, meta, code, &reason)
                            .await;
                    }
                    tracing::warn!(
                        code,
                        attempt = permanent_failures,
                        "permanent failure, trying again before dead-lettering"
                    );
                }
            }
            if !self.sleep(backoff).await {
                return Disposition::Stopped;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Produces the message to its DLQ with the reason; retries the produce until it succeeds
    /// (or shutdown), since skipping it would lose the message.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &HashMap<String, String>,
        meta: &MessageMeta,
        code: &str,
        reason: &str,
    ) -> Disposition {
        let mut dlq_headers = headers.clone();
        dlq_headers.insert("crm-dlq-source-topic".into(), message.topic().to_owned());
        dlq_headers.insert("crm-dlq-partition".into(), meta.partition.to_string());
        dlq_headers.insert("crm-dlq-offset".into(), meta.offset.to_string());
        dlq_headers.insert("crm-dlq-consumer-group".into(), self.group.clone());
        dlq_headers.insert("crm-dlq-error-code".into(), code.to_owned());
        dlq_headers.insert("crm-dlq-error".into(), reason.to_owned());
        dlq_headers.insert("crm-dlq-failed-at".into(), chrono::Utc::now().to_rfc3339());
        let key = message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        let dlq = self.topics.dlq(meta.topic);
        let mut backoff = BACKOFF_START;
        loop {
            match self
                .producer
                .send_raw(&dlq, key, payload, &dlq_headers)
                .await
            {
                Ok(_) => {
                    self.metrics
                        .dead_lettered
                        .with_label_values(&[meta.topic.name()])
                        .inc();
                    tracing::warn!(code, dlq = %dlq, "message dead-lettered");
                    return Disposition::Done;
                }
                Err(e) => tracing::warn!(error = %e, "dead-letter produce failed, retrying"),
            }
            if !self.sleep(backoff).await {
                return Disposition::Stopped;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Sleeps unless shutdown comes first; `false` when shutting down.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}

/// Parses a payload under its topic's contract; the error is `(code, reason)`.
fn parse(topic: Topic, payload: &[u8]) -> Result<Envelope, (&'static str, String)> {
    match topic {
        Topic::Ingest => Envelope::from_ingest_message(payload).map_err(|e| (e.code, e.detail)),
        _ => serde_json::from_slice(payload)
            .map_err(|e| ("invalid_envelope", format!("not a valid envelope: {e}"))),
    }
}

/// The `customer_id` that every topic after `crm.ingest.v1` must carry, or a permanent
/// `missing_customer_id` error (the message breaks the contract and is dead-lettered).
pub fn require_customer(envelope: &Envelope) -> Result<uuid::Uuid, HandleError> {
    envelope.customer_id.ok_or_else(|| {
        HandleError::permanent(
            "missing_customer_id",
            "messages after identity resolution must carry customer_id",
        )
    })
}
