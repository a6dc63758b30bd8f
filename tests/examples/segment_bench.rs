//! Benchmark: events per second through Segment's `POST /v1/batch` (500-event batches, gzip,
//! HTTP Basic write key) beside a raw producer on the same broker with the same settings
//! (`crm_kafka::Producer`, the gateway's own: idempotent, acks=all) producing the same
//! envelopes to the same topic in the same run.
//!
//! Run: `cargo run --release -p crm-tests --example segment_bench` (with PostgreSQL, Redis and a
//! broker up, as for `scripts/test`). `SEGMENT_BENCH_BATCHES` (default 100) batches of 500;
//! `SEGMENT_BENCH_CLIENTS` (default 4) concurrent HTTP clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::time::Instant;

use chrono::Utc;
use crm_envelope::{parse_ingest_event, IngestLimits, TenantId, Topic};
use crm_kafka::Producer;
use crm_tests::{part_config, produce_all, unique_id, Suite};
use serde_json::{json, Value};

const BATCH: usize = 500;

fn segment_event(run: &str, i: usize) -> Value {
    json!({
        "type": "track",
        "messageId": format!("{run}-{i}"),
        "userId": format!("{run}-u{}", i % 5_000),
        "event": "Product Viewed",
        "timestamp": Utc::now().to_rfc3339(),
        "properties": {"sku": format!("sku-{}", i % 300), "price": 19.99, "currency": "EUR"},
        "context": {"library": {"name": "bench", "version": "1"}, "ip": "203.0.113.7"}
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::main]
async fn main() {
    let batches: usize = std::env::var("SEGMENT_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let clients: usize = std::env::var("SEGMENT_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let suite = Suite::start().await;
    let key = suite.key_with("acme", &[crm_gateway::Scope::Ingest]).await;
    let total = batches * BATCH;

    // Reference: the same envelopes, produced straight to crm.ingest.v1 by the gateway's
    // producer type with its settings.
    let kafka = part_config(&suite.id, "bench", &suite.redis).kafka;
    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let run = unique_id();
    let envelopes: Vec<_> = (0..total)
        .map(|i| {
            let ingest = crm_envelope::segment::to_ingest(
                &segment_event(&run, i),
                None,
                crm_envelope::segment::Received {
                    at: Utc::now(),
                    batch_sent_at: None,
                },
            )
            .unwrap();
            parse_ingest_event(ingest, &tenant, Utc::now(), IngestLimits::default()).unwrap()
        })
        .collect();
    let raw_secs = produce_all(&producer, Topic::Ingest, envelopes).await;
    let raw_rate = total as f64 / raw_secs;

    // The gateway: gzip batches of 500, `clients` at a time.
    let run = unique_id();
    let bodies: Vec<Vec<u8>> = (0..batches)
        .map(|b| {
            let events: Vec<Value> = (0..BATCH)
                .map(|i| segment_event(&run, b * BATCH + i))
                .collect();
            gzip(
                json!({"batch": events, "sentAt": Utc::now().to_rfc3339()})
                    .to_string()
                    .as_bytes(),
            )
        })
        .collect();
    let compressed: usize = bodies.iter().map(Vec::len).sum();
    let started = Instant::now();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let queue = queue.clone();
        let http = suite.http.clone();
        let url = format!("{}/v1/batch", suite.gateway);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().await.pop() else {
                    return;
                };
                let response = http
                    .post(&url)
                    .basic_auth(&key, Some(""))
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let gateway_secs = started.elapsed().as_secs_f64();
    let gateway_rate = total as f64 / gateway_secs;
    println!(
        "raw producer (crm_kafka::Producer, same broker)  {total} events in {raw_secs:.2} s = {raw_rate:.0} events/s"
    );
    println!(
        "POST /v1/batch (gzip, {BATCH}/batch, {clients} clients) {total} events in {gateway_secs:.2} s = {gateway_rate:.0} events/s ({:.0} KB gzip per batch)",
        compressed as f64 / batches as f64 / 1024.0
    );
    println!(
        "ratio gateway/raw = {:.2} (target >= 0.50)",
        gateway_rate / raw_rate
    );
    suite.stop().await;
}
