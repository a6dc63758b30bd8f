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

/// Creates every topic of the suite and its dead-letter topic when missing, through the admin
/// API. Existing topics are left as they are.
pub async fn ensure_topics(config: &KafkaConfig) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_prefix);
    let names: Vec<String> = Topic::ALL
        .iter()
        .flat_map(|t| [topics.name(*t), topics.dlq(*t)])
        .collect();
    let client = config.client();
    let admin =
        tokio::task::spawn_blocking(move || client.create::<AdminClient<DefaultClientContext>>())
            .await??;
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                config.partitions,
                TopicReplication::Fixed(config.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
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
