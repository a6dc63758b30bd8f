//! Events in through the gateway, profiles out: the cache-hit and cache-miss paths, duplicate
//! ids, malformed events, tenancy and keys, trace propagation, operational endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use crm_tests::{eventually, metric, test_consumer, Suite};
use rdkafka::message::Message;
use serde_json::{json, Value};

#[tokio::test]
async fn posted_event_becomes_a_profile_on_the_cache_hit_and_miss_paths() {
    let suite = Suite::start().await;
    let response = suite
        .post_events(
            &suite.key,
            &json!({"id": "e-1", "kind": "identify", "identity": {"user_id": "u-1", "email": "Ana@Example.com"}, "traits": {"first_name": "Ana", "plan": "pro"}}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["results"][0]["id"], "e-1");

    let profile = suite.wait_for_customer("u-1", |_| true).await;
    assert_eq!(profile["traits"]["plan"], "pro");
    let id = profile["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/customers/{id}");

    // Identity wrote the profile to Redis after committing it: served from the cache.
    let hit: Value = eventually("a cache hit", || async {
        let r = suite.get(Some(&suite.key), &path).await;
        (r.headers()["x-cache"] == "hit").then_some(r)
    })
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(hit["id"], id.as_str());
    assert_eq!(hit["traits"]["first_name"], "Ana");

    // Evicted: read from identity, answered, and the cache filled again.
    let cache = suite.profile_cache();
    let key = cache.key(
        &crm_envelope::TenantId::parse("acme").unwrap(),
        id.parse().unwrap(),
    );
    cache.evict(&key).await.unwrap();
    let miss = suite.get(Some(&suite.key), &path).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.headers()["x-cache"], "miss");
    let miss: Value = miss.json().await.unwrap();
    assert_eq!(miss, hit);
    assert!(
        cache.get(&key).await.unwrap().is_some(),
        "the miss filled the cache"
    );
    let again = suite.get(Some(&suite.key), &path).await;
    assert_eq!(again.headers()["x-cache"], "hit");

    // Unknown ids are 404 with a stable code.
    let unknown = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["code"], "customer_not_found");
    suite.stop().await;
}

