//! Benchmark: segmentation at scale, on its own database (PostgreSQL as `scripts/test` runs
//! it; no broker: what is measured is the part's own work on a poll, which the consumer loop
//! hands it).
//!
//! 1. Seeds N customers (default 100,000; `SEG_BENCH_CUSTOMERS`) with traits, tiers, orders,
//!    views and retained events, and S segments (default 100; `SEG_BENCH_SEGMENTS`) of every
//!    kind of rule (traits, aggregates, windows, categories, tiers, references).
//! 2. The first full recompute of every segment: customers per second.
//! 3. Streaming (`SEG_BENCH_EVENTS`, default 20,000; 0 skips it): views, orders and trait
//!    changes of random customers, applied
//!    - one message at a time (`Handler::handle`, the path before polls were batched),
//!    - as polls of one message (a lone event on a quiet topic),
//!    - as polls of 500 (a busy topic; the consumer's default largest poll);
//!    beside a primary-key read of a customer's row in the same database (the reference).
//!
//! Run: `cargo run --release -p crm-tests --example segmentation_bench`; the recompute
//! figure: `SEG_BENCH_CUSTOMERS=1000000 SEG_BENCH_SEGMENTS=50 SEG_BENCH_EVENTS=0`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{BatchItem, Handler, MessageMeta};
use crm_segmentation::engine::Catalog;
use crm_segmentation::SegmentationHandler;
use crm_tests::{postgres, unique_id};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// Customer `g`'s id: fixed, so that the seed and the events agree.
fn customer(g: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-7000-8000-{g:012x}")).unwrap()
}

const COUNTRIES: [&str; 4] = ["ES", "FR", "DE", "US"];

/// Segment `i` of the generated catalogue: every kind of rule, with varied selectivity.
fn rule(i: usize, created: &[Uuid]) -> Value {
    match i % 10 {
        0 => json!({"trait": {"name": "plan", "op": "eq", "value": format!("plan{}", i % 7)}}),
        1 => json!({"aggregate": {"metric": "orders", "op": "gte", "value": (i % 5) + 1}}),
        2 => json!({"aggregate": {"metric": "revenue", "op": "gt", "value": 50 * (i % 8)}}),
        3 => {
            json!({"event": {"name": "Product Viewed", "at_least": (i % 4) + 1, "within_days": 30}})
        }
        4 => json!({"bought_category": {"any_of": [format!("cat{}", i % 6)]}}),
        5 => json!({"loyalty_tier": {"in": [if i % 2 == 0 { "gold" } else { "silver" }]}}),
        6 => json!({"all": [
            {"trait": {"name": "country", "op": "eq", "value": COUNTRIES[i % 4]}},
            {"aggregate": {"metric": "orders", "op": "gte", "value": 1}}]}),
        7 => json!({"event": {"name": "Order Completed", "at_least": 1, "within_days": 30 + i}}),
        8 => {
            json!({"aggregate": {"metric": "days_since_last_seen", "op": "lte", "value": 10 + i % 40}})
        }
        _ => json!({"any": [
            {"segment": {"id": created[i - 9]}},
            {"trait": {"name": "vip", "op": "eq", "value": true}}]}),
    }
}

