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
//! Messages are handled in partition order. The messages of one poll (those librdkafka holds
//! when the first arrives, and those arriving within a short linger) go to
//! [`Handler::handle_batch`] in runs of readable messages, so an unreadable one in a backlog
//! is dead-lettered alone; a handler that does not batch, or a batch that fails, falls back to
//! one message at a time.
//!
//! An offset that cannot be stored (its partition was revoked by a rebalance while the message
//! was in hand) is counted and skipped, never a reason to stop: the new owner of the partition
//! gets the message again and its dedupe makes the second delivery change nothing.

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
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::headers::from_kafka;
use crate::sqlstate::{classify, SqlClass};
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
    /// A race another writer won (a unique violation): retried a few times
    /// ([`CONFLICT_ATTEMPTS`]), since the next try normally sees the winner's row, then
    /// dead-lettered as `unique_violation`.
    #[error("conflict: {0:#}")]
    Conflict(anyhow::Error),
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
    /// Database errors by SQLSTATE ([`crate::sqlstate`]); connection, pool and I/O errors with
    /// no SQLSTATE are transient; a statement sqlx itself refuses (decode, a missing column in
    /// a row) is permanent.
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                match classify(&code) {
                    SqlClass::Transient => Self::Transient(err.into()),
                    SqlClass::Conflict => Self::Conflict(err.into()),
                    SqlClass::Permanent => {
                        Self::permanent("database_rejected", format!("SQLSTATE {code}: {err}"))
                    }
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Transient(err.into()),
            _ => Self::permanent("database_rejected", err.to_string()),
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
/// Attempts before a message that keeps hitting a unique violation is dead-lettered.
pub const CONFLICT_ATTEMPTS: u32 = 5;
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => tracing::info!(
                partitions = %partition_names(list),
                "partitions assigned"
            ),
            Rebalance::Revoke(list) => tracing::info!(
                partitions = %partition_names(list),
                "partitions revoked"
            ),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
        // The gauge follows what the consumer holds after the rebalance, topic by topic.
        let mut held: HashMap<String, i64> = HashMap::new();
        if let Ok(subscribed) = consumer.subscription() {
            for e in subscribed.elements() {
                held.entry(e.topic().to_owned()).or_insert(0);
            }
        }
        if let Ok(assigned) = consumer.assignment() {
            for e in assigned.elements() {
                *held.entry(e.topic().to_owned()).or_insert(0) += 1;
            }
        }
        for (name, n) in &held {
            let label = self
                .topics
                .logical(name)
                .map(Topic::name)
                .unwrap_or(name.as_str());
            self.metrics
                .assigned_partitions
                .with_label_values(&[label])
                .set(*n);
        }
    }
}

/// `topic[partition]` of each entry, for the rebalance log lines.
fn partition_names(list: &rdkafka::TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

fn commit_stored<C: Consumer<LoopContext>>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "synchronous offset commit failed"),
    }
}

/// Runs the consumer loop until `shutdown` is cancelled; then finishes the message in hand,
/// commits stored offsets synchronously and returns. An error return (the consumer could not
/// be created or subscribed) is for the caller to act on: [`crate`]'s users stop the part so
/// that it is restarted, rather than serve HTTP without consuming.
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
    let mut client = config.client();
    client
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
    if let Some(instance) = &config.instance_id {
        client.set("group.instance.id", instance);
    }
    let context = LoopContext {
        metrics: metrics.clone(),
        topics: topics.clone(),
    };
    let owned: Owned<StreamConsumer<LoopContext>> = Owned::new(
        tokio::task::spawn_blocking(move || client.create_with_context(context)).await??,
    );
    let Some(consumer) = owned.consumer.as_ref() else {
        return Ok(());
    };
    let names: Vec<String> = subscription
        .topics
        .iter()
        .map(|t| topics.name(*t))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&name_refs)?;
    tracing::info!(group = %group, topics = ?names, instance = ?config.instance_id, "consumer started");

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
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    // For example another live replica with this one's group.instance.id
                    // fenced it: the consumer can never fetch again, so the part must stop.
                    anyhow::bail!("the consumer hit a fatal error ({code:?}): {reason}");
                }
                tracing::warn!(error = %e, "consumer poll error");
                tokio::time::sleep(BACKOFF_START).await;
                continue;
            }
        };
        let batch = collect_batch(consumer, message, config, &shutdown).await;
        let mut parsed: Vec<Option<BatchItem>> = batch.iter().map(|m| worker.item_of(m)).collect();
        for run in runs(&parsed) {
            let messages: Vec<&BorrowedMessage<'_>> = batch[run.range.clone()].iter().collect();
            if run.parsed {
                // Taken, not cloned: the one-at-a-time fallback reads the messages again.
                let items: Vec<BatchItem> = parsed[run.range.clone()]
                    .iter_mut()
                    .filter_map(Option::take)
                    .collect();
                if !worker
                    .apply_lanes(consumer, &messages, items, config.lanes)
                    .await
                {
                    break 'poll;
                }
                continue;
            }
            for message in messages {
                match worker.process(message).await {
                    Disposition::Done => worker.store_offset(consumer, message),
                    Disposition::Stopped => break 'poll,
                }
            }
        }
    }
    commit_stored(consumer);
    close(owned).await;
    tracing::info!(group = %worker.group, "consumer stopped");
    Ok(())
}

