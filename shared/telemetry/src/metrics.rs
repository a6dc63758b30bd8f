use std::collections::HashMap;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The metric families every part reports on `/metrics`, in one registry per part (so that
/// several parts started in one test process keep their figures apart). Names are prefixed
/// `crm_` and labelled with `part`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, matched route and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by method and matched route.
    pub http_latency: HistogramVec,
    /// Kafka messages taken from a topic.
    pub consumed: IntCounterVec,
    /// Kafka messages acknowledged by the broker, by topic.
    pub produced: IntCounterVec,
    /// Handler failures by topic and class (`transient` are retried, `permanent` dead-lettered).
    pub failed: IntCounterVec,
    /// Messages sent to a dead-letter topic, by source topic.
    pub dead_lettered: IntCounterVec,
    /// Kafka messages applied as part of a batch (one transaction for a poll), by topic.
    pub batched: IntCounterVec,
    /// Offsets not stored because their partition was revoked (by a rebalance) while the
    /// message was in hand; the new owner gets the message again and dedupe skips it.
    pub offsets_skipped: IntCounterVec,
    /// Consumer lag by topic and partition, as reported by librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
    /// `crm_kafka_assigned_partitions{topic}`: partitions this replica holds now (0 on every
    /// topic: an idle replica, or one whose group has not yet given it a share).
    pub assigned_partitions: IntGaugeVec,
    /// Outbox rows committed but not yet published.
    pub outbox_backlog: IntGauge,
}

impl Metrics {
    /// A fresh registry for `part` with every family registered.
    pub fn new(part: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("crm".into()),
            Some(HashMap::from([("part".to_owned(), part.to_owned())])),
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests served"),
            &["method", "route", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["method", "route"],
        )?;
        let consumed = IntCounterVec::new(
            Opts::new("kafka_messages_consumed_total", "Kafka messages consumed"),
            &["topic"],
        )?;
        let produced = IntCounterVec::new(
            Opts::new(
                "kafka_messages_produced_total",
                "Kafka messages acknowledged by the broker",
            ),
            &["topic"],
        )?;
        let failed = IntCounterVec::new(
            Opts::new(
                "kafka_messages_failed_total",
                "Kafka message handling failures",
            ),
            &["topic", "class"],
        )?;
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "kafka_messages_dead_lettered_total",
                "Kafka messages sent to a DLQ",
            ),
            &["topic"],
        )?;
        let batched = IntCounterVec::new(
            Opts::new(
                "kafka_messages_batched_total",
                "Kafka messages applied in a batch of one poll",
            ),
            &["topic"],
        )?;
        let offsets_skipped = IntCounterVec::new(
            Opts::new(
                "kafka_offset_store_skipped_total",
                "Offsets not stored because the partition was revoked while in hand",
            ),
            &["topic"],
        )?;
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag",
                "Messages behind the partition's high watermark",
            ),
            &["topic", "partition"],
        )?;
        let assigned_partitions = IntGaugeVec::new(
            Opts::new(
                "kafka_assigned_partitions",
                "Partitions of the topic assigned to this replica",
            ),
            &["topic"],
        )?;
        let outbox_backlog = IntGauge::new("outbox_backlog", "Outbox rows not yet published")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(produced.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(batched.clone()))?;
        registry.register(Box::new(offsets_skipped.clone()))?;
        registry.register(Box::new(consumer_lag.clone()))?;
        registry.register(Box::new(assigned_partitions.clone()))?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            consumed,
            produced,
            failed,
            dead_lettered,
            batched,
            offsets_skipped,
            consumer_lag,
            assigned_partitions,
            outbox_backlog,
        })
    }

    /// The registry in Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_part_label() {
        let m = Metrics::new("identity").unwrap();
        m.consumed.with_label_values(&["crm.ingest.v1"]).inc();
        m.outbox_backlog.set(3);
        let text = m.render();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && !l.starts_with('#'))
                .unwrap_or_default()
                .to_owned()
        };
        let consumed = line("crm_kafka_messages_consumed_total{");
        assert!(consumed.contains("part=\"identity\""), "{text}");
        assert!(consumed.contains("topic=\"crm.ingest.v1\""), "{text}");
        assert!(consumed.ends_with(" 1"), "{text}");
        assert_eq!(
            line("crm_outbox_backlog{"),
            "crm_outbox_backlog{part=\"identity\"} 3"
        );
    }
}