#[tokio::test]
async fn the_same_event_posted_twice_changes_nothing_the_second_time() {
    let suite = Suite::start().await;
    let event = json!({"id": "dup-1", "kind": "track", "name": "Order Completed", "identity": {"user_id": "u-2"}, "properties": {"revenue": 40.0}});
    for _ in 0..2 {
        assert_eq!(suite.post_events(&suite.key, &event).await.status(), 202);
    }
    // A later event of the same customer (same key, same partition): once it is applied, both
    // copies of dup-1 have been handled.
    let marker = json!({"id": "marker-1", "kind": "track", "name": "Product Viewed", "identity": {"user_id": "u-2"}});
    assert_eq!(suite.post_events(&suite.key, &marker).await.status(), 202);
    let profile = suite
        .wait_for_customer("u-2", |p| p["event_count"].as_i64() >= Some(2))
        .await;
    assert_eq!(profile["event_count"], 2, "dup-1 applied once, marker once");
    assert_eq!(profile["version"], 2);

    // Downstream parts applied it once too.
    let id = profile["id"].as_str().unwrap();
    let activity: Value = eventually("segmentation activity", || async {
        let r = suite
            .http
            .get(format!(
                "{}/internal/v1/tenants/acme/customers/{id}/activity",
                suite.segmentation
            ))
            .header(crm_service::SERVICE_TOKEN_HEADER, crm_tests::SERVICE_TOKEN)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.ok()?;
        (v["events_total"].as_i64() == Some(2)).then_some(v)
    })
    .await;
    assert_eq!(activity["orders"], 1);
    assert_eq!(activity["revenue"], 40.0);
    let member: Value = eventually("loyalty member", || async {
        let r = suite
            .http
            .get(format!(
                "{}/internal/v1/tenants/acme/members/{id}",
                suite.loyalty
            ))
            .header(crm_service::SERVICE_TOKEN_HEADER, crm_tests::SERVICE_TOKEN)
            .send()
            .await
            .unwrap();
        r.status()
            .is_success()
            .then_some(r.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(member["orders_seen"], 1);

    // The internal APIs answer the gateway only: no token, or a wrong one, is 401 (so a
    // client cannot bypass the gateway's keys, or forge x-crm-actor).
    let internal = format!("{}/internal/v1/tenants/acme/customers/{id}", suite.identity);
    for token in [None, Some("not-the-service-token-0123456789abcdef")] {
        let mut request = suite
            .http
            .get(&internal)
            .header("x-crm-actor", "key:forged");
        if let Some(token) = token {
            request = request.header(crm_service::SERVICE_TOKEN_HEADER, token);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.json::<Value>().await.unwrap()["code"],
            "service_token_required"
        );
    }
    let allowed = suite
        .http
        .get(&internal)
        .header(crm_service::SERVICE_TOKEN_HEADER, crm_tests::SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    // Health and metrics stay open to probes and scrapers.
    let health = suite
        .http
        .get(format!("{}/healthz", suite.identity))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    suite.stop().await;
}

#[tokio::test]
async fn malformed_events_get_400_with_stable_codes_and_batches_are_reported_per_event() {
    let suite = Suite::start().await;
    let single = suite
        .post_events(&suite.key, &json!({"kind": "track", "name": "Signed Up"}))
        .await;
    assert_eq!(single.status(), 400);
    assert_eq!(single.headers()["content-type"], "application/problem+json");
    let single: Value = single.json().await.unwrap();
    assert_eq!(single["code"], "missing_identity");
    assert_eq!(single["results"][0]["error"]["pointer"], "/identity");

    let batch = json!({"batch": [
        {"id": "b-ok-1", "kind": "identify", "identity": {"user_id": "batch-user"}},
        {"id": "b-bad", "kind": "track", "identity": {"user_id": "batch-user"}},
        {"id": "b-ok-2", "kind": "page", "identity": {"anonymous_id": "anon-9"}},
    ]});
    let response = suite.post_events(&suite.key, &batch).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_events");
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["not_sent", "rejected", "not_sent"]);
    assert_eq!(body["results"][1]["error"]["code"], "missing_name");

    let raw = suite
        .http
        .post(format!("{}/v1/events", suite.gateway))
        .bearer_auth(&suite.key)
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["code"], "invalid_json");

    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({"kind": "page", "identity": {"anonymous_id": format!("a{i}")}}))
        .collect();
    let r = suite.post_events(&suite.key, &Value::Array(too_many)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "batch_too_large");

    let huge = json!({"kind": "identify", "identity": {"user_id": "big"}, "traits": {"bio": "x".repeat(40 * 1024)}});
    let r = suite.post_events(&suite.key, &huge).await;
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "event_too_large");
    let body = Value::Array((0..20).map(|_| json!({"kind": "identify", "identity": {"user_id": "big"}, "traits": {"bio": "x".repeat(30 * 1024)}})).collect());
    let r = suite.post_events(&suite.key, &body).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );

    // Nothing of the rejected batch reached identity: a marker posted after it is applied while
    // the batch's valid events are absent.
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": "batch-user-marker"}}))
        .await;
    suite.wait_for_customer("batch-user-marker", |_| true).await;
    assert!(suite.customer_by_user("batch-user").await.is_none());
    suite.stop().await;
}

