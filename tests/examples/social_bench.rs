//! Benchmark of social listening (issue 18's performance section), beside the broker's own
//! produce→consume round trip of one message measured in the same run:
//!
//! 1. one mention at a time: a signed X webhook call through the gateway, until its `Social
//!    Mention` is on the author's timeline in identity (signature check, mapping, term
//!    matching, sentiment, the outbox, the broker, identity's resolution), p50/p99 over
//!    `BENCH_MENTIONS_ONE` calls (default 100);
//! 2. mentions per second: `BENCH_MENTIONS` mentions (default 4,000) in calls of 20, 4 calls in
//!    flight, from 500 authors, until every one is on a timeline.
//!
//! Run: `cargo run --release -p crm-tests --example social_bench` with PostgreSQL, Redis and a
//! broker on 127.0.0.1:9092, as `scripts/test` sets up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use crm_kafka::Producer;
use crm_tests::{part_config, test_consumer, unique_id, Suite};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "x-consumer-secret-for-the-bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "{name:<48} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    (p50, p99)
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

const TEXTS: [&str; 6] = [
    "@Acme me encantan las botas nuevas, muy cómodas",
    "@Acme el pedido llegó tarde y la caja rota, fatal",
    "@Acme love the new boots, super comfy!",
    "@Acme worst customer service ever, still waiting for a refund",
    "@Acme ¿tenéis tienda en Valencia?",
    "@Acme the boots are nice but shipping took forever",
];

/// An Account Activity call with one tweet per `(id, author)`.
fn call(tweets: &[(String, String)]) -> Vec<u8> {
    let events: Vec<Value> = tweets
        .iter()
        .enumerate()
        .map(|(i, (id, author))| {
            json!({"created_at": "Fri Dec 04 10:00:00 +0000 2026", "id_str": id,
                   "text": TEXTS[i % TEXTS.len()], "user": {"id_str": "7", "name": "Bench",
                   "screen_name": author},
                   "entities": {"hashtags": [], "user_mentions": [{"screen_name": "Acme"}]}})
        })
        .collect();
    serde_json::to_vec(&json!({"for_user_id": "1", "tweet_create_events": events})).unwrap()
}

async fn post(suite: &Suite, url: &str, body: Vec<u8>) {
    let response = suite
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-twitter-webhooks-signature", signature(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

async fn on_timelines(identity: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM timeline WHERE name = 'Social Mention'")
        .fetch_one(identity)
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let one = env_usize("BENCH_MENTIONS_ONE", 100);
    let many = env_usize("BENCH_MENTIONS", 4_000);
    let suite = Suite::start().await;
    let run = unique_id();
    let identity = suite.identity_pool().await;

    // Reference: the broker's produce→consume round trip of one message. The consumer is
    // dropped before the rest, so it never outlives its poll interval.
    let broker = {
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
        let mut samples = Vec::new();
        for i in 0..one {
            let started = Instant::now();
            producer
                .send_raw(&topic, &i.to_string(), b"x", &none)
                .await
                .unwrap();
            consumer.recv().await.unwrap();
            samples.push(started.elapsed());
        }
        samples
    };

    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(&json!({"name": format!("X {run}"), "network": "x", "account": "Acme",
                         "secret": SECRET, "tracked": {"handles": ["acme"], "keywords": ["botas", "boots"]}})),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );

    // 1. One mention at a time, to the timeline.
    let mut samples = Vec::new();
    for i in 0..one {
        let before = on_timelines(&identity).await;
        let started = Instant::now();
        post(
            &suite,
            &url,
            call(&[(format!("1{i:08}"), format!("solo_{i}"))]),
        )
        .await;
        loop {
            if on_timelines(&identity).await > before {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mention {i} lost"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    println!("1. one mention, webhook call to the author's timeline");
    let (bp50, bp99) = report("   broker produce→consume (reference)", broker);
    let (p50, p99) = report("   signed call → Social Mention on the timeline", samples);
    println!(
        "   ratio to the broker round trip: p50 {:.1}x, p99 {:.1}x",
        p50.as_secs_f64() / bp50.as_secs_f64(),
        p99.as_secs_f64() / bp99.as_secs_f64()
    );

    // 2. Mentions per second.
    let before = on_timelines(&identity).await;
    let calls: Vec<Vec<u8>> = (0..many)
        .collect::<Vec<_>>()
        .chunks(20)
        .map(|chunk| {
            let tweets: Vec<(String, String)> = chunk
                .iter()
                .map(|i| (format!("2{i:08}"), format!("fan_{}", i % 500)))
                .collect();
            call(&tweets)
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(calls)
        .map(|body| {
            let (suite, url) = (&suite, &url);
            async move { post(suite, url, body).await }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    let accepted = started.elapsed();
    loop {
        let n = on_timelines(&identity).await - before;
        if n >= many as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {n} of {many} mentions reached the timelines"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    println!("2. mentions per second ({many} mentions, calls of 20, 4 in flight, 500 authors)");
    println!(
        "   webhook calls taken: {:.0} mentions/s ({:.2} s)",
        many as f64 / accepted.as_secs_f64(),
        accepted.as_secs_f64()
    );
    println!(
        "   on the timelines: {:.0} mentions/s ({:.2} s)",
        many as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "   the broker's one-message round trip bounds a serial pipe at {:.0} messages/s",
        1.0 / bp50.as_secs_f64()
    );
    suite.stop().await;
}
