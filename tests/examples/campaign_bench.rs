//! Benchmark of the campaign part (issue 14's performance section), each figure beside a
//! reference measured in the same run:
//!
//! 1. trigger to SMTP accept: `POST /v1/events` of an event that starts a journey whose first
//!    node sends an email, until the local SMTP server accepted it, p50/p99 over N events one
//!    at a time (`BENCH_TRIGGERS`, default 200), beside the broker's own produce→consume round
//!    trip of one message;
//! 2. sends per second through the send gate (every message runs the whole gate at delivery:
//!    consent, suppression, control groups, caps, quiet hours) and the renderer to the local SMTP
//!    server (`BENCH_SENDS`, default 3,000), beside a raw lettre loop of the same number of
//!    messages to the same server with the same concurrency (target: at least 50% of it);
//! 3. 100,000 customers (`BENCH_TIMERS`) waiting on timers due in the same minute: the time until
//!    every timer fired (target: within one minute), and a check that each made exactly one
//!    message.
//!
//! Run: `cargo run --release -p crm-tests --example campaign_bench` with PostgreSQL, Redis, a
//! broker on 127.0.0.1:9092 and a local SMTP server (`CRM_TEST_SMTP_URL`, default
//! `smtp://127.0.0.1:2526`, writing to `CRM_TEST_MAIL_DIR`), as `scripts/test` sets up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crm_campaign::channels::deliver::{Delivery, Tracking};
use crm_campaign::channels::guard::Guard;
use crm_campaign::channels::smtp::Smtp;
use crm_campaign::domain::channels::Settings;
use crm_campaign::domain::journeys::lifecycle::Action;
use crm_campaign::domain::templates::{Limits, Parts};
use crm_campaign::domain::tracking::TrackingKey;
use crm_campaign::journeys::{timers, Runner};
use crm_campaign::store::messages::{self, GateInputs, NewMessage, Start};
use crm_campaign::store::templates::Template;
use crm_campaign::store::{channels, journeys, templates};
use crm_envelope::TenantId;
use crm_kafka::Producer;
use crm_tests::{part_config, test_consumer, unique_id, Suite};
use futures::StreamExt;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn smtp_url() -> String {
    std::env::var("CRM_TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:2526".to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "{name:<44} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    (p50, p99)
}

/// A fresh campaign database with a sender and a template.
async fn campaign_db(tag: &str) -> (sqlx::PgPool, TenantId) {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_{tag}", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 12).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let t = TenantId::parse("bench").unwrap();
    let mut c = pool.acquire().await.unwrap();
    let sender = Settings::Email {
        from: "news@bench.test".into(),
        from_name: Some("Bench".into()),
        reply_to: None,
    };
    channels::put(&mut c, &t, "mail", &sender, None, "bench")
        .await
        .unwrap();
    let template = Template {
        key: "hello".into(),
        channel: "email".into(),
        message_type: "marketing".into(),
        purpose: "marketing".into(),
        parts: Parts {
            subject: "Hello {{ customer.first_name }}".into(),
            html: Some(
                "<p>Hello {{ customer.first_name }}</p><a href=\"https://shop.test/x\">Shop</a>"
                    .into(),
            ),
            text: Some("Hello {{ customer.first_name }}".into()),
        },
        version: 1,
        updated_at: Utc::now(),
    };
    templates::put(&mut c, &t, &template, "bench")
        .await
        .unwrap();
    (pool, t)
}

/// `n` contacts with an address, a first name and marketing consent, in one statement.
async fn contacts(pool: &sqlx::PgPool, t: &TenantId, n: usize, run: &str) {
    sqlx::query(
        "INSERT INTO contacts (tenant_id, customer_id, email, traits, traits_at, consents)
         SELECT $1, uuidv7_like.id, 'c' || g || '-' || $3 || '@bench.test',
                jsonb_build_object('first_name', 'Ana'), now(),
                jsonb_build_object('marketing:email', jsonb_build_object('granted', true, 'at', now()))
         FROM generate_series(1, $2) g,
              LATERAL (SELECT md5(g::text || $3)::uuid AS id) uuidv7_like",
    )
    .bind(t)
    .bind(n as i64)
    .bind(run)
    .execute(pool)
    .await
    .unwrap();
}

async fn trigger_to_smtp(n: usize) {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    // Reference: the broker's produce→consume round trip of one message.
    let kafka = part_config(&suite.id, "bench", &suite.redis).kafka;
    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("bench").unwrap())
        .await
        .unwrap();
    let topic = suite.topic("crm.interactions.v1.dlq");
    let consumer = test_consumer(&topic);
    let none = HashMap::new();
    producer.send_raw(&topic, "w", b"w", &none).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    let mut broker = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        producer
            .send_raw(&topic, &i.to_string(), b"x", &none)
            .await
            .unwrap();
        consumer.recv().await.unwrap();
        broker.push(started.elapsed());
    }

    let put = |path: &'static str, body: serde_json::Value| {
        let suite = &suite;
        async move {
            let (status, b) = suite.admin_call(Method::PUT, path, Some(&body)).await;
            assert_eq!(status, 200, "{b}");
        }
    };
    put(
        "/v1/channels/mail",
        json!({"settings": {"kind": "email", "from": "news@bench.test"}}),
    )
    .await;
    put(
        "/v1/templates/hello",
        json!({"channel": "email", "subject": "Hello {{ customer.first_name }}",
               "html": "<p>Hello</p><a href=\"https://shop.test/x\">x</a>", "text": "Hello"}),
    )
    .await;
    let (status, j) = suite
        .admin_call(
            Method::POST,
            "/v1/journeys",
            Some(&json!({"name": "Bench", "time_zone": "UTC",
                "trigger": {"event": {"name": "Bench Triggered"}},
                "entry": {"reentry": "after_exit"},
                "start": "hello",
                "nodes": {"hello": {"send": {"template": "hello", "channel": "email",
                                             "transactional": true, "next": "done"}},
                          "done": "exit"}})),
        )
        .await;
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_str().unwrap().to_owned();
    suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    let run = unique_id();
    let users: Vec<String> = (0..n).map(|i| format!("b{i}-{run}")).collect();
    let identifies: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"kind": "identify", "identity": {"user_id": u, "email": format!("{u}@bench.test")},
            "traits": {"first_name": "Ana", "consent": {"purpose": "marketing", "channel": "email", "granted": true}}}))
        .collect();
    for chunk in identifies.chunks(100) {
        suite.ingest(&json!(chunk)).await;
    }
    // Every profile reached campaign before the triggers are timed.
    loop {
        let (known,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM contacts WHERE email LIKE $1 AND consents ? 'marketing:email'",
        )
        .bind(format!("%-{run}@bench.test"))
        .fetch_one(&campaign)
        .await
        .unwrap();
        if known as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut samples = Vec::new();
    for u in &users {
        let address = format!("{u}@bench.test");
        let started = Instant::now();
        suite
            .ingest(
                &json!({"kind": "track", "name": "Bench Triggered", "identity": {"user_id": u}}),
            )
            .await;
        loop {
            let sent: Option<(String,)> = sqlx::query_as(
                "SELECT status FROM messages WHERE address = $1 AND status = 'sent'",
            )
            .bind(&address)
            .fetch_optional(&campaign)
            .await
            .unwrap();
            if sent.is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no mail for {u}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    println!("1. trigger to SMTP accept");
    let (bp50, bp99) = report("   broker produce→consume (reference)", broker);
    let (p50, p99) = report("   POST /v1/events → SMTP accepted", samples);
    println!(
        "   ratio to the broker round trip: p50 {:.1}x, p99 {:.1}x",
        p50.as_secs_f64() / bp50.as_secs_f64(),
        p99.as_secs_f64() / bp99.as_secs_f64()
    );
    suite.stop().await;
}

async fn sends_per_second(n: usize) {
    let (pool, t) = campaign_db("sends").await;
    let run = unique_id();
    contacts(&pool, &t, n, &run).await;
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT customer_id, email FROM contacts WHERE tenant_id = $1")
            .bind(&t)
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut c = pool.acquire().await.unwrap();
    let now = Utc::now();
    for (customer, email) in &rows {
        let key = format!("{customer}:hello:1");
        let m = NewMessage {
            send_key: &key,
            customer: *customer,
            journey: Some((Uuid::nil(), *customer, "hello")),
            channel: "email",
            template: "hello",
            message_type: "marketing",
            transactional: false,
            priority: 0,
            address: Some(email),
            gate: GateInputs {
                purpose: "marketing",
                holdout_percent: 0,
                time_zone: "UTC",
                quiet: None,
            },
            offer_placement: None,
            survey_id: None,
        };
        // The whole gate runs at delivery for these.
        messages::record(&mut c, &t, &m, Start::AwaitingProfile { not_before: now })
            .await
            .unwrap();
    }
    drop(c);
    let concurrency = 16;
    let delivery = Delivery {
        pool: pool.clone(),
        smtp: Smtp::new(&smtp_url()).unwrap(),
        guard: Guard {
            allow_private: true,
            timeout: Duration::from_secs(5),
        },
        tracking: Tracking {
            base_url: "http://crm.test".into(),
            key: TrackingKey::new(&[9u8; 32]).unwrap(),
            ttl: chrono::Duration::days(30),
        },
        limits: Limits::default(),
        relay: Arc::new(tokio::sync::Notify::new()),
        concurrency,
        lease: chrono::Duration::seconds(120),
        metrics: None,
        catalogue: crm_campaign::offers::cache::Catalogue::new(Duration::from_secs(5)),
    };
    let started = Instant::now();
    let mut sent = 0;
    loop {
        let n = delivery.deliver_batch(200).await.unwrap();
        if n == 0 {
            break;
        }
        sent += n;
    }
    let gated = started.elapsed();
    let (ok,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE status = 'sent'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ok as usize, n, "every message sent");

    // Reference: lettre alone, same server, same concurrency, the same number of messages.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp_url())
        .unwrap()
        .build();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let transport = transport.clone();
            let run = run.clone();
            async move {
                let m = Message::builder()
                    .from("news@bench.test".parse().unwrap())
                    .to(format!("raw{i}-{run}@bench.test").parse().unwrap())
                    .subject("Hello Ana")
                    .body("Hello Ana".to_owned())
                    .unwrap();
                transport.send(m).await.unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let raw = started.elapsed();
    let (g, r) = (
        sent as f64 / gated.as_secs_f64(),
        n as f64 / raw.as_secs_f64(),
    );
    println!(
        "2. sends per second to the local SMTP server ({n} messages, concurrency {concurrency})"
    );
    println!("   raw lettre loop (reference)                {r:>10.0} /s");
    println!("   through the gate, rendered and tracked     {g:>10.0} /s");
    println!(
        "   ratio: {:.0}% of the raw loop (target: at least 50%)",
        100.0 * g / r
    );
}

async fn timers_in_one_minute(n: usize) {
    let (pool, t) = campaign_db("timers").await;
    let run = unique_id();
    contacts(&pool, &t, n, &run).await;
    let mut c = pool.acquire().await.unwrap();
    let definition = json!({"name": "Bench wait", "time_zone": "UTC",
        "trigger": {"event": {"name": "Bench"}}, "start": "wait",
        "nodes": {"wait": {"wait": {"minutes": 60, "next": "hello"}},
                  "hello": {"send": {"template": "hello", "channel": "email", "next": "done"}},
                  "done": "exit"}});
    let j = journeys::create(&mut c, &t, "Bench wait", &definition, "bench")
        .await
        .unwrap();
    journeys::act(&mut c, &t, j.id, Action::Publish, "bench")
        .await
        .unwrap();
    drop(c);
    // Every customer waits in the journey; all timers are due in the same minute.
    let due = Utc::now();
    sqlx::query(
        "WITH i AS (
             INSERT INTO journey_instances (tenant_id, id, journey_id, version, customer_id,
                 entry_key, node, entered_at)
             SELECT tenant_id, gen_random_uuid(), $2, 1, customer_id, customer_id::text, 'wait',
                 now() - interval '1 hour'
             FROM contacts WHERE tenant_id = $1
             RETURNING tenant_id, id)
         INSERT INTO journey_timers (tenant_id, instance_id, due_at, node)
         SELECT tenant_id, id, $3, 'hello' FROM i",
    )
    .bind(&t)
    .bind(j.id)
    .bind(due)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let runner = Runner::default();
    let workers = 4;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, runner) = (pool.clone(), runner.clone());
            tokio::spawn(async move {
                loop {
                    let (n, _) = timers::fire_due(&pool, &runner, Utc::now(), 200)
                        .await
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let took = started.elapsed();
    let (messages, keys, left): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(DISTINCT send_key) FROM messages),
                (SELECT count(*) FROM journey_timers)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("3. {n} customers on timers due in the same minute ({workers} workers)");
    println!(
        "   all fired in {:.1} s ({:.0} timers/s); within one minute: {}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        if took <= Duration::from_secs(60) {
            "yes"
        } else {
            "NO"
        }
    );
    println!("   messages {messages}, distinct send keys {keys}, timers left {left}");
    assert_eq!(
        (messages as usize, keys as usize, left),
        (n, n, 0),
        "one message per timer"
    );
}

#[tokio::main]
async fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "1" {
        trigger_to_smtp(env_or("BENCH_TRIGGERS", 200)).await;
    }
    if only.is_empty() || only == "2" {
        sends_per_second(env_or("BENCH_SENDS", 3000)).await;
    }
    if only.is_empty() || only == "3" {
        timers_in_one_minute(env_or("BENCH_TIMERS", 100_000)).await;
    }
}
