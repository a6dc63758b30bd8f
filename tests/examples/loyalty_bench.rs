//! Benchmark: points earned per second by loyalty from a `crm.events.v1` backlog (batched per
//! poll), beside `pgbench` TPC-B-like transactions per second in the same run; then redemption
//! latency through the gateway (reserve with an Idempotency-Key), beside a read of the same
//! customer's account through the gateway.
//!
//! N orders (default 20,000; `EARN_EVENTS`) of 5,000 customers, with category multipliers, a
//! daily cap and tiers configured, are produced to `crm.events.v1` first; loyalty then starts
//! and the time to apply the backlog is measured (deduplication, points planned, transactions,
//! entries, balances, lots, cap usage, orders, tier upgrades and outbox messages written).
//!
//! Like pgbench's own initialisation, a warm-up first applies `WARM_EVENTS` (default 20,000)
//! orders and runs `VACUUM ANALYZE`; the measured rate runs from the first order of the
//! measured backlog applied to the last (the part's start and group join left out, and shown
//! apart). `CRM_KAFKA__LANES` sets the consumer's lanes (default 2).
//!
//! Run: `cargo run --release -p crm-tests --example loyalty_bench` (PostgreSQL, Redis and a
//! broker up, as for `scripts/test`; pgbench on the PATH).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::Producer;
use crm_tests::{
    part_config, pgbench_tps, produce_all, redis_url, run_until_applied, unique_id, Suite,
};
use serde_json::json;
use uuid::Uuid;

fn programme() -> crm_loyalty::domain::programme::Programme {
    serde_json::from_value(json!({
        "earn_rate": 1, "category_multipliers": {"shoes": 2}, "caps": [{"period": "day", "max_points": 100000}],
        "expiry_days": 365,
        "tiers": [{"name": "base", "threshold": 0}, {"name": "silver", "threshold": 500, "multiplier": 1.5}]}))
    .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

#[tokio::main]
async fn main() {
    crm_telemetry::init_for_tests();
    let n: usize = std::env::var("EARN_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warm: usize = std::env::var("WARM_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let id = unique_id();
    let config = part_config(&id, "loyalty", &redis_url());
    let kafka = config.kafka.clone();
    let loyalty_config = crm_loyalty::Config {
        common: config.clone(),
        scheduler_tick: Duration::from_secs(60),
    };
    let loyalty = crm_loyalty::build(loyalty_config.clone()).await.unwrap();
    let pool = crm_service::db::connect(&config.database_url, 2)
        .await
        .unwrap();
    crm_loyalty::store::programmes::save(
        &mut pool.acquire().await.unwrap(),
        &crm_envelope::TenantId::parse("bench").unwrap(),
        &programme(),
        "bench",
    )
    .await
    .unwrap();

    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let customers: Vec<Uuid> = (0..5_000.min(n)).map(|_| Uuid::now_v7()).collect();
    let orders = |range: std::ops::Range<usize>| {
        let (tenant, customers) = (tenant.clone(), customers.clone());
        range.map(move |i| {
            let mut e = Envelope::domain(
                tenant.clone(),
                "track",
                customers[i % customers.len()],
                "bench",
            );
            e.id = format!("order-event-{i}");
            e.name = Some("Order Completed".into());
            e.occurred_at = Utc::now();
            e.properties = json!({"order_id": format!("o-{i}"), "revenue": 20 + i % 80,
                "products": [{"category": if i % 3 == 0 { "shoes" } else { "bags" }, "price": 10, "quantity": 2}]})
            .as_object()
            .cloned()
            .unwrap();
            e
        })
    };

    // Warm-up, as pgbench's own initialisation: the tables hold data and their statistics
    // are current before the measured run.
    produce_all(&producer, Topic::Events, orders(0..warm)).await;
    let consumer = Some("loyalty:crm.events.v1");
    run_until_applied(&pool, consumer, warm, "applied (warm-up)", |s| {
        loyalty.run(s)
    })
    .await;
    sqlx::Executor::execute(&pool, "VACUUM ANALYZE")
        .await
        .unwrap();
    println!("warm-up: {warm} orders applied, then VACUUM ANALYZE");

    let produced = produce_all(&producer, Topic::Events, orders(warm..warm + n)).await;
    println!(
        "produced {n} orders of {} customers in {produced:.1} s",
        customers.len()
    );
    let loyalty = crm_loyalty::build(loyalty_config).await.unwrap();
    let applied = run_until_applied(&pool, consumer, n, "applied", |s| loyalty.run(s)).await;
    let rate = applied.steady_per_s;
    let (earns,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM ledger_transactions WHERE kind = 'earn'")
            .fetch_one(&pool)
            .await
            .unwrap();
    println!(
        "loyalty applied {n} orders in {:.1} s with {} lane(s): {rate:.0} events/s from the first applied ({:.0}/s counting the start; {earns} earn transactions in all)",
        applied.seconds,
        kafka.lanes,
        n as f64 / applied.seconds
    );
    let violations = crm_loyalty::verify::verify(&pool).await.unwrap();
    println!(
        "crm-loyalty verify after the run: {} violation(s)",
        violations.len()
    );
    match pgbench_tps() {
        Some(tps) => println!(
            "pgbench TPC-B-like (scale 10, 2 clients): {tps:.0} tps; loyalty / pgbench = {:.2}x",
            rate / tps
        ),
        None => println!("pgbench not run (psql and pgbench must be on the PATH)"),
    }

    // Redemption latency through the gateway.
    let redemptions: usize = std::env::var("REDEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let suite = Suite::start().await;
    let send = |method: reqwest::Method,
                path: String,
                key: Option<String>,
                body: Option<serde_json::Value>| {
        let mut r = suite
            .http
            .request(method, format!("{}{path}", suite.gateway))
            .bearer_auth(&suite.key);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let r = send(
        reqwest::Method::PUT,
        "/v1/loyalty/programme".into(),
        Some(unique_id()),
        Some(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let customer = Uuid::now_v7();
    let r = send(
        reqwest::Method::POST,
        format!("/v1/loyalty/customers/{customer}/adjustments"),
        Some(unique_id()),
        Some(json!({"points": 10_000_000, "reason": "bench"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = send(
        reqwest::Method::POST,
        "/v1/loyalty/rewards".into(),
        Some(unique_id()),
        Some(json!({"name": "bench", "cost": 5})),
    )
    .await
    .unwrap();
    let reward: serde_json::Value = r.json().await.unwrap();
    let body = json!({"customer_id": customer, "reward_id": reward["id"]});
    let (mut reserve, mut read) = (Vec::new(), Vec::new());
    for i in 0..redemptions + 50 {
        let t = Instant::now();
        let r = send(
            reqwest::Method::POST,
            "/v1/loyalty/redemptions".into(),
            Some(unique_id()),
            Some(body.clone()),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let took = t.elapsed();
        let t = Instant::now();
        let r = send(
            reqwest::Method::GET,
            format!("/v1/loyalty/customers/{customer}"),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        if i >= 50 {
            reserve.push(took);
            read.push(t.elapsed());
        }
    }
    reserve.sort();
    read.sort();
    println!(
        "redemption (reserve) through the gateway, {redemptions} requests: p50 {:.2} ms, p99 {:.2} ms; reference, the account read through the gateway: p50 {:.2} ms, p99 {:.2} ms",
        pct(&reserve, 0.5), pct(&reserve, 0.99), pct(&read, 0.5), pct(&read, 0.99)
    );
    suite.stop().await;
}
