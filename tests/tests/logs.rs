//! Personal data stays out of logs: every part runs in-process with logging at debug level into
//! one buffer while a pipeline sends emails, phones, names, handles and addresses (identify,
//! track, a merge, an invalid email, a rejected event, a lookup by email, an email in a query
//! string, an erasure); afterwards the logs are searched for each of those values, as sent and as
//! standardised, and hold none of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use crm_tests::{eventually, unique_id, Suite};
use serde_json::{json, Value};

/// Everything every part logs, in one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRETS: [&str; 10] = [
    "logtest.ana@example.org",
    "LogTest.Ana@Example.org",
    "+49 151 2345 6789",
    "4915123456789",
    "Anaïs Logtestova",
    "Logtestova",
    "12 Logtest Street",
    "logtest_ana",
    "logtest.ben@example.org",
    "not-an-email-logtest@@",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_run_logs_no_personal_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info,librdkafka=info",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let suite_owned = Suite::start().await;
    let suite = &suite_owned;
    let post = |body: Value| async move { suite.post_events(&suite.key, &body).await };

    let r = post(json!({"id": unique_id(), "kind": "identify",
        "identity": {"user_id": "log-ana", "email": "LogTest.Ana@Example.org", "phone": "+49 151 2345 6789",
                     "handles": [{"network": "twitter", "handle": "@logtest_ana"}]},
        "traits": {"name": "Anaïs Logtestova", "city": "Berlin"}}))
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let r = post(
        json!({"id": unique_id(), "kind": "track", "name": "Order Completed",
        "identity": {"user_id": "log-ana"},
        "properties": {"order_id": "o-1", "total": 20, "shipping_address": "12 Logtest Street"}}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let r = post(json!({"id": unique_id(), "kind": "identify",
        "identity": {"anonymous_id": "log-ben-device", "email": "logtest.ben@example.org"}}))
    .await;
    assert_eq!(r.status().as_u16(), 202);
    // An invalid email (kept with a flag), and an event the gateway refuses.
    let r = post(json!({"id": unique_id(), "kind": "identify",
        "identity": {"user_id": "log-cid", "email": "not-an-email-logtest@@x"}}))
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let r = post(json!({"id": unique_id(), "kind": "nonsense",
        "identity": {"user_id": "log-dan", "email": "logtest.ana@example.org"}}))
    .await;
    assert_eq!(r.status().as_u16(), 400);
    // The device that gave Ben's email logs in as Ana: the two merge.
    let r = post(json!({"id": unique_id(), "kind": "identify",
        "identity": {"user_id": "log-ana", "anonymous_id": "log-ben-device"}}))
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let ana = eventually("the merge", || async {
        let ana = suite.customer_by_user("log-ana").await?;
        let ben = suite.customer_by("anonymous_id", "log-ben-device").await?;
        (ana["id"] == ben["id"]).then_some(ana)
    })
    .await;
    let id = ana["id"].as_str().unwrap().to_owned();
    suite.wait_for_customer("log-cid", |_| true).await;

    // Lookups: by email in a body; an email in a query string is refused.
    let found = suite.customer_by("email", "logtest.ana@example.org").await;
    assert_eq!(found.unwrap()["id"], id.as_str());
    let r = suite
        .get(
            Some(&suite.key),
            "/v1/customers?email=logtest.ana@example.org",
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "pii_in_query");

    // Erasure.
    let r = suite
        .post(&suite.key, &format!("/v1/customers/{id}/erase"), None)
        .await;
    assert_eq!(r.status().as_u16(), 200);
    eventually("the erasure reached segmentation", || async {
        let r = suite
            .get(Some(&suite.key), &format!("/v1/customers/{id}/activity"))
            .await;
        (r.status().as_u16() == 404).then_some(())
    })
    .await;
    suite_owned.stop().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("serving") && logs.lines().count() > 50,
        "the logs were not captured: {} lines",
        logs.lines().count()
    );
    for secret in SECRETS {
        let hits: Vec<&str> = logs
            .lines()
            .filter(|l| l.to_lowercase().contains(&secret.to_lowercase()))
            .take(3)
            .collect();
        assert!(hits.is_empty(), "the logs hold {secret:?}: {hits:#?}");
    }
}
