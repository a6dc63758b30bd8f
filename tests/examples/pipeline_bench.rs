//! Benchmark: an owner's work queue through the gateway (`GET /v1/lead-queue`, the first page
//! of 50 by priority, and a page deep in it) for an owner with 10,000 open leads among
//! 100,000, beside a cached profile read through the gateway in the same run (p50 and p99 of
//! each, one request at a time, in turn); then the pipeline report
//! (`GET /v1/pipelines/{id}/report`) over 1,000,000 opportunities.
//!
//! Leads and opportunities are written straight into campaign's tables (as its use cases
//! leave them); the customers whose profiles are read are identified through the gateway.
//!
//! Run: `cargo run --release -p crm-tests --example pipeline_bench` (with PostgreSQL, Redis
//! and a broker up, as for `scripts/test`). `PIPELINE_BENCH_OPPORTUNITIES` (default
//! 1000000), `PIPELINE_BENCH_N` (2000 timed requests of each kind).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use crm_tests::{eventually, Suite};
use reqwest::Method;
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

async fn get_ms(http: &reqwest::Client, url: &str, key: &str) -> (f64, Value) {
    let started = Instant::now();
    let r = http.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let body: Value = r.json().await.unwrap();
    (started.elapsed().as_secs_f64() * 1e3, body)
}