async fn seed(pool: &PgPool, tenant: &TenantId, customers: usize, segments: usize) {
    let started = Instant::now();
    let mut conn = pool.acquire().await.unwrap();
    let mut created = Vec::new();
    for i in 0..segments {
        let row = crm_segmentation::store::segments::create(
            &mut conn,
            tenant,
            &format!("segment {i:03}"),
            "",
            rule(i, &created),
            "bench",
        )
        .await
        .unwrap();
        created.push(row.id);
    }
    let id = "('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid";
    for sql in [
        format!(
            "INSERT INTO customer_activity (tenant_id, customer_id, events_total, orders_total,
                 revenue_total, first_seen_at, last_seen_at, last_order_at, last_order_value,
                 categories, traits, loyalty_tier)
             SELECT $1, {id}, g % 4 + g % 5, g % 4, CASE WHEN g % 4 > 0 THEN (g % 97) * 3 ELSE 0 END,
                    now() - interval '400 days', now() - make_interval(days => g % 60),
                    CASE WHEN g % 4 > 0 THEN now() - make_interval(days => g % 200) END,
                    CASE WHEN g % 4 > 0 THEN (g % 97) * 3.0 / (g % 4) ELSE 0 END,
                    CASE WHEN g % 4 > 0 THEN ARRAY['cat' || (g % 6)] ELSE '{{}}' END,
                    jsonb_build_object('plan', 'plan' || (g % 7),
                        'country', (ARRAY['ES', 'FR', 'DE', 'US'])[g % 4 + 1], 'vip', g % 11 = 0),
                    CASE WHEN g % 13 = 0 THEN 'gold' WHEN g % 5 = 0 THEN 'silver' END
             FROM generate_series(0, $2::int - 1) g"
        ),
        format!(
            "INSERT INTO daily_activity (tenant_id, customer_id, name, day, events, total)
             SELECT $1, {id}, 'Order Completed', (now() - make_interval(days => g % 200))::date,
                    g % 4, (g % 97) * 3.0
             FROM generate_series(0, $2::int - 1) g WHERE g % 4 > 0
             UNION ALL
             SELECT $1, {id}, 'Product Viewed', (now() - make_interval(days => g % 40))::date,
                    g % 5, 0
             FROM generate_series(0, $2::int - 1) g WHERE g % 5 > 0"
        ),
        format!(
            "INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
             SELECT $1, {id}, 'seed-o-' || g || '-' || k, 'Order Completed',
                    now() - make_interval(days => g % 200), jsonb_build_object('revenue', (g % 97) * 3.0 / (g % 4))
             FROM generate_series(0, $2::int - 1) g, generate_series(1, g % 4) k
             UNION ALL
             SELECT $1, {id}, 'seed-v-' || g || '-' || k, 'Product Viewed',
                    now() - make_interval(days => g % 40), '{{}}'::jsonb
             FROM generate_series(0, $2::int - 1) g, generate_series(1, g % 5) k"
        ),
    ] {
        sqlx::query(&sql)
            .bind(tenant)
            .bind(i64::try_from(customers).unwrap())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE").execute(&mut *conn).await.unwrap();
    println!(
        "seeded {customers} customers and {segments} segments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Event `n` of the stream: views, orders and trait changes of random customers.
fn event(tenant: &TenantId, customers: usize, n: usize) -> BatchItem {
    let g = (n.wrapping_mul(2_654_435_761)) % customers;
    let (topic, e) = match n % 10 {
        0..=6 => {
            let mut e = Envelope::domain(tenant.clone(), "track", customer(g), "bench");
            e.name = Some("Product Viewed".into());
            e.properties = json!({"sku": format!("sku-{}", n % 300)})
                .as_object()
                .unwrap()
                .clone();
            (Topic::Events, e)
        }
        7 | 8 => {
            let mut e = Envelope::domain(tenant.clone(), "track", customer(g), "bench");
            e.name = Some("Order Completed".into());
            e.properties = json!({"revenue": 20 + n % 80, "category": format!("cat{}", n % 6)})
                .as_object()
                .unwrap()
                .clone();
            (Topic::Events, e)
        }
        _ => {
            let mut e = Envelope::domain(tenant.clone(), "profile.updated", customer(g), "bench");
            e.traits =
                json!({"plan": format!("plan{}", n % 7), "country": "ES", "vip": n % 3 == 0})
                    .as_object()
                    .unwrap()
                    .clone();
            (Topic::Profiles, e)
        }
    };
    BatchItem {
        envelope: e,
        meta: MessageMeta {
            topic,
            partition: 0,
            offset: n as i64,
            group: "bench".into(),
        },
        headers: Default::default(),
    }
}

fn line(label: &str, mut times: Vec<Duration>, reference_p99: f64) {
    times.sort();
    let p99 = pct(&times, 0.99);
    println!(
        "{label:<44} p50 {:>7.3} ms  p99 {:>7.3} ms  ({:.1}x the key read's p99)",
        pct(&times, 0.50),
        p99,
        p99 / reference_p99
    );
}

#[tokio::main]
async fn main() {
    let customers = env("SEG_BENCH_CUSTOMERS", 100_000);
    let segments = env("SEG_BENCH_SEGMENTS", 100);
    let events = env("SEG_BENCH_EVENTS", 20_000);
    let url = format!("{}/crm_bench_{}_segmentation", postgres(), unique_id());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 4).await.unwrap();
    crm_service::db::migrate(&pool, &crm_segmentation::MIGRATOR)
        .await
        .unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    seed(&pool, &tenant, customers, segments).await;
    let catalog = Arc::new(Catalog::default());

    // The first full recompute.
    let started = Instant::now();
    let applied =
        crm_segmentation::recompute::recompute(&pool, &catalog, &tenant, None, Utc::now())
            .await
            .unwrap();
    let took = started.elapsed().as_secs_f64();
    println!(
        "first full recompute: {} customers, {} entries, {} stage changes in {took:.1} s: {:.0} customers/s",
        applied.customers,
        applied.entered,
        applied.stage_changes,
        applied.customers as f64 / took
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("  outbox rows written: {outbox}");
    if events == 0 {
        return;
    }

    // The reference: a customer's row by primary key.
    let mut reads = Vec::new();
    for n in 0..2_000 {
        let g = (n * 7_919) % customers;
        let t = Instant::now();
        let _: Option<(i64,)> = sqlx::query_as(
            "SELECT events_total FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2",
        )
        .bind(&tenant)
        .bind(customer(g))
        .fetch_optional(&pool)
        .await
        .unwrap();
        reads.push(t.elapsed());
    }
    reads.sort();
    let reference = pct(&reads, 0.99);
    println!(
        "reference: primary-key read                  p50 {:>7.3} ms  p99 {:>7.3} ms",
        pct(&reads, 0.50),
        reference
    );

    let handler = SegmentationHandler::new(pool.clone(), Arc::clone(&catalog));
    let single = 2_000.min(events / 4);
    let mut one = Vec::new();
    for n in 0..single {
        let b = event(&tenant, customers, n);
        let t = Instant::now();
        handler.handle(&b.envelope, &b.meta).await.unwrap();
        one.push(t.elapsed());
    }
    line("one message at a time (before)", one, reference);
    let mut polls_of_one = Vec::new();
    for n in single..2 * single {
        let b = event(&tenant, customers, n);
        let t = Instant::now();
        assert!(handler.handle_batch(&[b]).await.unwrap());
        polls_of_one.push(t.elapsed());
    }
    line("a poll of one message", polls_of_one, reference);
    let items: Vec<BatchItem> = (2 * single..events)
        .map(|n| event(&tenant, customers, n))
        .collect();
    let mut per_event = Vec::new();
    let mut per_poll = Vec::new();
    let started = Instant::now();
    for poll in items.chunks(500) {
        let t = Instant::now();
        assert!(handler.handle_batch(poll).await.unwrap());
        let took = t.elapsed();
        per_poll.push(took);
        per_event.extend(std::iter::repeat_n(took / poll.len() as u32, poll.len()));
    }
    let rate = items.len() as f64 / started.elapsed().as_secs_f64();
    line("polls of 500, per event", per_event, reference);
    per_poll.sort();
    println!(
        "polls of 500: a poll p50 {:.1} ms, p99 {:.1} ms; {rate:.0} events/s",
        pct(&per_poll, 0.50),
        pct(&per_poll, 0.99)
    );
}