#[tokio::test]
async fn keys_never_reach_another_tenants_data() {
    let suite = Suite::start().await;
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": "secret"}}))
        .await;
    let id = suite.wait_for_customer("secret", |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/customers/{id}");
    assert_eq!(suite.get(Some(&suite.key), &path).await.status(), 200);

    let none = suite.get(None, &path).await;
    assert_eq!(none.status(), 401);
    assert_eq!(none.json::<Value>().await.unwrap()["code"], "unauthorized");
    assert_eq!(
        suite.get(Some("crm_not-a-real-key"), &path).await.status(),
        401
    );

    let other = suite.new_tenant("globex").await;
    let cross = suite.get(Some(&other), &path).await;
    assert_eq!(
        cross.status(),
        404,
        "another tenant's key sees no such customer"
    );
    let cross_lookup: Value = suite
        .get(Some(&other), "/v1/customers?user_id=secret")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cross_lookup["items"], json!([]));

    let ingest_only = suite.key_with("acme", &[crm_gateway::Scope::Ingest]).await;
    let forbidden = suite.get(Some(&ingest_only), &path).await;
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        forbidden.json::<Value>().await.unwrap()["code"],
        "insufficient_scope"
    );
    let read_only = suite.key_with("acme", &[crm_gateway::Scope::Read]).await;
    assert_eq!(
        suite
            .post_events(
                &read_only,
                &json!({"kind": "page", "identity": {"user_id": "x"}})
            )
            .await
            .status(),
        403
    );

    // An event claiming another tenant is refused, not rerouted.
    let spoof = suite.post_events(&other, &json!({"tenant_id": "acme", "kind": "identify", "identity": {"user_id": "secret"}, "traits": {"owned": true}})).await;
    assert_eq!(spoof.status(), 400);
    assert_eq!(
        spoof.json::<Value>().await.unwrap()["code"],
        "tenant_mismatch"
    );
    suite.stop().await;
}

#[tokio::test]
async fn one_trace_follows_an_event_from_the_gateway_through_identity() {
    let suite = Suite::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = suite
        .http
        .post(format!("{}/v1/events", suite.gateway))
        .bearer_auth(&suite.key)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"id": "traced-1", "kind": "identify", "identity": {"user_id": "traced"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let consumer = test_consumer(&suite.topic("crm.events.v1"));
    let headers: HashMap<String, String> = eventually("the resolved event", || async {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), consumer.recv())
            .await
            .ok()?
            .ok()?;
        let envelope: Value = serde_json::from_slice(message.payload()?).ok()?;
        (envelope["id"] == "traced-1").then(|| crm_tests::headers_of(&message))
    })
    .await;
    let traceparent = headers
        .get("traceparent")
        .expect("crm.events.v1 carries traceparent");
    assert_eq!(
        crm_telemetry::propagation::trace_id_of(traceparent),
        Some(trace_id)
    );
    suite.stop().await;
}

#[tokio::test]
async fn every_part_reports_health_readiness_metrics_and_the_gateway_its_openapi() {
    let suite = Suite::start().await;
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": "m"}}))
        .await;
    suite.wait_for_customer("m", |_| true).await;
    for base in [
        &suite.gateway,
        &suite.identity,
        &suite.segmentation,
        &suite.campaign,
        &suite.loyalty,
    ] {
        assert_eq!(
            suite
                .http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let ready = suite
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{base} ready");
        let metrics = suite.metrics_of(base).await;
        assert!(metrics.contains("crm_outbox_backlog"), "{base} metrics");
    }
    let identity_metrics = suite.metrics_of(&suite.identity).await;
    assert_eq!(
        metric(
            &identity_metrics,
            "crm_kafka_messages_consumed_total",
            &[("part", "identity"), ("topic", "crm.ingest.v1")]
        ),
        Some(1.0),
        "{identity_metrics}"
    );
    assert!(
        metric(
            &identity_metrics,
            "crm_kafka_messages_produced_total",
            &[("topic", "crm.events.v1")]
        ) >= Some(1.0),
        "outbox relayed"
    );
    let gateway_metrics = suite.metrics_of(&suite.gateway).await;
    assert_eq!(
        metric(
            &gateway_metrics,
            "crm_http_requests_total",
            &[("route", "/v1/events"), ("status", "202")]
        ),
        Some(1.0),
        "{gateway_metrics}"
    );
    assert_eq!(
        metric(
            &gateway_metrics,
            "crm_kafka_messages_produced_total",
            &[("part", "gateway"), ("topic", "crm.ingest.v1")]
        ),
        Some(1.0)
    );

    let openapi: Value = suite
        .http
        .get(format!("{}/openapi.json", suite.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/events",
        "/v1/customers/{id}",
        "/v1/customers",
        "/v1/api-keys",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "openapi documents {path}"
        );
    }
    assert!(openapi["components"]["schemas"]["Problem"].is_object());
    suite.stop().await;
}