/// The first message of a poll and those that join it: every message librdkafka already
/// holds, and those that arrive within [`KafkaConfig::batch_linger`] of the first, up to
/// [`KafkaConfig::max_batch`]. A shutdown ends the wait (the messages taken are still handled).
async fn collect_batch<'c>(
    consumer: &'c StreamConsumer<LoopContext>,
    first: BorrowedMessage<'c>,
    config: &KafkaConfig,
    shutdown: &CancellationToken,
) -> Vec<BorrowedMessage<'c>> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + config.batch_linger;
    while batch.len() < config.max_batch {
        // `timeout_at` polls the receive once even past the deadline, so a message already
        // fetched always joins.
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = tokio::time::timeout_at(deadline, consumer.recv()) => m,
        };
        match next {
            Ok(Ok(m)) => batch.push(m),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "consumer poll error while collecting a batch");
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

/// A stretch of consecutive messages of one poll that all parsed, or all did not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    range: std::ops::Range<usize>,
    parsed: bool,
}

/// Splits a poll's messages into maximal runs of equal parse outcome, in order: the parsed
/// runs can go to [`Handler::handle_batch`], and an unreadable message in the middle of a
/// backlog is dead-lettered on its own without sending the rest one at a time.
fn runs<T>(parsed: &[Option<T>]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (i, ok) in parsed.iter().map(Option::is_some).enumerate() {
        match out.last_mut() {
            Some(run) if run.parsed == ok => run.range.end = i + 1,
            _ => out.push(Run {
                range: i..i + 1,
                parsed: ok,
            }),
        }
    }
    out
}

/// The lane of a message among `lanes`: by its key (FNV-1a), so that one key's messages, one
/// customer's, always share a lane and keep their order; a message without a key goes by its
/// partition.
fn lane_of(key: Option<&[u8]>, partition: i32, lanes: usize) -> usize {
    let lanes = lanes.max(1);
    let hash = match key {
        Some(bytes) => bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        }),
        None => u64::from(partition.unsigned_abs()),
    };
    // `lanes` is at most 64, so both conversions are exact.
    (hash % lanes as u64) as usize
}

/// Which messages of a run may have their offsets stored: those done, in poll order, up to
/// the first message of their partition that is not done (its offset, and every later one of
/// that partition, stay for the next owner or the next start).
fn storable(partitions: &[(&str, i32)], done: &[bool]) -> Vec<bool> {
    let mut blocked: std::collections::HashSet<(&str, i32)> = std::collections::HashSet::new();
    partitions
        .iter()
        .zip(done)
        .map(|(p, d)| {
            if !*d {
                blocked.insert(*p);
            }
            *d && !blocked.contains(p)
        })
        .collect()
}

/// Longest shutdown waits for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The loop's consumer, owned so that it is closed (dropped: librdkafka leaves the group) on a
/// thread of its own however the loop ends. Closing serves the rebalance events still queued,
/// and when a rebalance is in flight librdkafka can block there indefinitely (seen in tests
/// that stop right after starting). On shutdown [`close`] waits for it a while; when the loop's
/// future is dropped instead (a runtime shutting down without a shutdown signal, as at the end
/// of a test, or an aborted task), the close goes on unwaited: dropped in place, it would hold
/// the runtime's thread, and the runtime's own shutdown with it, for as long as it blocks.
struct Owned<C: Send + 'static> {
    consumer: Option<C>,
    /// Told once the consumer is closed, when [`close`] waits for it.
    closed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<C: Send + 'static> Owned<C> {
    fn new(consumer: C) -> Self {
        Self {
            consumer: Some(consumer),
            closed: None,
        }
    }
}

