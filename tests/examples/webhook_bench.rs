//! Benchmark: webhook deliveries per second from the gateway's delivery loop to a local
//! receiver (an in-process HTTP server answering 204), beside the receiver's ceiling measured
//! in the same run: the same number of signed posts straight from one keep-alive HTTP client
//! at the same concurrency, with no queue, no database and no SSRF guard.
//!
//! The deliveries are queued straight into `webhook_deliveries` (as the topics' consumer
//! queues them), so the figure is the delivery loop's: claim with `SKIP LOCKED`, resolve and
//! pin the target, sign, post, record the attempt.
//!
//! Run: `cargo run --release -p crm-tests --example webhook_bench` (with PostgreSQL, Redis and a
//! broker up, as for `scripts/test`). `WEBHOOK_BENCH_N` (default 5000) deliveries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_tests::{test_webhook_settings, Suite};
use crm_webhooks::signing::{signature_header, Secret};
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::main]
async fn main() {
    let n: i64 = std::env::var("WEBHOOK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let concurrency = test_webhook_settings().concurrency;
    let suite = Suite::start().await;

    // The receiver: counts and answers 204.
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let body = serde_json::to_vec(&json!({
        "type": "segment.entered", "timestamp": "2026-12-03T10:00:00Z",
        "data": {"id": "e", "tenant_id": "acme", "kind": "segment.entered",
                 "customer_id": "0190a0a0-0000-7000-8000-000000000001",
                 "properties": {"segment_id": "vip", "segment_name": "VIP", "version": 3,
                                "reason": "event"}}
    }))
    .unwrap();

    // Reference: signed posts from one keep-alive client, same concurrency.
    let secret = Secret::generate();
    let client = reqwest::Client::new();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let (client, url, body, secret) = (&client, &url, &body, &secret);
            async move {
                let id = format!("msg_ref{i}");
                let ts = chrono::Utc::now().timestamp();
                let r = client
                    .post(url)
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header(
                        "webhook-signature",
                        signature_header(std::slice::from_ref(secret), &id, ts, body),
                    )
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
            }
        })
        .await;
    let reference = n as f64 / started.elapsed().as_secs_f64();

    // The delivery loop: an endpoint, and n deliveries queued at once.
    let r = suite
        .post(
            &suite.key,
            "/v1/webhooks",
            Some(&json!({"url": url, "event_types": ["*"]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let endpoint: uuid::Uuid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payload = String::from_utf8(body).unwrap();
    let before = hits.load(Ordering::Relaxed);
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, payload)
         SELECT 'acme', gen_random_uuid(), $1, 'bench-' || i, 'segment.entered', $2
         FROM generate_series(1, $3) AS i",
    )
    .bind(endpoint)
    .bind(&payload)
    .bind(n)
    .execute(&suite.gateway_pool)
    .await
    .unwrap();
    loop {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'delivered'",
        )
        .bind(endpoint)
        .fetch_one(&suite.gateway_pool)
        .await
        .unwrap();
        if delivered == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{delivered} of {n} delivered after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    let received = hits.load(Ordering::Relaxed) - before;
    println!("webhook deliveries: {n} in {elapsed:.2} s = {rate:.0} deliveries/s ({received} received, concurrency {concurrency})");
    println!("reference, signed posts from one keep-alive client: {reference:.0} posts/s");
    println!("ratio: {:.2}", rate / reference);
    assert_eq!(received, n as u64, "each delivery arrived exactly once");
    suite.stop().await;
}
