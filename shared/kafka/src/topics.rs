use std::time::Duration;

use crm_envelope::Topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaConfig;

/// Prefixed topic names for one deployment.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Names under `prefix` (may be empty).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The physical name of `topic`.
    pub fn name(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// The physical name of `topic`'s dead-letter topic.
    pub fn dlq(&self, topic: Topic) -> String {
        format!("{}{}.dlq", self.prefix, topic.name())
    }

    /// The logical topic of a physical name, if it is one of ours.
    pub fn logical(&self, physical: &str) -> Option<Topic> {
        physical
            .strip_prefix(&self.prefix)
            .and_then(Topic::from_name)
    }

    /// The consumer group of a part (prefixed, so deployments sharing a cluster stay apart).
    pub fn group(&self, part: &str) -> String {
        format!("{}crm-{}", self.prefix, part)
    }
}

/// How long a part keeps trying to create its topics before it gives up at start-up. Short:
/// a broker that is down for longer is for the orchestrator's restarts to wait out, and a
/// failure must stay a failure (a test's part that cannot start fails the test, not hangs it).
const CREATE_PATIENCE: Duration = Duration::from_secs(20);
/// How long one creation request may take (as before retries: an answer this slow is not
/// retried once the patience is spent).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates every topic of the suite and its dead-letter topic when missing, through the admin
/// API. Existing topics are left as they are.
///
/// Several parts start at once and create the same topics: a broker may then answer one of them
/// with an error other than "already exists" (tansu's storage refuses the second writer), or not
/// answer yet because it is still starting. Those are transient, so the topics still missing are
/// asked for again with a growing pause for up to [`CREATE_PATIENCE`] before start-up fails with
/// the broker's last answer.
pub async fn ensure_topics(config: &KafkaConfig) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_prefix);
    let mut missing: Vec<String> = Topic::ALL
        .iter()
        .flat_map(|t| [topics.name(*t), topics.dlq(*t)])
        .collect();
    let client = config.client();
    let admin =
        tokio::task::spawn_blocking(move || client.create::<AdminClient<DefaultClientContext>>())
            .await??;
    let options = AdminOptions::new()
        .operation_timeout(Some(CREATE_TIMEOUT))
        .request_timeout(Some(CREATE_TIMEOUT));
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    config.partitions,
                    TopicReplication::Fixed(config.replication),
                )
            })
            .collect();
        let failure = match admin.create_topics(&new_topics, &options).await {
            Ok(results) => {
                let mut failed = Vec::new();
                let mut last = None;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => {
                            last = Some(format!("cannot create topic {name}: {code}"));
                            failed.push(name);
                        }
                    }
                }
                missing = failed;
                last
            }
            Err(e) => Some(format!("the broker did not answer the topic creation: {e}")),
        };
        let Some(failure) = failure else {
            return Ok(());
        };
        if started.elapsed() >= CREATE_PATIENCE {
            anyhow::bail!("{failure} (still failing after {CREATE_PATIENCE:?})");
        }
        tracing::warn!(
            missing = missing.len(),
            error = %failure,
            "topic creation failed; trying again"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_prefix() {
        let t = Topics::new("t1.");
        assert_eq!(t.name(Topic::Ingest), "t1.crm.ingest.v1");
        assert_eq!(t.dlq(Topic::Events), "t1.crm.events.v1.dlq");
        assert_eq!(t.logical("t1.crm.profiles.v1"), Some(Topic::Profiles));
        assert_eq!(t.logical("crm.profiles.v1"), None);
        assert_eq!(t.group("identity"), "t1.crm-identity");
    }
}
