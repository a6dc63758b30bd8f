//! Consent, export and erasure through the gateway, against real PostgreSQL, Redis and the
//! broker: consent from identify traits and the API, a complete export, and an erasure that
//! leaves a tombstone, no personal data and no cached copy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_tests::{eventually, next_of_kind, test_consumer, Suite};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

    // Campaign can reach Pat by email before the erasure.
    let campaign = suite.pool_of("campaign").await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    let email_of = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT email FROM contacts WHERE tenant_id = 'acme' AND customer_id = $1",
        )
        .bind(uuid)
        .fetch_optional(&campaign)
        .await
        .unwrap()
        .flatten()
    };
    let email = eventually("campaign's contact", || async { email_of().await }).await;
    assert_eq!(email, "pat@example.com");

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

    // Every part follows the erasure in its own database.
    let count = |pool: sqlx::PgPool, sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(uuid)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let (segmentation, loyalty) = (
        suite.pool_of("segmentation").await,
        suite.pool_of("loyalty").await,
    );
    eventually("campaign and segmentation record the erasure", || async {
        let campaign_done = count(
            campaign.clone(),
            "SELECT count(*) FROM erased WHERE customer_id = $1",
        )
        .await;
        let segmentation_done = count(
            segmentation.clone(),
            "SELECT count(*) FROM erased WHERE customer_id = $1",
        )
        .await;
        (campaign_done == 1 && segmentation_done == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(
            campaign.clone(),
            "SELECT count(*) FROM contacts WHERE customer_id = $1"
        )
        .await,
        0,
        "campaign keeps no contact of an erased customer"
    );
    assert_eq!(
        count(
            segmentation.clone(),
            "SELECT (SELECT count(*) FROM customer_activity WHERE customer_id = $1)
                  + (SELECT count(*) FROM customer_events WHERE customer_id = $1)
                  + (SELECT count(*) FROM daily_activity WHERE customer_id = $1)"
        )
        .await,
        0,
        "segmentation keeps no activity of an erased customer"
    );
    let erased_message = event["id"].as_str().unwrap().to_owned();
    eventually("loyalty applies the erasure", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM processed_messages WHERE message_id = $1")
                .bind(&erased_message)
                .fetch_one(&loyalty)
                .await
                .unwrap();
        (n == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(
            loyalty.clone(),
            "SELECT count(*) FROM profiles WHERE customer_id = $1"
        )
        .await,
        0,
        "loyalty keeps no birthday of an erased customer"
    );
    // A late profile change for the erased id does not bring the contact back.
    let late = json!({"id": "late-1", "tenant_id": "acme", "kind": "profile.updated",
        "customer_id": id, "occurred_at": "2026-03-02T10:00:00Z", "received_at": "2026-03-02T10:00:00Z",
        "source": "identity", "identity": {"email": "pat@example.com"}});
    let producer = crm_kafka::Producer::connect(
        &crm_tests::part_config(&suite.id, "probe", &suite.redis).kafka,
        crm_telemetry::Metrics::new("probe").unwrap(),
    )
    .await
    .unwrap();
    producer
        .send_raw(
            &suite.topic("crm.profiles.v1"),
            &format!("acme:{id}"),
            &serde_json::to_vec(&late).unwrap(),
            &std::collections::HashMap::new(),
        )
        .await
        .unwrap();
    eventually("campaign applies the late message", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM processed_messages WHERE message_id = 'late-1'",
        )
        .fetch_one(&campaign)
        .await
        .unwrap();
        (n == 1).then_some(())
    })
    .await;
    assert!(email_of().await.is_none(), "the erased contact stays gone");

    // The same person coming back is a new customer.
    suite
        .ingest(&json!({"id": "p3", "kind": "identify", "identity": {"user_id": "pat"}}))
        .await;
    let again = suite.wait_for_customer("pat", |_| true).await;
    assert_ne!(again["id"], id);
    suite.stop().await;
}
