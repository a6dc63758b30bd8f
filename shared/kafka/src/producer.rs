use std::collections::HashMap;
use std::time::Duration;

use crm_envelope::{Envelope, Topic};
use crm_telemetry::Metrics;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use crate::headers::to_kafka;
use crate::{KafkaConfig, Topics};

/// Why a message was not acknowledged by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The payload could not be serialised.
    #[error("cannot serialise the message: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The broker did not acknowledge the write in time, or refused it.
    #[error("the broker did not acknowledge the message: {0}")]
    Broker(#[from] KafkaError),
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`): a send returns only once the
/// broker acknowledged the write. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    topics: Topics,
    metrics: Metrics,
    delivery_timeout: Duration,
}

impl Producer {
    /// Creates the producer (off the async runtime: librdkafka's client creation blocks).
    pub async fn connect(config: &KafkaConfig, metrics: Metrics) -> anyhow::Result<Self> {
        let mut client = config.client();
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            );
        let inner: FutureProducer = tokio::task::spawn_blocking(move || client.create()).await??;
        Ok(Self {
            inner,
            topics: Topics::new(&config.topic_prefix),
            metrics,
            delivery_timeout: config.delivery_timeout,
        })
    }

    /// The deployment's topic names.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Sends an envelope to `topic` under its partition key, with the current span's trace
    /// context in the headers; returns `(partition, offset)` once acknowledged.
    pub async fn send_envelope(
        &self,
        topic: Topic,
        envelope: &Envelope,
    ) -> Result<(i32, i64), ProduceError> {
        let payload = serde_json::to_vec(envelope)?;
        let headers = crm_telemetry::propagation::current_context_headers();
        self.send_raw(
            &self.topics.name(topic),
            &envelope.partition_key(),
            &payload,
            &headers,
        )
        .await
    }

    /// Sends bytes to a physical topic name with the given headers; returns once acknowledged.
    pub async fn send_raw(
        &self,
        physical_topic: &str,
        key: &str,
        payload: &[u8],
        headers: &HashMap<String, String>,
    ) -> Result<(i32, i64), ProduceError> {
        let record = FutureRecord::to(physical_topic)
            .key(key)
            .payload(payload)
            .headers(to_kafka(headers));
        let delivery = self
            .inner
            .send(record, Timeout::After(self.delivery_timeout))
            .await
            .map_err(|(err, _)| err)?;
        let label = self
            .topics
            .logical(physical_topic)
            .map(Topic::name)
            .unwrap_or(physical_topic);
        self.metrics.produced.with_label_values(&[label]).inc();
        Ok((delivery.partition, delivery.offset))
    }

    /// Whether the broker answers a metadata request within `timeout`.
    pub async fn broker_reachable(&self, timeout: Duration) -> bool {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.client().fetch_metadata(None, timeout).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Waits until every queued message is acknowledged (used when draining).
    pub async fn flush(&self, timeout: Duration) {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || inner.flush(timeout)).await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::warn!("producer flush did not complete within {timeout:?}");
        }
    }
}