impl<C: Send + 'static> Drop for Owned<C> {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let closed = self.closed.take();
        let spawned = std::thread::Builder::new()
            .name("kafka-close".into())
            .spawn(move || {
                drop(consumer);
                if let Some(closed) = closed {
                    let _ = closed.send(());
                }
            });
        if spawned.is_err() {
            tracing::warn!("could not start a thread to close the consumer; closed in place");
        }
    }
}

/// Closes the consumer on a thread of its own ([`Owned`]), waiting at most [`CLOSE_TIMEOUT`]:
/// a shutdown must never hang on it, and offsets were committed already.
async fn close<C: Send + 'static>(mut owned: Owned<C>) {
    let (done, closed) = tokio::sync::oneshot::channel::<()>();
    owned.closed = Some(done);
    drop(owned);
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

    /// The message as a batch item, or `None` when its topic is unknown or it does not parse
    /// (the one-at-a-time path then skips or dead-letters it).
    fn item_of(&self, message: &BorrowedMessage<'_>) -> Option<BatchItem> {
        let topic = self.topics.logical(message.topic())?;
        let headers = from_kafka(message.headers());
        let envelope = parse(topic, message.payload().unwrap_or_default(), &headers).ok()?;
        Some(BatchItem {
            envelope,
            meta: self.meta_of(message, topic),
            headers,
        })
    }

    /// Applies a run of readable messages, split into up to `lanes` lanes by key, the lanes at
    /// once (each one batch, or one message at a time when it is a single message or its batch
    /// fails), then stores the offsets of what was done. `false` when a shutdown stopped a
    /// message that was still failing.
    async fn apply_lanes(
        &self,
        consumer: &StreamConsumer<LoopContext>,
        messages: &[&BorrowedMessage<'_>],
        items: Vec<BatchItem>,
        lanes: usize,
    ) -> bool {
        let mut split: Vec<(Vec<usize>, Vec<BatchItem>)> = (0..lanes.max(1))
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        for (i, (message, item)) in messages.iter().zip(items).enumerate() {
            let lane = lane_of(message.key(), message.partition(), lanes);
            if let Some((positions, items)) = split.get_mut(lane) {
                positions.push(i);
                items.push(item);
            }
        }
        let outcomes = futures::future::join_all(
            split
                .iter()
                .filter(|(positions, _)| !positions.is_empty())
                .map(|(positions, items)| async move {
                    (positions, self.apply_lane(messages, positions, items).await)
                }),
        )
        .await;
        let mut done = vec![false; messages.len()];
        for (positions, applied) in outcomes {
            for i in positions.iter().take(applied) {
                done[*i] = true;
            }
        }
        let partitions: Vec<(&str, i32)> = messages
            .iter()
            .map(|m| (m.topic(), m.partition()))
            .collect();
        for (message, store) in messages.iter().zip(storable(&partitions, &done)) {
            if store {
                self.store_offset(consumer, message);
            }
        }
        done.iter().all(|d| *d)
    }

    /// One lane: its messages (`positions` in `messages`) as one batch, else one at a time.
    /// Returns how many of them, from the first, were done.
    async fn apply_lane(
        &self,
        messages: &[&BorrowedMessage<'_>],
        positions: &[usize],
        items: &[BatchItem],
    ) -> usize {
        if items.len() > 1 && self.process_batch(items).await {
            return positions.len();
        }
        for (n, i) in positions.iter().enumerate() {
            let Some(message) = messages.get(*i) else {
                return n;
            };
            if let Disposition::Stopped = self.process(message).await {
                return n;
            }
        }
        positions.len()
    }

    /// Tries the batch path: the handler applies every item at once. `false` leaves them to
    /// the one-at-a-time path.
    async fn process_batch(&self, items: &[BatchItem]) -> bool {
        let span =
            tracing::info_span!("kafka.consume_batch", size = items.len(), group = %self.group);
        // Each message's own trace continues here: one `kafka.apply` span per message, child
        // of the span that produced it, open while the batch that applies it runs.
        let applied: Vec<tracing::Span> = items
            .iter()
            .map(|item| {
                let span = tracing::info_span!(
                    "kafka.apply",
                    topic = item.meta.topic.name(),
                    partition = item.meta.partition,
                    offset = item.meta.offset,
                    group = %self.group,
                    message_id = %item.envelope.id,
                    batch_size = items.len(),
                );
                crm_telemetry::propagation::set_remote_parent(&span, &item.headers);
                span
            })
            .collect();
        let outcome = self.handler.handle_batch(items).instrument(span).await;
        drop(applied);
        match outcome {
            Ok(true) => {
                for item in items {
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

    /// Stores the offset after `message` for the next commit. A partition revoked while the
    /// message was in hand refuses the store: the message is counted and left to the
    /// partition's new owner, which gets it again (its effect is deduplicated there). The loop
    /// never stops over it.
    fn store_offset(&self, consumer: &StreamConsumer<LoopContext>, message: &BorrowedMessage<'_>) {
        if let Err(e) = consumer.store_offset_from_message(message) {
            let topic = self
                .topics
                .logical(message.topic())
                .map_or("unknown", Topic::name);
            self.metrics
                .offsets_skipped
                .with_label_values(&[topic])
                .inc();
            tracing::warn!(
                error = %e,
                topic,
                partition = message.partition(),
                offset = message.offset(),
                "offset not stored (partition no longer assigned); its new owner takes it over"
            );
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
        let envelope = match parse(meta.topic, payload, headers) {
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
        let mut conflicts = 0;
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
                Err(HandleError::Conflict(e)) => {
                    self.metrics
                        .failed
                        .with_label_values(&[meta.topic.name(), "conflict"])
                        .inc();
                    conflicts += 1;
                    if conflicts >= CONFLICT_ATTEMPTS {
                        let reason = format!("{e:#}");
                        return self
                            .dead_letter(message, headers, meta, "unique_violation", &reason)
                            .await;
                    }
                    tracing::warn!(error = %format!("{e:#}"), attempt = conflicts, "conflict, retrying");
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

/// Parses a payload under its topic's contract; the error is `(code, reason)`. On
/// `crm.ingest.v1` a message may also be a CloudEvent (the Kafka binding, binary or structured
/// mode: `crm_envelope::cloudevents`), held to the same contract.
fn parse(
    topic: Topic,
    payload: &[u8],
    headers: &HashMap<String, String>,
) -> Result<Envelope, (&'static str, String)> {
    match topic {
        Topic::Ingest => {
            match crm_envelope::cloudevents::from_kafka(headers, payload, chrono::Utc::now()) {
                Some(parsed) => parsed.map_err(|e| (e.code, cloudevent_reason(&e))),
                None => Envelope::from_ingest_message(payload).map_err(|e| (e.code, e.detail)),
            }
        }
        _ => serde_json::from_slice(payload)
            .map_err(|e| ("invalid_envelope", format!("not a valid envelope: {e}"))),
    }
}

/// A CloudEvent's rejection as a dead-letter reason: the attribute, then what to fix.
fn cloudevent_reason(e: &crm_envelope::EventError) -> String {
    match &e.pointer {
        Some(p) => format!("{p}: {}", e.detail),
        None => e.detail.clone(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{close, lane_of, runs, storable, Owned, Run};
    use proptest::prelude::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// A stand-in for a consumer whose close blocks until released, reporting the thread that
    /// closed it.
    struct BlockingClose {
        release: mpsc::Receiver<()>,
        closed_on: mpsc::Sender<std::thread::ThreadId>,
    }

    impl Drop for BlockingClose {
        fn drop(&mut self) {
            let _ = self.release.recv_timeout(Duration::from_secs(10));
            let _ = self.closed_on.send(std::thread::current().id());
        }
    }

    #[test]
    fn a_dropped_loop_closes_its_consumer_elsewhere_without_waiting() {
        let (release, gate) = mpsc::channel();
        let (report, closed_on) = mpsc::channel();
        let started = Instant::now();
        drop(Owned::new(BlockingClose {
            release: gate,
            closed_on: report,
        }));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the drop waited for the close"
        );
        release.send(()).unwrap();
        let thread = closed_on.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(thread, std::thread::current().id());
    }

    #[tokio::test]
    async fn close_waits_until_the_consumer_is_closed() {
        let (release, gate) = mpsc::channel();
        let (report, closed_on) = mpsc::channel();
        release.send(()).unwrap();
        close(Owned::new(BlockingClose {
            release: gate,
            closed_on: report,
        }))
        .await;
        // Closed before close returned: the report is already there.
        assert!(closed_on.try_recv().is_ok());
    }

    #[test]
    fn an_unreadable_message_splits_the_poll_into_three_runs() {
        assert_eq!(
            runs(&[Some(()), Some(()), None, Some(())]),
            vec![
                Run {
                    range: 0..2,
                    parsed: true
                },
                Run {
                    range: 2..3,
                    parsed: false
                },
                Run {
                    range: 3..4,
                    parsed: true
                },
            ]
        );
        assert!(runs::<()>(&[]).is_empty());
    }

    #[test]
    fn one_key_always_takes_one_lane_and_keys_spread_over_the_lanes() {
        let keys: Vec<String> = (0..1000).map(|i| format!("customer-{i}")).collect();
        let mut per_lane = [0usize; 2];
        for k in &keys {
            let lane = lane_of(Some(k.as_bytes()), 0, 2);
            assert_eq!(
                lane,
                lane_of(Some(k.as_bytes()), 1, 2),
                "the partition does not matter"
            );
            per_lane[lane] += 1;
        }
        assert!(per_lane.iter().all(|n| *n > 400), "{per_lane:?}");
        assert_eq!(lane_of(None, 3, 2), 1);
        assert_eq!(lane_of(Some(b"x"), 0, 1), 0);
        assert_eq!(lane_of(Some(b"x"), 0, 0), 0, "no lanes counts as one");
    }

    #[test]
    fn a_message_not_done_holds_back_the_later_offsets_of_its_partition_only() {
        let parts = [("t", 0), ("t", 1), ("t", 0), ("t", 1), ("u", 0)];
        let done = [true, false, true, true, true];
        assert_eq!(
            storable(&parts, &done),
            vec![true, false, true, false, true]
        );
        let done = [false, true, true, true, true];
        assert_eq!(
            storable(&parts, &done),
            vec![false, true, false, true, true]
        );
    }

    proptest! {
        /// Storable offsets are done messages, and in each partition they form a prefix of
        /// the run: nothing after a message that is not done.
        #[test]
        fn storable_offsets_are_a_done_prefix_per_partition(
            rows in proptest::collection::vec((0..3i32, any::<bool>()), 0..64)
        ) {
            let parts: Vec<(&str, i32)> = rows.iter().map(|(p, _)| ("t", *p)).collect();
            let done: Vec<bool> = rows.iter().map(|(_, d)| *d).collect();
            let out = storable(&parts, &done);
            for p in 0..3 {
                let mine: Vec<(bool, bool)> = rows
                    .iter()
                    .zip(&out)
                    .filter(|((q, _), _)| *q == p)
                    .map(|((_, d), s)| (*d, *s))
                    .collect();
                let prefix = mine.iter().take_while(|(d, _)| *d).count();
                for (i, (_, s)) in mine.iter().enumerate() {
                    prop_assert_eq!(*s, i < prefix);
                }
            }
        }

        /// The runs cover every message once, in order; each is of one outcome, and two
        /// neighbours never share one (they are maximal).
        #[test]
        fn runs_partition_the_poll_in_order(parsed in proptest::collection::vec(any::<bool>(), 0..64)) {
            let items: Vec<Option<()>> = parsed.iter().map(|&p| p.then_some(())).collect();
            let out = runs(&items);
            let mut next = 0;
            for (i, run) in out.iter().enumerate() {
                prop_assert_eq!(run.range.start, next);
                prop_assert!(run.range.end > run.range.start);
                prop_assert!(parsed[run.range.clone()].iter().all(|&p| p == run.parsed));
                if i > 0 {
                    prop_assert_ne!(out[i - 1].parsed, run.parsed);
                }
                next = run.range.end;
            }
            prop_assert_eq!(next, parsed.len());
        }
    }
}
