//! Benchmark: offer decisions through the gateway (`POST /v1/decisions`) with 100,000
//! customers in campaign's mirror and 200 offers whose eligibility tests segments, stages,
//! tiers, traits and consent, beside a cached profile read through the gateway
//! (`GET /v1/customers/{id}`, served from Redis) in the same run: p50 and p99 of each, one
//! request at a time, then decisions per second at a concurrency of 16.
//!
//! The mirror is filled straight into campaign's `contacts` (as its consumer keeps it); the
//! customers whose profiles are read and decided for are identified through the gateway, so
//! both reads name customers every part knows.
//!
//! Run: `cargo run --release -p crm-tests --example decision_bench` (with PostgreSQL, Redis and
//! a broker up, as for `scripts/test`). `DECISION_BENCH_CUSTOMERS` (default 100000),
//! `DECISION_BENCH_OFFERS` (200), `DECISION_BENCH_N` (3000 timed requests of each kind).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use crm_gateway::Scope;
use crm_tests::{eventually, Suite};
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let customers = env("DECISION_BENCH_CUSTOMERS", 100_000);
    let offers = env("DECISION_BENCH_OFFERS", 200);
    let n = env("DECISION_BENCH_N", 3_000);
    let suite = Suite::start().await;
    let storefront = suite.key_with("acme", &[Scope::Decide]).await;
    let campaign = suite.pool_of("campaign").await;
    let segments: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();

    // 100,000 customers in the mirror: traits, 0-3 segments, a stage, a tier, consent.
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO contacts (tenant_id, customer_id, email, events_seen, traits, traits_at,
             user_id, consents, segments, stage, tier, lead_score)
         SELECT 'acme', gen_random_uuid(), 'bench' || i || '@example.com', 10,
             jsonb_build_object('country', (ARRAY['FR','DE','ES','IT'])[1 + i % 4], 'age', 18 + i % 60),
             now(), 'bench-' || i,
             CASE WHEN i % 3 = 0 THEN '{}'::jsonb
                  ELSE jsonb_build_object('marketing:email', jsonb_build_object('granted', true, 'at', now())) END,
             ARRAY(SELECT ($1::uuid[])[1 + (i * k) % 20] FROM generate_series(1, i % 4) AS k),
             (ARRAY['new','active','at_risk','lapsed'])[1 + i % 4],
             (ARRAY['bronze','silver','gold'])[1 + i % 3], (i % 100)::float8
         FROM generate_series(1, $2) AS i",
    )
    .bind(&segments)
    .bind(i64::try_from(customers).unwrap())
    .execute(&campaign)
    .await
    .unwrap();
    println!(
        "mirror: {customers} customers in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 200 offers on one placement, every kind of decision-time condition.
    for i in 0..offers {
        let seg = segments[i % segments.len()];
        let eligibility = match i % 5 {
            0 => json!({"segment": {"id": seg}}),
            1 => json!({"all": [{"stage": {"in": ["active", "at_risk"]}},
                                {"consent": {"purpose": "marketing", "channel": "email"}}]}),
            2 => json!({"any": [{"loyalty_tier": {"in": ["gold"]}},
                                {"trait": {"name": "country", "op": "in", "value": ["FR", "ES"]}}]}),
            3 => json!({"not": {"stage": {"in": ["lapsed"]}}}),
            _ => json!({"all": [{"lead_score": {"op": "gte", "value": 20}},
                                {"context": {"field": "channel", "op": "eq", "value": "web"}}]}),
        };
        let (status, body) = suite
            .admin_call(
                reqwest::Method::POST,
                "/v1/offers",
                Some(
                    &json!({"name": format!("offer {i}"), "placements": ["home"],
                    "value": 1 + i % 17, "priority": i % 3, "customer_cap": 5,
                    "content": {"headline": format!("Offer {i}")},
                    "eligibility": eligibility}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let r = suite
        .http
        .put(format!("{}/v1/decisions/settings", suite.gateway))
        .bearer_auth(&suite.key)
        .header("Idempotency-Key", Uuid::now_v7().to_string())
        .json(
            &json!({"arbitration": {"explore": true, "max_impressions": 3}, "control_percent": 5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Evidence for the model: every offer shown and accepted in every cohort.
    sqlx::query(
        "INSERT INTO offer_stats (tenant_id, offer_id, cohort, shown, accepted)
         SELECT 'acme', o.id, c, 1000 + (random() * 1000)::int, (random() * 200)::int
         FROM offers o, unnest(ARRAY['new','active','at_risk','lapsed']) AS c",
    )
    .execute(&campaign)
    .await
    .unwrap();

    // 200 customers known to every part (profiles in identity, mirrored by campaign).
    let people = 200;
    let batch: Vec<Value> = (0..people)
        .map(|i| {
            json!({"kind": "identify", "identity": {"user_id": format!("dec-{i}")},
                   "traits": {"country": "FR", "consent": [{"purpose": "marketing", "channel": "email", "granted": true}]}})
        })
        .collect();
    for chunk in batch.chunks(100) {
        suite.ingest(&json!(chunk)).await;
    }
    let ids: Vec<String> = eventually("every profile mirrored by campaign", || async {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT customer_id FROM contacts WHERE user_id LIKE 'dec-%' AND traits_at IS NOT NULL",
        )
        .fetch_all(&campaign)
        .await
        .unwrap();
        (rows.len() == people).then(|| rows.into_iter().map(|(id,)| id.to_string()).collect())
    })
    .await;
    // Warm both paths: every profile in Redis, the catalogue in memory.
    for id in &ids {
        let r = suite
            .get(Some(&suite.key), &format!("/v1/customers/{id}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    let http = reqwest::Client::new();
    let decide = |id: String| {
        let http = http.clone();
        let url = format!("{}/v1/decisions", suite.gateway);
        let key = storefront.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"customer": {"id": id}, "placement": "home",
                              "context": {"channel": "web"}, "limit": 3}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
        }
    };
    for id in ids.iter().take(50) {
        decide(id.clone()).await;
    }

    // Latency, one request at a time, a read and a decision in turn, so both see the same
    // machine state (the parts' consumers and timers run meanwhile, as in production).
    let read = |i: usize| {
        let http = http.clone();
        let url = format!("{}/v1/customers/{}", suite.gateway, ids[i % people]);
        let key = suite.key.clone();
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    };
    let mut reads = Vec::with_capacity(n);
    let mut decisions = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        read(i).await;
        reads.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        decide(ids[i % people].clone()).await;
        decisions.push(started.elapsed().as_secs_f64() * 1e3);
    }
    reads.sort_by(f64::total_cmp);
    decisions.sort_by(f64::total_cmp);
    let (r50, r99) = (percentile(&reads, 0.5), percentile(&reads, 0.99));
    let (d50, d99) = (percentile(&decisions, 0.5), percentile(&decisions, 0.99));
    println!(
        "cached profile read through the gateway: p50 {r50:.2} ms, p99 {r99:.2} ms ({} reads)",
        reads.len()
    );
    println!(
        "decision through the gateway ({customers} customers, {offers} offers): p50 {d50:.2} ms, p99 {d99:.2} ms ({} decisions)",
        decisions.len()
    );
    println!(
        "ratio decision / profile read: p50 {:.2}, p99 {:.2} (target p99 at most 2)",
        d50 / r50,
        d99 / r99
    );

    // Throughput at a concurrency of 16 for 15 s.
    let window = Duration::from_secs(15);
    let started = Instant::now();
    let done = futures::stream::iter(0..usize::MAX)
        .take_while(|_| futures::future::ready(started.elapsed() < window))
        .map(|i| decide(ids[i % people].clone()))
        .buffer_unordered(16)
        .count()
        .await;
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!(
        "decisions per second at concurrency 16 on {} cores: {rate:.0}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    suite.stop().await;
}
