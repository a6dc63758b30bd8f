//! Benchmarks of issues 4 and 19, one run, figures printed:
//!
//! 1. Streaming evaluation: 100 segments defined, 100,000 customers (`STREAM_CUSTOMERS`), 5,000
//!    events (`STREAM_EVENTS`) applied one by one through the consumer's handler (dedupe,
//!    aggregates, facts loaded, affected segments evaluated, memberships and messages written,
//!    commit): p50 / p95 / p99 per event; then as polls of one message and as polls of 500
//!    through the batched path (`Handler::handle_batch`), and the in-memory evaluation alone,
//!    beside a primary-key read of one customer row. The polls of one message are also broken
//!    down by statement (sqlx's own timings of each, collected by a tracing layer): where a lone
//!    event's time goes.
//! 2. Full recompute: 50 segments over 1,000,000 synthetic customers (`RECOMPUTE_CUSTOMERS`):
//!    time and customers per second, beside PostgreSQL's `COPY` of the same rows from a file.
//! 3. The CDNOW fit, timed beside the Python `lifetimes` package when it is installed.
//!
//! Run: `cargo run --release -p crm-segmentation --example segmentation_bench` (PostgreSQL at
//! 127.0.0.1:5432 or `CRM_BENCH_DATABASE_URL`; it creates and drops `crm_bench_segmentation`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{BatchItem, Handler, MessageMeta};
use crm_segmentation::domain::value::{read_transactions, summarise, ValueModel};
use crm_segmentation::engine::evaluate::evaluate_customer;
use crm_segmentation::engine::{Catalog, Change};
use crm_segmentation::recompute::recompute;
use crm_segmentation::store::facts::load_many;
use crm_segmentation::store::segments;
use crm_segmentation::SegmentationHandler;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const CATEGORIES: [&str; 3] = ["shoes", "bags", "music"];

/// A tracing layer keeping sqlx's timing of each statement: its summary (first words), time.
#[derive(Clone, Default)]
struct StatementTimes(Arc<Mutex<Vec<(String, Duration)>>>);

#[derive(Default)]
struct StatementEvent {
    summary: String,
    secs: f64,
}

impl tracing::field::Visit for StatementEvent {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == "summary" {
            self.summary = format!("{v:?}");
        }
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        if f.name() == "summary" {
            self.summary = v.to_owned();
        }
    }
    fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
        if f.name() == "elapsed_secs" {
            self.secs = v;
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementTimes {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut v = StatementEvent::default();
        e.record(&mut v);
        let summary = v.summary.trim_matches('"').chars().take(48).collect();
        let took = Duration::from_secs_f64(v.secs);
        self.0.lock().unwrap().push((summary, took));
    }
}

