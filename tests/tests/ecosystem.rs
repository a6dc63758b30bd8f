//! The ecosystem's protocols at the gateway: Segment's HTTP Tracking API, driven by the public
//! Segment and RudderStack Node libraries (tests/js, installed by scripts/test) and by hand for
//! the answers, limits, auth and clock-skew rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_gateway::Scope;
use crm_tests::{eventually, headers_of, test_consumer, unique_id, Suite};
use rdkafka::message::Message;
use serde_json::{json, Value};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The customer's timeline items (newest first, up to 200).
async fn timeline(suite: &Suite, customer: &str) -> Vec<Value> {
    let body: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{customer}/timeline?limit=200"),
        )
        .await
        .json()
        .await
        .unwrap();
    body["items"].as_array().cloned().unwrap_or_default()
}

fn count_named(items: &[Value], name: &str) -> usize {
    items.iter().filter(|i| i["name"] == name).count()
}

/// A Segment call by hand: `(status, body)`.
async fn segment_call(
    suite: &Suite,
    path: &str,
    auth: Option<(&str, &str)>,
    gzipped: bool,
    body: &[u8],
) -> (u16, Value) {
    let mut request = suite
        .http
        .post(format!("{}{path}", suite.gateway))
        .header("content-type", "application/json");
    match auth {
        Some(("basic", key)) => request = request.basic_auth(key, Some("")),
        Some((_, key)) => request = request.bearer_auth(key),
        None => {}
    }
    let body = if gzipped {
        request = request.header("content-encoding", "gzip");
        gzip(body)
    } else {
        body.to_vec()
    };
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segment_and_rudderstack_libraries_deliver_unmodified() {
    let suite = Suite::start().await;
    let write_key = suite.key_with("acme", &[Scope::Ingest]).await;
    let run = unique_id();
    let ingest = test_consumer(&suite.topic("crm.ingest.v1"));

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
    assert!(
        std::path::Path::new(&format!("{dir}/node_modules/@segment/analytics-node")).exists(),
        "the test clients are not installed: run scripts/test (or npm ci in tests/js)"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(format!("{dir}/clients.mjs"))
            .env("CRM_GATEWAY", &suite.gateway)
            .env("CRM_WRITE_KEY", &write_key)
            .env("CRM_RUN", &run)
            .output(),
    )
    .await
    .expect("the Node clients did not finish within 120 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the clients failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    let seen = &summary["segment"];
    // The first request's answer was lost, so the library sent the same batch again.
    assert_eq!(seen["injected"], 1, "{summary}");
    assert!(seen["requests"].as_u64().unwrap() >= 2, "{summary}");
    assert!(seen["retryHeaders"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(
        seen["basicAuth"], seen["requests"],
        "Segment sends its write key as HTTP Basic: {summary}"
    );
    assert!(
        seen["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == 200),
        "{summary}"
    );

    // Both copies of each order reached the broker, under one messageId each.
    let ana = format!("{run}-ana");
    let copies: HashMap<String, usize> = eventually("both copies of the orders", || async {
        let mut copies: HashMap<String, usize> = HashMap::new();
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), {
            use rdkafka::consumer::StreamConsumer;
            StreamConsumer::recv(&ingest)
        })
        .await
        {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            if v["identity"]["user_id"] == ana.as_str() && v["name"] == "Order Completed" {
                assert_eq!(v["source"], "segment");
                *copies
                    .entry(v["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            if copies.len() == 3 && copies.values().all(|n| *n == 2) {
                return Some(copies.clone());
            }
        }
        None
    })
    .await;
    assert_eq!(copies.len(), 3);

    // A last call on the same partition key: once it is on the timeline, both copies were read.
    let (status, _) = segment_call(
        &suite,
        "/v1/track",
        Some(("basic", &write_key)),
        false,
        json!({"userId": ana, "event": "Sentinel"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let profile = suite
        .wait_for_customer(&ana, |p| {
            p["traits"]["plan"] == "pro"
                && p["accounts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|g| *g == format!("{run}-initech")))
        })
        .await;
    let id = profile["id"].as_str().unwrap().to_owned();
    let kinds: Vec<(String, String)> = profile["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("anonymous_id".into(), format!("{run}-device"))),
        "{profile}"
    );
    assert!(kinds.iter().any(|(k, _)| k == "email"), "{profile}");
    assert_eq!(profile["traits"]["name"], "Ana Ruiz");
    assert!(
        profile["traits"].get("employees").is_none(),
        "the account's traits are not the person's: {profile}"
    );
    let items = eventually("the sentinel on the timeline", || async {
        let items = timeline(&suite, &id).await;
        (count_named(&items, "Sentinel") == 1).then_some(items)
    })
    .await;
    assert_eq!(
        count_named(&items, "Order Completed"),
        3,
        "a retried batch applies once"
    );
    for (kind, name) in [("page", "Pricing"), ("screen", "Home")] {
        assert!(
            items.iter().any(|i| i["kind"] == kind && i["name"] == name),
            "{kind} {name} missing: {items:?}"
        );
    }
    assert!(items.iter().any(|i| i["kind"] == "group"), "{items:?}");

    // The group call made the account, with its traits and its member.
    let account: Value = suite
        .get(Some(&suite.key), &format!("/v1/accounts/{run}-initech"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(account["traits"]["name"], "Initech", "{account}");
    assert_eq!(account["traits"]["employees"], 120);
    assert_eq!(account["members"], json!([id]));

    // The alias made the visitor and the user one customer, with the visitor's page view.
    let bob = suite
        .wait_for_customer(&format!("{run}-bob"), |p| {
            p["identifiers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["value"] == format!("{run}-visitor"))
        })
        .await;
    let bob_items = eventually("the visitor's view on bob's timeline", || async {
        let items = timeline(&suite, bob["id"].as_str().unwrap()).await;
        (count_named(&items, "Product Viewed") == 1).then_some(items)
    })
    .await;
    assert!(bob_items.iter().any(|i| i["kind"] == "alias"));

    // RudderStack's library (gzip bodies) reached the same profiles.
    let carla = suite
        .wait_for_customer(&format!("{run}-carla"), |p| p["traits"]["name"] == "Carla")
        .await;
    eventually("carla's sign-up", || async {
        let items = timeline(&suite, carla["id"].as_str().unwrap()).await;
        (count_named(&items, "Signed Up") == 1).then_some(())
    })
    .await;
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segment_calls_answer_as_segment_does() {
    let suite = Suite::start().await;
    let write_key = suite.key_with("acme", &[Scope::Ingest]).await;
    let read_key = suite.key_with("acme", &[Scope::Read]).await;
    let run = unique_id();
    let user = format!("{run}-u");
    let call = |v: Value| v.to_string().into_bytes();

    // Auth: Basic (the write key as user name), Bearer; none, a wrong key or a key without
    // the ingest scope are refused.
    let identify = call(
        json!({"userId": user, "traits": {"email": format!("{run}@example.com"), "tier": "gold"}}),
    );
    let (status, body) = segment_call(
        &suite,
        "/v1/identify",
        Some(("basic", &write_key)),
        false,
        &identify,
    )
    .await;
    assert_eq!((status, &body), (200, &json!({"success": true})));
    let (status, _) = segment_call(
        &suite,
        "/v1/identify",
        Some(("bearer", &write_key)),
        false,
        &identify,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = segment_call(&suite, "/v1/identify", None, false, &identify).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = segment_call(
        &suite,
        "/v1/identify",
        Some(("basic", "crm_wrong")),
        false,
        &identify,
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = segment_call(
        &suite,
        "/v1/identify",
        Some(("basic", &read_key)),
        false,
        &identify,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );

    // gzip bodies, on a single call and on a batch.
    let message_id = format!("{run}-m1");
    let (status, _) = segment_call(
        &suite,
        "/v1/track",
        Some(("basic", &write_key)),
        true,
        &call(json!({"userId": user, "event": "Gzipped", "messageId": message_id})),
    )
    .await;
    assert_eq!(status, 200);
    // The same messageId again (an SDK's retry): applied once.
    let (status, _) = segment_call(
        &suite,
        "/v1/track",
        Some(("basic", &write_key)),
        false,
        &call(json!({"userId": user, "event": "Gzipped", "messageId": message_id})),
    )
    .await;
    assert_eq!(status, 200);

    // A batch with one invalid event: the others are taken, the invalid one is listed and
    // dead-lettered with its reason.
    let dlq = test_consumer(&format!("{}.dlq", suite.topic("crm.ingest.v1")));
    // A client whose clock runs one hour fast: it stamped the event 5 s before sending.
    let now = Utc::now();
    let fast = now + chrono::Duration::hours(1);
    let batch = json!({
        "sentAt": fast.to_rfc3339(),
        "context": {"library": {"name": "hand-made", "version": "1"}},
        "batch": [
            {"type": "track", "userId": user, "event": "Skewed", "timestamp": (fast - chrono::Duration::seconds(5)).to_rfc3339()},
            {"type": "track", "userId": user, "messageId": format!("{run}-bad")},
            {"type": "page", "userId": user, "name": "Home"},
        ]
    });
    let (status, body) = segment_call(
        &suite,
        "/v1/batch",
        Some(("basic", &write_key)),
        true,
        &call(batch),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{body}");
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["messageId"], format!("{run}-bad"));
    assert_eq!(rejected[0]["error"]["code"], "missing_name");
    assert_eq!(rejected[0]["error"]["pointer"], "/event");
    let dead = eventually("the dead letter", || async {
        let m = tokio::time::timeout(Duration::from_secs(5), {
            use rdkafka::consumer::StreamConsumer;
            StreamConsumer::recv(&dlq)
        })
        .await
        .ok()?
        .ok()?;
        let payload: Value = serde_json::from_slice(m.payload()?).ok()?;
        (payload["messageId"] == format!("{run}-bad")).then(|| headers_of(&m))
    })
    .await;
    assert_eq!(dead["crm-dlq-error-code"], "missing_name");
    assert_eq!(dead["crm-dlq-tenant"], "acme");
    assert!(dead["crm-dlq-error"].contains("event name"));

    let profile = suite
        .wait_for_customer(&user, |p| p["traits"]["tier"] == "gold")
        .await;
    let id = profile["id"].as_str().unwrap().to_owned();
    let items = eventually("the batch on the timeline", || async {
        let items = timeline(&suite, &id).await;
        (count_named(&items, "Skewed") == 1 && count_named(&items, "Home") == 1).then_some(items)
    })
    .await;
    let skewed = items.iter().find(|i| i["name"] == "Skewed").unwrap();
    let at: DateTime<Utc> = skewed["occurred_at"].as_str().unwrap().parse().unwrap();
    let expected = now - chrono::Duration::seconds(5);
    assert!(
        (at - expected).num_seconds().abs() <= 3,
        "clock skew corrected: {at} vs {expected}"
    );
    // Resending the single call with the same messageId did not apply twice.
    eventually("the gzipped track", || async {
        let items = timeline(&suite, &id).await;
        (count_named(&items, "Gzipped") >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_named(&timeline(&suite, &id).await, "Gzipped"), 1);

    // Clear 400s: the field named, in Segment's terms.
    let key = Some(("basic", write_key.as_str()));
    let (status, body) = segment_call(
        &suite,
        "/v1/track",
        key,
        false,
        &call(json!({"userId": user})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "missing_name");
    assert_eq!(body["pointer"], "/event");
    let (status, body) = segment_call(
        &suite,
        "/v1/group",
        key,
        false,
        &call(json!({"userId": user})),
    )
    .await;
    assert_eq!((status, body["pointer"].as_str()), (400, Some("/groupId")));
    let (status, body) = segment_call(&suite, "/v1/track", key, false, b"{not json").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));
    let mut request = suite
        .http
        .post(format!("{}/v1/track", suite.gateway))
        .basic_auth(&write_key, Some(""));
    request = request
        .header("content-encoding", "gzip")
        .body("plain, not gzip");
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unreadable_body");
    // 32 KB an event; 500 KB a batch, counted after decompression.
    let big = "x".repeat(33 * 1024);
    let (status, body) = segment_call(
        &suite,
        "/v1/track",
        key,
        false,
        &call(json!({"userId": user, "event": "Big", "properties": {"blob": big}})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("event_too_large"))
    );
    let events: Vec<Value> = (0..40)
        .map(|_| json!({"type": "track", "userId": user, "event": "Filler", "properties": {"blob": "y".repeat(15 * 1024)}}))
        .collect();
    let (status, body) = segment_call(
        &suite,
        "/v1/batch",
        key,
        true,
        &call(json!({"batch": events})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("batch_too_large")),
        "{body}"
    );
    let (status, body) = segment_call(
        &suite,
        "/v1/batch",
        key,
        false,
        &call(json!({"events": []})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_batch"))
    );
    // A NUL in a query string (found by the API fuzzer: PostgreSQL cannot store it) is a 400.
    let response = suite
        .get(Some(&read_key), "/v1/customers/search?q=ab%00c")
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_query");
    suite.stop().await;
}

/// A CloudEvents request by hand: `(status, body)`.
async fn ce_call(
    suite: &Suite,
    content_type: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, Value) {
    let mut request = suite
        .http
        .post(format!("{}/v1/cloudevents", suite.gateway))
        .bearer_auth(&suite.key)
        .header("content-type", content_type);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_arrive_in_every_mode_over_http_and_kafka() {
    let suite = Suite::start().await;
    let run = unique_id();
    let user = format!("{run}-ce");

    // Structured: one event; an identify type sets traits.
    let (status, body) = ce_call(
        &suite,
        "application/cloudevents+json; charset=utf-8",
        &[],
        json!({"specversion": "1.0", "id": "1", "source": "/crm/signup", "type": "identify",
               "subject": user, "data": {"plan": "pro", "traits": {"email": format!("{run}@example.com")}}})
        .to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][0]["id"], "ce:/crm/signup:1");
    // Batch: an array; other types are tracks named by the type.
    let (status, body) = ce_call(
        &suite,
        "application/cloudevents-batch+json",
        &[],
        json!([
            {"specversion": "1.0", "id": "2", "source": "/shop", "type": "com.acme.order.completed",
             "subject": user, "time": "2026-12-01T09:30:00Z", "data": {"revenue": 30}},
            {"specversion": "1.0", "id": "3", "source": "/shop", "type": "page", "subject": user,
             "data": {"name": "Checkout"}}
        ])
        .to_string(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(2)),
        "{body}"
    );
    // Binary: attributes in ce-* headers, the data as the body.
    let (status, body) = ce_call(
        &suite,
        "application/json",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "4"),
            ("ce-source", "/billing"),
            ("ce-type", "com.acme.invoice.paid"),
            ("ce-subject", &user),
        ],
        json!({"amount": 99}).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // The same event again (source + id): applied once.
    let (status, _) = ce_call(
        &suite,
        "application/json",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "4"),
            ("ce-source", "/billing"),
            ("ce-type", "com.acme.invoice.paid"),
            ("ce-subject", &user),
        ],
        json!({"amount": 99}).to_string(),
    )
    .await;
    assert_eq!(status, 202);

    // Malformed: 400 naming the attribute; nothing of the batch is taken.
    let (status, body) = ce_call(
        &suite,
        "application/cloudevents+json",
        &[],
        json!({"specversion": "1.0", "id": "5", "type": "x", "subject": user}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_field");
    assert_eq!(body["results"][0]["error"]["pointer"], "/source");
    let (status, body) = ce_call(
        &suite,
        "application/cloudevents-batch+json",
        &[],
        json!([
            {"specversion": "1.0", "id": "6", "source": "/s", "type": "Kept Out", "subject": user},
            {"specversion": "1.0", "id": "7", "source": "/s", "type": "x"}
        ])
        .to_string(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_events"))
    );
    assert_eq!(body["results"][0]["status"], "not_sent");
    assert_eq!(body["results"][1]["error"]["pointer"], "/subject");
    let (status, body) = ce_call(&suite, "text/plain", &[], "hello".into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    // The Kafka binding: an integration producing straight to crm.ingest.v1.
    let config = crm_tests::part_config(&suite.id, "probe", &suite.redis).kafka;
    let producer =
        crm_kafka::Producer::connect(&config, crm_telemetry::Metrics::new("probe").unwrap())
            .await
            .unwrap();
    let topic = suite.topic("crm.ingest.v1");
    let mut headers: HashMap<String, String> = [
        ("ce_specversion", "1.0"),
        ("ce_id", "k-1"),
        ("ce_source", "erp"),
        ("ce_type", "Contract Renewed"),
        ("ce_subject", user.as_str()),
        ("ce_tenantid", "acme"),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    producer
        .send_raw(
            &topic,
            &format!("acme:{user}"),
            br#"{"years": 2}"#,
            &headers,
        )
        .await
        .unwrap();
    // Without its tenant, it is dead-lettered with the reason.
    headers.remove("ce_tenantid");
    headers.insert("ce_id".into(), format!("{run}-no-tenant"));
    let dlq = test_consumer(&suite.topic("crm.ingest.v1.dlq"));
    producer
        .send_raw(&topic, &format!("acme:{user}"), b"{}", &headers)
        .await
        .unwrap();
    let dead = eventually("the CloudEvent without a tenant in the DLQ", || async {
        let m = tokio::time::timeout(Duration::from_secs(5), {
            use rdkafka::consumer::StreamConsumer;
            StreamConsumer::recv(&dlq)
        })
        .await
        .ok()?
        .ok()?;
        let h = headers_of(&m);
        (h.get("ce_id") == Some(&format!("{run}-no-tenant"))).then_some(h)
    })
    .await;
    assert_eq!(dead["crm-dlq-error-code"], "invalid_field");
    assert!(dead["crm-dlq-error"].starts_with("/tenantid"), "{dead:?}");

    let profile = suite
        .wait_for_customer(&user, |p| p["traits"]["plan"] == "pro")
        .await;
    let id = profile["id"].as_str().unwrap().to_owned();
    let items = eventually("every CloudEvent on the timeline", || async {
        let items = timeline(&suite, &id).await;
        (count_named(&items, "Contract Renewed") == 1
            && count_named(&items, "com.acme.invoice.paid") == 1
            && count_named(&items, "com.acme.order.completed") == 1
            && count_named(&items, "Checkout") == 1)
            .then_some(items)
    })
    .await;
    let order = items
        .iter()
        .find(|i| i["name"] == "com.acme.order.completed")
        .unwrap();
    assert_eq!(order["occurred_at"], "2026-12-01T09:30:00Z");
    assert_eq!(order["source"], "cloudevents");
    assert_eq!(count_named(&items, "Kept Out"), 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count_named(&timeline(&suite, &id).await, "com.acme.invoice.paid"),
        1
    );
    suite.stop().await;
}
