//! Consent, export and erasure through the gateway, against real PostgreSQL, Redis and the
//! broker: consent from identify traits and the API, a complete export, and an erasure that
//! leaves a tombstone, no personal data and no cached copy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_tests::{next_of_kind, test_consumer, Suite};
use serde_json::{json, Value};

#[tokio::test]
async fn consent_export_and_erasure() {
    let suite = Suite::start().await;
    let profiles = test_consumer(&suite.topic("crm.profiles.v1"));
    suite
        .ingest(&json!({"id": "p1", "kind": "identify", "occurred_at": "2026-03-01T10:00:00Z",
            "identity": {"user_id": "pat", "email": "pat@example.com"},
            "traits": {"name": "Pat Doe", "consent": [{"purpose": "marketing", "channel": "email", "granted": true}]}}))
        .await;
    let profile = suite.wait_for_customer("pat", |_| true).await;
    let id = profile["id"].as_str().unwrap().to_owned();
    assert!(
        profile["traits"].get("consent").is_none(),
        "consent is recorded, not kept as a trait"
    );

    let consent: Value = suite
        .get(Some(&suite.key), &format!("/v1/customers/{id}/consent"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(consent["items"][0]["purpose"], "marketing");
    assert_eq!(consent["items"][0]["granted"], true);
    assert_eq!(consent["items"][0]["at"], "2026-03-01T10:00:00Z");

    // Withdrawn through the API; bad input gets a stable code.
    let url = format!("/v1/customers/{id}/consent");
    let withdrawn: Value = suite.post(&suite.key, &url, Some(&json!({"purpose": "marketing", "channel": "email", "granted": false, "source": "call-centre"}))).await.json().await.unwrap();
    assert_eq!(withdrawn["items"][0]["granted"], false);
    assert_eq!(withdrawn["items"][0]["source"], "call-centre");
    let bad = suite
        .post(
            &suite.key,
            &url,
            Some(&json!({"purpose": "Marketing!", "channel": "email", "granted": true})),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["code"],
        "invalid_consent"
    );

    // Malformed consent in an event is kept, flagged, and not applied.
    suite
        .ingest(
            &json!({"id": "p2", "kind": "identify", "identity": {"user_id": "pat"},
            "traits": {"consent": {"purpose": "sms"}}}),
        )
        .await;
    suite
        .wait_for_customer("pat", |p| p["event_count"] == 2)
        .await;
    let export = suite
        .get(Some(&suite.key), &format!("/v1/customers/{id}/export"))
        .await;
    assert_eq!(export.status(), 200);
    let export: Value = export.json().await.unwrap();
    assert_eq!(export["profile"]["id"], id);
    assert_eq!(export["profile"]["traits"]["name"], "Pat Doe");
    assert_eq!(export["consent"].as_array().unwrap().len(), 2);
    assert_eq!(export["quality_flags"]["consent"]["quality"], "invalid");
    assert_eq!(
        export["quality_flags"]["consent"]["value"]["purpose"],
        "sms"
    );
    assert!(export["trait_sources"]["name"]["at"].is_string());

    // Warm the cache, then erase.
    let path = format!("/v1/customers/{id}");
    suite.get(Some(&suite.key), &path).await;
    assert_eq!(
        suite.get(Some(&suite.key), &path).await.headers()["x-cache"],
        "hit"
    );
    let erase_url = format!("/v1/customers/{id}/erase");
    let reader = suite.key_with("acme", &[crm_gateway::Scope::Read]).await;
    assert_eq!(suite.post(&reader, &erase_url, None).await.status(), 403);
    let erased: Value = suite
        .post(&suite.key, &erase_url, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(erased["status"], "erased");
    assert_eq!(erased["erased_ids"][0], id);

    // Nothing is served any more, from the cache or from identity.
    assert_eq!(suite.get(Some(&suite.key), &path).await.status(), 404);
    assert_eq!(
        suite
            .get(Some(&suite.key), &format!("/v1/customers/{id}/export"))
            .await
            .status(),
        404
    );
    assert!(suite.customer_by_user("pat").await.is_none());
    assert_eq!(suite.post(&suite.key, &erase_url, None).await.status(), 404);

    // A tombstone without personal data stays.
    let pool = suite.identity_pool().await;
    let (status, traits, quality): (String, Value, Value) = sqlx::query_as(
        "SELECT status, traits, quality FROM customers WHERE tenant_id = 'acme' AND id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), traits, quality),
        ("erased", json!({}), json!({}))
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM identifiers WHERE tenant_id = 'acme' AND customer_id = $1::uuid)
              + (SELECT count(*) FROM consent_events WHERE tenant_id = 'acme' AND customer_id = $1::uuid)",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);

    // profile.erased is published for the other parts.
    let event = next_of_kind(&profiles, "profile.erased").await;
    assert_eq!(event["customer_id"], id);
    assert_eq!(event["properties"]["erased_ids"][0], id);

    // The same person coming back is a new customer.
    suite
        .ingest(&json!({"id": "p3", "kind": "identify", "identity": {"user_id": "pat"}}))
        .await;
    let again = suite.wait_for_customer("pat", |_| true).await;
    assert_ne!(again["id"], id);
    suite.stop().await;
}
