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
//! Like pgbench's own initialisation, a warm-up first resolves `WARM_EVENTS` (default 20,000)
//! events of other customers and runs `VACUUM ANALYZE`; the measured rate runs from the first
//! event of the measured backlog resolved to the last (the part's start and group join left
//! out, and shown apart). `CRM_KAFKA__LANES` sets the consumer's lanes (default 2).
//!
//! Run: `cargo run --release -p crm-tests --example resolve_throughput` (PostgreSQL, Redis and
//! a broker up, as for `scripts/test`; pgbench on the PATH).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::Utc;
use crm_envelope::{Envelope, Identity, TenantId, Topic};
use crm_kafka::Producer;
use crm_tests::{part_config, pgbench_tps, produce_all, redis_url, run_until_applied, unique_id};
use serde_json::json;

#[tokio::main]
async fn main() {
    crm_telemetry::init_for_tests();
    let n: usize = std::env::var("THROUGHPUT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warm: usize = std::env::var("WARM_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let id = unique_id();
    let config = part_config(&id, "identity", &redis_url());
    let kafka = config.kafka.clone();
    let identity_config = crm_identity::Config {
        common: config.clone(),
    };
    let identity = crm_identity::build(identity_config.clone()).await.unwrap();
    let pool = crm_service::db::connect(&config.database_url, 2)
        .await
        .unwrap();

    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    // Each block of events has customers of its own: an identify with traits for each (a new
    // customer), then tracks of known customers.
    let events = |block: usize, n: usize| {
        let tenant = tenant.clone();
        let customers = 5_000.min(n);
        (0..n).map(move |i| {
            let user = block * 1_000_000 + i % customers;
            let first = i < customers;
            let now = Utc::now();
            Envelope {
                id: format!("evt-{block}-{i}"),
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
        })
    };

    // Warm-up, as pgbench's own initialisation: the tables hold data and their statistics
    // are current before the measured run.
    produce_all(&producer, Topic::Ingest, events(0, warm)).await;
    run_until_applied(&pool, None, warm, "resolved (warm-up)", |s| identity.run(s)).await;
    sqlx::Executor::execute(&pool, "VACUUM ANALYZE")
        .await
        .unwrap();
    println!("warm-up: {warm} events resolved, then VACUUM ANALYZE");

    let produced = produce_all(&producer, Topic::Ingest, events(1, n)).await;
    println!("produced {n} events in {produced:.1} s");
    let identity = crm_identity::build(identity_config).await.unwrap();
    let applied = run_until_applied(&pool, None, n, "resolved", |s| identity.run(s)).await;
    let rate = applied.steady_per_s;
    println!(
        "identity resolved {n} events in {:.1} s with {} lane(s): {rate:.0} events/s from the first resolved ({:.0}/s counting the start)",
        applied.seconds,
        kafka.lanes,
        n as f64 / applied.seconds
    );

    match pgbench_tps() {
        Some(tps) => println!(
            "pgbench TPC-B-like (scale 10, 2 clients): {tps:.0} tps; identity / pgbench = {:.2}x",
            rate / tps
        ),
        None => println!("pgbench not run (psql and pgbench must be on the PATH)"),
    }
}