/// Prints the recorded statements grouped by summary: count per event, p50, p99, mean, and
/// their share of `total` (the events' summed time).
fn print_statements(times: &StatementTimes, events: usize, total: Duration) {
    let mut by: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for (s, t) in times.0.lock().unwrap().drain(..) {
        by.entry(s).or_default().push(t);
    }
    let mut rows: Vec<(String, Vec<Duration>, Duration)> = by
        .into_iter()
        .map(|(s, v)| {
            let sum = v.iter().sum();
            (s, v, sum)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    println!("  statements of the polls of one (per event, p50, p99, mean, share of the time):");
    for (s, v, sum) in &mut rows {
        v.sort();
        println!(
            "    {:>5.2}  p50 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  {:>4.1}%  {s}",
            v.len() as f64 / events as f64,
            percentile(v.as_slice(), 0.50),
            percentile(v.as_slice(), 0.99),
            sum.as_secs_f64() * 1000.0 / v.len() as f64,
            share(*sum)
        );
    }
    println!(
        "  statements' share of the events' time: {:.1}% (the rest: BEGIN, the client, evaluation)",
        share(rows.iter().map(|r| r.2).sum())
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Segment `k` of a varied mix: traits, aggregates, windowed events with property filters,
/// categories, stages, recency, combinations, and references to earlier segments.
fn rule(k: usize, first_id: Option<Uuid>) -> Value {
    let plans = ["free", "pro", "gold"];
    let countries = ["FR", "DE", "US", "GB", "ES"];
    let cats = ["shoes", "bags", "music"];
    match k % 10 {
        0 => json!({"all": [{"trait": {"name": "plan", "op": "eq", "value": plans[k % 3]}},
                             {"trait": {"name": "country", "op": "in", "value": [countries[k % 5], countries[(k + 1) % 5]]}}]}),
        1 => json!({"aggregate": {"metric": "orders", "op": "gte", "value": 1 + k % 3}}),
        2 => {
            json!({"event": {"name": "Page Viewed", "at_least": 1 + k % 4, "within_days": 30 + k % 60}})
        }
        3 => {
            json!({"event": {"name": "Order Completed", "where": [{"property": "products.category", "op": "eq", "value": cats[k % 3]}],
                              "at_least": 1, "within_days": 90 + k % 200}})
        }
        4 => json!({"bought_category": {"any_of": [cats[k % 3]]}}),
        5 => {
            let stages = [
                json!(["active", "new"]),
                json!(["at_risk"]),
                json!(["lapsed", "reactivated"]),
            ];
            json!({"stage": {"in": stages[k % 3]}})
        }
        6 => {
            json!({"aggregate": {"metric": "days_since_last_seen", "op": "lte", "value": 7 + k % 50}})
        }
        7 => json!({"any": [{"aggregate": {"metric": "revenue", "op": "gte", "value": 50 + k}},
                             {"not": {"trait": {"name": "age", "op": "lt", "value": 30 + k % 20}}}]}),
        8 => {
            json!({"all": [{"event": {"name": "Email Opened", "at_least": 1, "within_days": 14 + k % 30}},
                             {"aggregate": {"metric": "average_order_value", "op": "gte", "value": 20}}]})
        }
        _ => match first_id {
            Some(id) => {
                json!({"all": [{"segment": {"id": id}}, {"aggregate": {"metric": "events_total", "op": "gte", "value": 3}}]})
            }
            None => json!({"aggregate": {"metric": "events_total", "op": "gte", "value": 3}}),
        },
    }
}

/// Creates `n` segments for `tenant` through the same code as the API.
async fn define_segments(pool: &PgPool, tenant: &TenantId, n: usize) {
    let mut first = None;
    for k in 0..n {
        let mut tx = pool.begin().await.unwrap();
        let row = segments::create(
            &mut tx,
            tenant,
            &format!("bench {k}"),
            "",
            rule(k, first),
            "bench",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        first.get_or_insert(row.id);
    }
}

/// `n` synthetic customers: traits, 3 page views, 0-3 orders (categories, revenue), email opens,
/// spread over the last 400 days; aggregates, daily rows and retained events consistent.
async fn seed_customers(pool: &PgPool, tenant: &str, n: usize) {
    let started = Instant::now();
    let step = 100_000;
    for from in (1..=n).step_by(step) {
        let to = (from + step - 1).min(n);
        let (from, to) = (from as i64, to as i64);
        let q = |sql: &'static str| sqlx::query(sql).bind(tenant).bind(from).bind(to);
        q("INSERT INTO customer_activity (tenant_id, customer_id, events_total, orders_total, revenue_total,
               first_seen_at, last_seen_at, traits, last_order_at, last_order_value, categories, stage)
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 4 + i % 4, i % 4, (i % 4) * 30,
               now() - make_interval(days => (i % 400)::int + 30), now() - make_interval(days => (i % 400)::int),
               jsonb_build_object('plan', (ARRAY['free','pro','gold'])[1 + i % 3],
                                  'country', (ARRAY['FR','DE','US','GB','ES'])[1 + i % 5], 'age', 18 + i % 60),
               CASE WHEN i % 4 > 0 THEN now() - make_interval(days => (i % 400)::int) END, 30,
               CASE WHEN i % 4 > 0 THEN ARRAY[(ARRAY['shoes','bags','music'])[1 + i % 3]] ELSE '{}' END,
               CASE WHEN i % 4 = 0 THEN 'prospect' WHEN i % 400 <= 90 THEN 'active' WHEN i % 400 <= 180 THEN 'at_risk' ELSE 'lapsed' END
           FROM generate_series($2::int8, $3::int8) i")
        .execute(pool)
        .await
        .unwrap();
        q("INSERT INTO daily_activity (tenant_id, customer_id, name, day, events, total)
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'Page Viewed', (now() - make_interval(days => (i % 400)::int + 30))::date, 3, 0
           FROM generate_series($2::int8, $3::int8) i
           UNION ALL
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'Order Completed', (now() - make_interval(days => (i % 400)::int + o * 7))::date, 1, 30
           FROM generate_series($2::int8, $3::int8) i, generate_series(0, 2) o WHERE o < i % 4
           UNION ALL
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'Email Opened', (now() - make_interval(days => (i % 20)::int))::date, 1, 0
           FROM generate_series($2::int8, $3::int8) i WHERE i % 2 = 0")
        .execute(pool)
        .await
        .unwrap();
        q("INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'pv-' || i || '-' || k, 'Page Viewed',
                  now() - make_interval(days => (i % 400)::int + 30), jsonb_build_object('path', '/p' || k)
           FROM generate_series($2::int8, $3::int8) i, generate_series(1, 3) k
           UNION ALL
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'oc-' || i || '-' || o, 'Order Completed',
                  now() - make_interval(days => (i % 400)::int + o * 7),
                  jsonb_build_object('revenue', 30, 'products', jsonb_build_array(jsonb_build_object('category', (ARRAY['shoes','bags','music'])[1 + i % 3])))
           FROM generate_series($2::int8, $3::int8) i, generate_series(0, 2) o WHERE o < i % 4
           UNION ALL
           SELECT $1, lpad(to_hex(i), 32, '0')::uuid, 'eo-' || i, 'Email Opened', now() - make_interval(days => (i % 20)::int), '{}'::jsonb
           FROM generate_series($2::int8, $3::int8) i WHERE i % 2 = 0")
        .execute(pool)
        .await
        .unwrap();
        eprintln!(
            "  seeded {to} of {n} customers ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
}

async fn fresh_database(server: &str) -> PgPool {
    let admin = PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query("DROP DATABASE IF EXISTS crm_bench_segmentation")
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE crm_bench_segmentation")
        .execute(&admin)
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{server}/crm_bench_segmentation?sslmode=disable"))
        .await
        .unwrap();
    crm_service::db::migrate(&pool, &crm_segmentation::MIGRATOR)
        .await
        .unwrap();
    pool
}

async fn streaming(pool: &PgPool, customers: usize, events: usize) {
    let tenant = TenantId::parse("stream").unwrap();
    println!("\n== Streaming evaluation: 100 segments, {customers} customers, {events} events ==");
    seed_customers(pool, tenant.as_str(), customers).await;
    define_segments(pool, &tenant, 100).await;
    let catalog = Arc::new(Catalog::default());
    let handler = SegmentationHandler::new(pool.clone(), Arc::clone(&catalog));
    let meta = MessageMeta {
        topic: Topic::Events,
        partition: 0,
        offset: 0,
        group: "bench".into(),
    };
    let mut rng = StdRng::seed_from_u64(4);
    let names = [
        "Page Viewed",
        "Order Completed",
        "Email Opened",
        "Product Viewed",
    ];
    let mut event = |n: usize| {
        let i = rng.random_range(1..=customers);
        let customer = Uuid::from_u128(i as u128);
        let mut e = Envelope::domain(tenant.clone(), "track", customer, "bench");
        let name = names[n % names.len()];
        e.name = Some(name.into());
        if name == "Order Completed" {
            e.properties
                .insert("revenue".into(), json!(rng.random_range(5..200)));
            e.properties
                .insert("products".into(), json!([{"category": CATEGORIES[n % 3]}]));
        }
        BatchItem {
            envelope: e,
            meta: meta.clone(),
            headers: Default::default(),
        }
    };
    // One message per transaction (`Handler::handle`; the path before polls were batched).
    let mut latencies = Vec::with_capacity(events);
    for n in 0..events + 200 {
        let b = event(n);
        let started = Instant::now();
        handler.handle(&b.envelope, &b.meta).await.unwrap();
        if n >= 200 {
            latencies.push(started.elapsed()); // the first 200 warm caches and connections
        }
    }
    latencies.sort();
    println!(
        "one message at a time, per event (dedupe + aggregates + facts + evaluation + writes + commit): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    // A poll of one message (a lone event on a quiet topic), through the batched path, its
    // statements timed.
    let mut lone = Vec::with_capacity(events);
    let times = StatementTimes::default();
    let tracing_statements = {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        // Only sqlx's statement events, and only on this thread while the loop below runs on
        // it, so that nothing else of the bench is traced.
        let only = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::DEBUG);
        let layer = times.clone().with_filter(only);
        tracing::dispatcher::set_default(&tracing_subscriber::registry().with(layer).into())
    };
    for n in 0..events {
        let b = event(n);
        let started = Instant::now();
        assert!(handler.handle_batch(&[b]).await.unwrap());
        lone.push(started.elapsed());
    }
    drop(tracing_statements);
    let lone_total: Duration = lone.iter().sum();
    lone.sort();
    println!(
        "a poll of one message: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        percentile(&lone, 0.50),
        percentile(&lone, 0.95),
        percentile(&lone, 0.99)
    );
    print_statements(&times, events, lone_total);
    // A busy topic: polls of 500 (the consumer's default largest poll); each event's share
    // of its poll's time, and the polls themselves.
    let polled: Vec<BatchItem> = (0..events * 4).map(&mut event).collect();
    let (mut share, mut polls) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for poll in polled.chunks(500) {
        let t = Instant::now();
        assert!(handler.handle_batch(poll).await.unwrap());
        let took = t.elapsed();
        polls.push(took);
        share.extend(std::iter::repeat_n(took / poll.len() as u32, poll.len()));
    }
    let rate = polled.len() as f64 / started.elapsed().as_secs_f64();
    share.sort();
    polls.sort();
    println!(
        "polls of 500: per event p50 {:.3} ms, p99 {:.3} ms; a poll p50 {:.0} ms, p99 {:.0} ms; {rate:.0} events/s",
        percentile(&share, 0.50),
        percentile(&share, 0.99),
        percentile(&polls, 0.50),
        percentile(&polls, 0.99)
    );

    // The in-memory part alone: all 100 segments evaluated for loaded customers.
    let mut conn = pool.acquire().await.unwrap();
    let model = catalog.get(&mut conn, &tenant).await.unwrap();
    let ids: Vec<Uuid> = (1..=2000u128).map(Uuid::from_u128).collect();
    let mut facts = load_many(&mut conn, &tenant, &ids, &model, Utc::now(), false)
        .await
        .unwrap();
    let mut eval = Vec::with_capacity(facts.len());
    for f in &mut facts {
        let started = Instant::now();
        evaluate_customer(&model, f, &Change::All, Utc::now());
        eval.push(started.elapsed());
    }
    eval.sort();
    println!(
        "evaluation alone, all 100 segments + stage + recheck time: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&eval, 0.5),
        percentile(&eval, 0.99)
    );
    // Reference in the same run: a primary-key read of one customer row.
    let mut reads = Vec::new();
    for id in ids.iter().take(1000) {
        let started = Instant::now();
        sqlx::query("SELECT * FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .unwrap();
        reads.push(started.elapsed());
    }
    reads.sort();
    let reference = percentile(&reads, 0.99);
    println!(
        "reference: primary-key read of one customer row: p50 {:.3} ms, p99 {reference:.3} ms",
        percentile(&reads, 0.5),
    );
    println!(
        "p99 ratios to the key read: one at a time {:.1}x, a poll of one {:.1}x, polls of 500 per event {:.1}x",
        percentile(&latencies, 0.99) / reference,
        percentile(&lone, 0.99) / reference,
        percentile(&share, 0.99) / reference
    );
}

async fn full_recompute(pool: &PgPool, customers: usize) {
    let tenant = TenantId::parse("recompute").unwrap();
    println!("\n== Full recompute: 50 segments over {customers} customers ==");
    seed_customers(pool, tenant.as_str(), customers).await;
    define_segments(pool, &tenant, 50).await;
    let catalog = Catalog::default();
    // The outbox rows the recompute writes are the ones after this id.
    let before: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap();
    let started = Instant::now();
    let applied = recompute(pool, &catalog, &tenant, None, Utc::now())
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "first recompute: {} customers in {elapsed:.1} s = {:.0} customers/s ({:.0} customer-segment evaluations/s); {} entries, {} exits, {} stage changes written and published",
        applied.customers,
        applied.customers as f64 / elapsed,
        applied.customers as f64 * 50.0 / elapsed,
        applied.entered,
        applied.exited,
        applied.stage_changes
    );
    // The reference for that figure: PostgreSQL's own bulk load of the same rows (the
    // memberships and outbox rows written) with COPY from a file, in the same run.
    let (outbox, messages): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(message_count), 0)::bigint FROM outbox WHERE id > $1",
    )
    .bind(before)
    .fetch_one(pool)
    .await
    .unwrap();
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for sql in [
        "CREATE TEMP TABLE m_copy (LIKE memberships INCLUDING ALL)",
        "CREATE TEMP TABLE o_copy (LIKE outbox INCLUDING ALL)",
        "COPY (SELECT * FROM memberships WHERE tenant_id = 'recompute') TO '/tmp/crm_bench_m.copy'",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    sqlx::query(&format!(
        "COPY (SELECT * FROM outbox WHERE id > {before}) TO '/tmp/crm_bench_o.copy'"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let loading = Instant::now();
    for sql in [
        "COPY m_copy FROM '/tmp/crm_bench_m.copy'",
        "COPY o_copy FROM '/tmp/crm_bench_o.copy'",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    let load = loading.elapsed().as_secs_f64();
    drop(conn);
    println!(
        "reference: COPY of the same {members} memberships and {outbox} outbox rows ({messages} messages) from a file: {load:.1} s ({:.0} rows/s); the recompute took {:.2}x that",
        (members + outbox) as f64 / load,
        elapsed / load
    );
    let started = Instant::now();
    let again = recompute(pool, &catalog, &tenant, None, Utc::now())
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "second recompute (nothing to change): {} customers in {elapsed:.1} s = {:.0} customers/s; {} entries, {} exits",
        again.customers,
        again.customers as f64 / elapsed,
        again.entered,
        again.exited
    );
}

fn cdnow_fit() {
    println!("\n== CDNOW fit (BG/NBD + Gamma-Gamma), calibration end 1997-09-30 ==");
    let data = std::env::var_os("CRM_REFERENCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
        .join("cdnow_sample.csv");
    let Ok(file) = std::fs::File::open(&data) else {
        println!("{} not found; skipped", data.display());
        return;
    };
    let started = Instant::now();
    let transactions = read_transactions(file).unwrap();
    let end = chrono::NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let summaries = summarise(&transactions, end);
    let model = ValueModel::fit(&summaries).unwrap();
    let ours = started.elapsed().as_secs_f64() * 1000.0;
    let g = model.gamma_gamma.unwrap();
    println!(
        "crm-segmentation: read + summarise + both fits in {ours:.1} ms (r {:.4}, alpha {:.4}, a {:.4}, b {:.4}, p {:.4}, q {:.4}, v {:.4})",
        model.bgnbd.r, model.bgnbd.alpha, model.bgnbd.a, model.bgnbd.b, g.p, g.q, g.v
    );
    let script = format!(
        r#"
import time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
t0 = time.perf_counter()
df = pd.read_csv("{}", dtype={{"customer_id": str, "date": str}})
df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
s = summary_data_from_transaction_data(df, "customer_id", "date", monetary_value_col="amount", observation_period_end="1997-09-30", freq="D")
s["recency"] /= 7; s["T"] /= 7
bg = BetaGeoFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])
r = s[s["frequency"] > 0]
gg = GammaGammaFitter(penalizer_coef=0.0).fit(r["frequency"], r["monetary_value"])
ms = (time.perf_counter() - t0) * 1000
p = bg.params_; q = gg.params_
print(f"{{ms:.1f}} {{p['r']:.4f}} {{p['alpha']:.4f}} {{p['a']:.4f}} {{p['b']:.4f}} {{q['p']:.4f}} {{q['q']:.4f}} {{q['v']:.4f}}")
"#,
        data.display()
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<&str> = text.split_whitespace().collect();
            let theirs: f64 = fields
                .first()
                .and_then(|f| f.parse().ok())
                .unwrap_or(f64::NAN);
            println!("lifetimes (Python, same run): read + summarise + both fits in {theirs:.1} ms (r, alpha, a, b, p, q, v = {})", fields[1..].join(", "));
            println!("ratio: crm-segmentation is {:.1}x faster", theirs / ours);
        }
        Ok(out) => println!(
            "lifetimes not usable here: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("python3 not found ({e}); lifetimes comparison skipped"),
    }
}

#[tokio::main]
async fn main() {
    let server = std::env::var("CRM_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let pool = fresh_database(&server).await;
    streaming(
        &pool,
        env_usize("STREAM_CUSTOMERS", 100_000),
        env_usize("STREAM_EVENTS", 5_000),
    )
    .await;
    full_recompute(&pool, env_usize("RECOMPUTE_CUSTOMERS", 1_000_000)).await;
    cdnow_fit();
    pool.close().await;
    let admin = PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    let _ = sqlx::query("DROP DATABASE IF EXISTS crm_bench_segmentation")
        .execute(&admin)
        .await;
}