#[tokio::main]
async fn main() {
    let opportunities = env("PIPELINE_BENCH_OPPORTUNITIES", 1_000_000);
    let n = env("PIPELINE_BENCH_N", 2_000);
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;

    let (status, pipeline) = suite
        .admin_call(
            Method::POST,
            "/v1/pipelines",
            Some(&json!({"name": "Bench", "stages": [
                {"key": "qualify", "name": "Qualify", "probability": 10},
                {"key": "demo", "name": "Demo", "probability": 30},
                {"key": "proposal", "name": "Proposal", "probability": 60},
                {"key": "won", "name": "Won", "probability": 100, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}],
                "lost_reasons": ["price"]})),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let pipeline_id: Uuid = pipeline["id"].as_str().unwrap().parse().unwrap();

    // 100,000 open leads, 10,000 of them the queue owner's, with spread priorities.
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO leads (tenant_id, id, customer_id, source, status, owner, priority,
             priority_at, waiting_since, status_since, created_at, updated_at)
         SELECT 'acme', gen_random_uuid(), gen_random_uuid(), 'score', 'assigned',
             CASE WHEN i % 10 = 0 THEN 'queue-owner' ELSE 'owner-' || (i % 37) END,
             (random() * 500)::numeric(8, 2)::float8, now(), now(), now(),
             now() - (i % 1000) * interval '1 hour', now()
         FROM generate_series(1, 100000) AS i",
    )
    .execute(&campaign)
    .await
    .unwrap();
    println!("leads: 100000 in {:.1} s", started.elapsed().as_secs_f64());

    // The opportunities: 60% open across three stages, 25% won, 15% lost, 20 owners, two
    // currencies, expected close over the next year.
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO opportunities (tenant_id, id, pipeline_id, customer_id, name, amount,
             currency, stage, probability, status, lost_reason, expected_close, owner,
             stage_since, closed_at, created_at, updated_at)
         SELECT 'acme', gen_random_uuid(), $1, gen_random_uuid(), 'Deal ' || i,
             round((random() * 50000)::numeric, 2),
             CASE WHEN i % 5 = 0 THEN 'USD' ELSE 'EUR' END,
             s.stage, s.p, s.status, CASE WHEN s.status = 'lost' THEN 'price' END,
             (now() + (i % 365) * interval '1 day')::date, 'owner-' || (i % 20),
             now(), CASE WHEN s.status <> 'open' THEN now() - (i % 80) * interval '1 day' END,
             now() - (i % 80 + 30) * interval '1 day', now()
         FROM generate_series(1, $2) AS i,
         LATERAL (SELECT (ARRAY['qualify','demo','proposal','won','won','lost','qualify','demo','proposal','qualify','demo','proposal','won','won','won','lost','lost','qualify','demo','proposal'])[1 + i % 20] AS stage) st,
         LATERAL (SELECT st.stage,
             CASE st.stage WHEN 'qualify' THEN 10 WHEN 'demo' THEN 30 WHEN 'proposal' THEN 60
                           WHEN 'won' THEN 100 ELSE 0 END AS p,
             CASE st.stage WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END AS status) s",
    )
    .bind(pipeline_id)
    .bind(i64::try_from(opportunities).unwrap())
    .execute(&campaign)
    .await
    .unwrap();
    sqlx::query("ANALYZE leads")
        .execute(&campaign)
        .await
        .unwrap();
    sqlx::query("ANALYZE opportunities")
        .execute(&campaign)
        .await
        .unwrap();
    println!(
        "opportunities: {opportunities} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Profiles to read, cached.
    let people = 100;
    let batch: Vec<Value> = (0..people)
        .map(|i| json!({"kind": "identify", "identity": {"user_id": format!("pb-{i}")}, "traits": {"country": "ES"}}))
        .collect();
    suite.ingest(&json!(batch)).await;
    let ids: Vec<String> = eventually("every profile", || async {
        let mut ids = Vec::new();
        for i in 0..people {
            let p = suite.customer_by("user_id", &format!("pb-{i}")).await?;
            ids.push(p["id"].as_str()?.to_owned());
        }
        Some(ids)
    })
    .await;
    let http = reqwest::Client::new();
    let key = suite.key.clone();
    let g = suite.gateway.clone();
    for id in &ids {
        get_ms(&http, &format!("{g}/v1/customers/{id}"), &key).await;
    }

    // A cursor deep in the queue (page 100 of 50).
    let (_, mut page) = get_ms(
        &http,
        &format!("{g}/v1/lead-queue?owner=queue-owner&limit=200"),
        &key,
    )
    .await;
    for _ in 0..24 {
        let last = page["items"].as_array().unwrap().last().unwrap().clone();
        let url = format!(
            "{g}/v1/lead-queue?owner=queue-owner&limit=200&after_priority={}&after={}",
            last["priority"],
            last["id"].as_str().unwrap()
        );
        page = get_ms(&http, &url, &key).await.1;
    }
    let deep = page["items"].as_array().unwrap().last().unwrap().clone();
    let deep_url = format!(
        "{g}/v1/lead-queue?owner=queue-owner&after_priority={}&after={}",
        deep["priority"],
        deep["id"].as_str().unwrap()
    );
    let first_url = format!("{g}/v1/lead-queue?owner=queue-owner");
    let (_, first) = get_ms(&http, &first_url, &key).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 50);

    let (mut reads, mut queues, mut deeps) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        reads.push(
            get_ms(
                &http,
                &format!("{g}/v1/customers/{}", ids[i % people]),
                &key,
            )
            .await
            .0,
        );
        queues.push(get_ms(&http, &first_url, &key).await.0);
        deeps.push(get_ms(&http, &deep_url, &key).await.0);
    }
    for v in [&mut reads, &mut queues, &mut deeps] {
        v.sort_by(f64::total_cmp);
    }
    let (r50, r99) = (percentile(&reads, 0.5), percentile(&reads, 0.99));
    println!(
        "cached profile read through the gateway: p50 {r50:.2} ms, p99 {r99:.2} ms ({n} reads)"
    );
    for (name, v) in [("first page", &queues), ("page 101", &deeps)] {
        let (p50, p99) = (percentile(v, 0.5), percentile(v, 0.99));
        println!(
            "work queue, {name} of 50 (10,000 open leads of the owner, 100,000 in all): p50 {p50:.2} ms, p99 {p99:.2} ms; ratio to the profile read p50 {:.2}, p99 {:.2}",
            p50 / r50,
            p99 / r99
        );
    }

    // The pipeline report over every opportunity, five times: in campaign (the queries, as
    // the handler runs them) and once through the gateway, whose calls to a part are bounded
    // by CRM_GATEWAY__UPSTREAM_TIMEOUT_MS (default 2 s).
    let tenant = crm_envelope::TenantId::parse("acme").unwrap();
    let order: Vec<String> = ["qualify", "demo", "proposal", "won", "lost"]
        .map(String::from)
        .to_vec();
    let mut times = Vec::new();
    let mut open = 0;
    for _ in 0..5 {
        let to = chrono::Utc::now();
        let started = Instant::now();
        let mut conn = campaign.acquire().await.unwrap();
        let report = crm_campaign::store::sales_report::pipeline(
            &mut conn,
            &tenant,
            pipeline_id,
            &order,
            to - chrono::Duration::days(90),
            to,
        )
        .await
        .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        open = report.stages.iter().map(|s| s.count).sum::<i64>();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "pipeline report over {opportunities} opportunities ({open} open), in campaign: median {:.0} ms, best {:.0} ms, worst {:.0} ms",
        times[2], times[0], times[4]
    );
    let started = Instant::now();
    let r = http
        .get(format!("{g}/v1/pipelines/{pipeline_id}/report"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    println!(
        "pipeline report through the gateway: status {} in {:.0} ms",
        r.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    suite.stop().await;
}
