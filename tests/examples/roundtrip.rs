//! Benchmark: round trip from `POST /v1/events` to the profile being readable through the
//! gateway, over N events (default 1,000; `ROUNDTRIP_EVENTS`), p50/p99, beside a reference
//! measured in the same run: the broker's own produce→consume round trip of one message.
//!
//! Run: `cargo run --release -p crm-tests --example roundtrip` (with PostgreSQL, Redis and a
//! broker up, as for `scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crm_kafka::Producer;
use crm_tests::{part_config, test_consumer, Suite};
use rdkafka::message::Message;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "{name:<40} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
    (p50, p99)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("ROUNDTRIP_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let suite = Suite::start().await;

    // Reference: produce one message, wait for a consumer to receive it. A dead-letter topic,
    // because no part consumes it (a part would dead-letter these raw messages).
    let kafka = part_config(&suite.id, "bench", &suite.redis).kafka;
    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let topic = suite.topic("crm.interactions.v1.dlq");
    let consumer = test_consumer(&topic);
    let none = HashMap::new();
    producer
        .send_raw(&topic, "warm", b"warm", &none)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    let mut reference = Vec::with_capacity(200);
    for i in 0..200 {
        let payload = format!("m{i}");
        let started = Instant::now();
        producer
            .send_raw(&topic, "k", payload.as_bytes(), &none)
            .await
            .unwrap();
        loop {
            let m = consumer.recv().await.unwrap();
            if m.payload() == Some(payload.as_bytes()) {
                break;
            }
        }
        reference.push(started.elapsed());
    }

    // The suite: post an identify, poll the gateway until the profile is readable.
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let user = format!("bench-{i}");
        let started = Instant::now();
        let r = suite
            .post_events(&suite.key, &json!({"id": format!("bench-{i}"), "kind": "identify", "identity": {"user_id": user}, "traits": {"i": i}}))
            .await;
        assert_eq!(r.status(), 202);
        while suite.customer_by_user(&user).await.is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(started.elapsed());
        if (i + 1) % 250 == 0 {
            eprintln!("{} / {n} events", i + 1);
        }
    }
    let (ref50, ref99) = report("broker produce->consume (reference)", reference);
    let (p50, p99) = report("POST /v1/events -> profile readable", samples);
    println!(
        "ratio to reference: p50 {:.2}x, p99 {:.2}x",
        p50.as_secs_f64() / ref50.as_secs_f64(),
        p99.as_secs_f64() / ref99.as_secs_f64()
    );
    suite.stop().await;
}
