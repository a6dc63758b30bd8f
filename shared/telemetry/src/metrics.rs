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
    /// `crm_redis_circuit_open`: 1 while the Redis circuit breaker takes Redis as down (reads
    /// go to the owner), set at each scrape.
    pub redis_circuit_open: IntGauge,
    /// `crm_job_leases_lost_total{kind}`: jobs whose lease this replica lost while running
    /// them (it stalled past its lease and another replica took the job over).
    pub job_leases_lost: IntCounterVec,
    /// `crm_messages_delivered_total{channel, outcome}`: campaign's deliveries (`sent`,
    /// `skipped`, `failed`, `retry`) by channel.
    pub messages_delivered: IntCounterVec,
    /// `crm_webhook_attempts_total{outcome}`: the gateway's webhook delivery attempts
    /// (`delivered`, `retry`, `failed`, `disabled`).
    pub webhook_attempts: IntCounterVec,
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
        let outbox_backlog = IntGauge::new("outbox_backlog", "Outbox messages not yet published")?;
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
        let redis_circuit_open = IntGauge::new(
            "redis_circuit_open",
            "1 while the Redis circuit breaker is open",
        )?;
        let job_leases_lost = IntCounterVec::new(
            Opts::new(
                "job_leases_lost_total",
                "Job leases lost while the job was running",
            ),
            &["kind"],
        )?;
        let messages_delivered = IntCounterVec::new(
            Opts::new(
                "messages_delivered_total",
                "Messages handed to a channel, by outcome",
            ),
            &["channel", "outcome"],
        )?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        registry.register(Box::new(redis_circuit_open.clone()))?;
        registry.register(Box::new(job_leases_lost.clone()))?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook delivery attempts, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(messages_delivered.clone()))?;
        registry.register(Box::new(webhook_attempts.clone()))?;
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
            redis_circuit_open,
            job_leases_lost,
            messages_delivered,
            webhook_attempts,
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

    /// Every family's exported names (`_bucket`, `_sum`, `_count` for histograms).
    fn exported_names() -> std::collections::BTreeSet<String> {
        let m = Metrics::new("x").unwrap();
        m.http_requests
            .with_label_values(&["GET", "/r", "200"])
            .inc();
        m.http_latency
            .with_label_values(&["GET", "/r"])
            .observe(0.1);
        for vec in [
            &m.consumed,
            &m.produced,
            &m.dead_lettered,
            &m.batched,
            &m.offsets_skipped,
            &m.job_leases_lost,
        ] {
            vec.with_label_values(&["t"]).inc();
        }
        m.failed.with_label_values(&["t", "c"]).inc();
        m.messages_delivered
            .with_label_values(&["email", "sent"])
            .inc();
        m.webhook_attempts.with_label_values(&["delivered"]).inc();
        m.consumer_lag.with_label_values(&["t", "0"]).set(1);
        m.assigned_partitions.with_label_values(&["t"]).set(1);
        let mut names = std::collections::BTreeSet::new();
        for line in m.render().lines() {
            let mut words = line.split_whitespace();
            if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
                (words.next(), words.next(), words.next(), words.next())
            {
                if kind == "histogram" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                names.insert(name.to_owned());
            }
        }
        names
    }

    /// The `crm_*` metric names a text mentions.
    fn named_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(found) = text[i..].find("crm_") {
            let start = i + found;
            let before = start.checked_sub(1).map(|b| bytes[b]);
            let mut end = start;
            while end < bytes.len()
                && (bytes[end].is_ascii_lowercase()
                    || bytes[end].is_ascii_digit()
                    || bytes[end] == b'_')
            {
                end += 1;
            }
            if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                names.insert(text[start..end].to_owned());
            }
            i = end.max(start + 1);
        }
        names
    }

    #[test]
    fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
        let exported = exported_names();
        assert!(exported.contains("crm_http_request_duration_seconds_bucket"));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/observability");
        let mut checked = 0;
        for file in ["alerts.yml", "grafana/dashboards/crm.json"] {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            // Comments may name code (`crm_telemetry`); the expressions are what count.
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            let named = named_in(&text);
            assert!(named.len() >= 5, "{file} names only {named:?}");
            for name in &named {
                assert!(
                    exported.contains(name),
                    "{file} names {name}, which no part exports; exported: {exported:?}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 15, "{checked}");
        // The check itself catches a name that is not exported.
        assert!(!exported.contains("crm_kafka_consumer_lagg"));
        assert_eq!(
            named_in("rate(crm_kafka_consumer_lagg[5m]) and xcrm_no"),
            ["crm_kafka_consumer_lagg".to_owned()].into_iter().collect()
        );
    }
}
