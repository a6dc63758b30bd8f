//! Putting dead-lettered messages back: `crm-<part> dlq replay --topic T [--since] [--dry-run]`.
//!
//! The replay reads `<T>.dlq` from its start up to the end it had when the replay began (so it
//! terminates however fast new dead letters arrive), keeps the entries this part's consumer
//! group wrote (the DLQ of a topic is shared by every part that reads it), and produces each
//! one back to its source topic with its key, payload and original headers. Each replayed entry
//! is recorded in `dlq_replays` after the broker acknowledged it, so a second replay skips it;
//! a crash between the two re-sends one message, which the consumers' dedupe makes harmless.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_envelope::Topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;

use crate::headers::from_kafka;
use crate::{KafkaConfig, Producer, Topics};

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The source topic whose dead letters go back.
    pub topic: Topic,
    /// Only entries dead-lettered at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// List what would be replayed without producing or recording anything.
    pub dry_run: bool,
}

/// One dead-letter entry looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    /// Partition of the DLQ.
    pub partition: i32,
    /// Offset in the DLQ.
    pub offset: i64,
    /// The error code it was dead-lettered with.
    pub code: String,
    /// What happened to it.
    pub outcome: ReplayOutcome,
}

/// What the replay did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Produced back to the source topic.
    Replayed,
    /// Would be produced (dry run).
    WouldReplay,
    /// Replayed by an earlier run.
    AlreadyReplayed,
    /// Dead-lettered before `--since`.
    BeforeSince,
    /// Written by another part's consumer group.
    OtherGroup,
}

/// The replay's tally.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Every entry read, in DLQ order per partition.
    pub entries: Vec<ReplayEntry>,
}

impl ReplayReport {
    /// Entries with `outcome`.
    pub fn count(&self, outcome: ReplayOutcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }
}

/// Longest a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the reader waits for the next message below the end it noted.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Replays the dead letters of `options.topic` that the consumer group of `part` wrote.
pub async fn replay(
    config: &KafkaConfig,
    part: &str,
    pool: &PgPool,
    producer: &Producer,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayReport> {
    let topics = Topics::new(&config.topic_prefix);
    let dlq = topics.dlq(options.topic);
    let source = topics.name(options.topic);
    let group = topics.group(part);
    let messages = read_all(config, &dlq).await?;
    let replayed = already_replayed(pool, &dlq).await?;
    let mut report = ReplayReport::default();
    for m in messages {
        let outcome = if m.headers.get("crm-dlq-consumer-group") != Some(&group) {
            ReplayOutcome::OtherGroup
        } else if options
            .since
            .is_some_and(|since| failed_at(&m.headers) < Some(since))
        {
            ReplayOutcome::BeforeSince
        } else if replayed.contains(&(m.partition, m.offset)) {
            ReplayOutcome::AlreadyReplayed
        } else if options.dry_run {
            ReplayOutcome::WouldReplay
        } else {
            let headers: HashMap<String, String> = m
                .headers
                .iter()
                .filter(|(k, _)| !k.starts_with("crm-dlq-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain([(
                    "crm-dlq-replayed-from".to_owned(),
                    format!("{dlq}/{}/{}", m.partition, m.offset),
                )])
                .collect();
            producer
                .send_raw(&source, &m.key, &m.payload, &headers)
                .await?;
            sqlx::query(
                "INSERT INTO dlq_replays (dlq_topic, partition, dlq_offset, replayed_to)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&dlq)
            .bind(m.partition)
            .bind(m.offset)
            .bind(&source)
            .execute(pool)
            .await?;
            ReplayOutcome::Replayed
        };
        report.entries.push(ReplayEntry {
            partition: m.partition,
            offset: m.offset,
            code: m
                .headers
                .get("crm-dlq-error-code")
                .cloned()
                .unwrap_or_default(),
            outcome,
        });
    }
    Ok(report)
}

fn failed_at(headers: &HashMap<String, String>) -> Option<DateTime<Utc>> {
    headers
        .get("crm-dlq-failed-at")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The (partition, offset) of every entry of `dlq` replayed before, read once per replay.
async fn already_replayed(
    pool: &PgPool,
    dlq: &str,
) -> Result<std::collections::HashSet<(i32, i64)>, sqlx::Error> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, dlq_offset FROM dlq_replays WHERE dlq_topic = $1")
            .bind(dlq)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A dead letter, owned.
struct DeadLetter {
    partition: i32,
    offset: i64,
    key: String,
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Every message of `topic` from the start of each partition to the end it had when the read
/// began (no consumer group: partitions are assigned directly and nothing is committed).
async fn read_all(config: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let mut client = config.client();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<DeadLetter>> {
        let consumer: BaseConsumer = client
            .set("group.id", "crm-dlq-replay")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for &p in &partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)?;
            if high > low {
                ends.insert(p, high);
                assignment.add_partition_offset(&topic, p, Offset::Offset(low))?;
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return Ok(out);
        }
        consumer.assign(&assignment)?;
        while !ends.is_empty() {
            let Some(message) = consumer.poll(READ_TIMEOUT) else {
                anyhow::bail!(
                    "{topic}: no message within {}s although {} partition(s) are not read to their end",
                    READ_TIMEOUT.as_secs(),
                    ends.len()
                );
            };
            let message = message?;
            let (p, offset) = (message.partition(), message.offset());
            let Some(&end) = ends.get(&p) else { continue };
            if offset < end {
                out.push(DeadLetter {
                    partition: p,
                    offset,
                    key: message
                        .key()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .unwrap_or_default()
                        .to_owned(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers: from_kafka(message.headers()),
                });
            }
            if offset + 1 >= end {
                ends.remove(&p);
            }
        }
        Ok(out)
    })
    .await?
}
