//! Benchmark: events resolved per second by identity, sustained from Kafka (deterministic
//! resolution), beside PostgreSQL's own `pgbench` TPC-B-like transactions per second measured
//! in the same run on the same server.
//!
//! N events (default 20,000; `THROUGHPUT_EVENTS`) of 5,000 customers (an identify with traits,
//! then tracks) are produced to `crm.ingest.v1` first; identity then starts and the time to
//! resolve the whole backlog is measured (every event deduplicated, resolved, its customer
//! updated, its timeline row and outbox rows written, the hot profile refreshed in Redis).
//! pgbench: scale 10, 2 clients, 2 threads, 15 s.
//!
//! Run: `cargo run --release -p crm-tests --example resolve_throughput` (PostgreSQL, Redis and
//! a broker up, as for `scripts/test`; pgbench on the PATH).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use chrono::Utc;
use crm_envelope::{Envelope, Identity, TenantId, Topic};
use crm_kafka::Producer;
use crm_tests::{part_config, pgbench_tps, produce_all, redis_url, unique_id, wait_applied};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    crm_telemetry::init_for_tests();
    let n: usize = std::env::var("THROUGHPUT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let id = unique_id();
    let config = part_config(&id, "identity", &redis_url());
    let kafka = config.kafka.clone();
    let identity = crm_identity::build(crm_identity::Config {
        common: config.clone(),
    })
    .await
    .unwrap();
    let pool = crm_service::db::connect(&config.database_url, 2)
        .await
        .unwrap();

    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let customers = 5_000.min(n);
    let envelopes = (0..n).map(|i| {
        let user = i % customers;
        let first = i < customers;
        let now = Utc::now();
        Envelope {
            id: format!("evt-{i}"),
            tenant_id: tenant.clone(),
            kind: if first { "identify" } else { "track" }.into(),
            name: (!first).then(|| "page_viewed".to_owned()),
            occurred_at: now,
            received_at: now,
            source: "bench".into(),
            identity: Identity {
                user_id: Some(format!("user-{user}")),
                email: first.then(|| format!("user{user}@example.com").into()),
                ..Identity::default()
            },
            customer_id: None,
            traits: if first {
                json!({"first_name": "Ana", "last_name": format!("L{user}"), "plan": "pro"})
                    .as_object()
                    .cloned()
                    .unwrap()
            } else {
                serde_json::Map::new()
            },
            properties: json!({"path": format!("/p/{}", i % 97)})
                .as_object()
                .cloned()
                .unwrap(),
            context: serde_json::Map::new(),
        }
    });
    let produced = produce_all(&producer, Topic::Ingest, envelopes).await;
    println!("produced {n} events in {produced:.1} s");

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(identity.run(shutdown.clone()));
    let seconds = wait_applied(&pool, None, n, "resolved").await;
    let rate = n as f64 / seconds;
    println!("identity resolved {n} events in {seconds:.1} s: {rate:.0} events/s");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;

    match pgbench_tps() {
        Some(tps) => println!(
            "pgbench TPC-B-like (scale 10, 2 clients): {tps:.0} tps; identity / pgbench = {:.2}x",
            rate / tps
        ),
        None => println!("pgbench not run (psql and pgbench must be on the PATH)"),
    }
}
