//! The identity graph against real PostgreSQL, Redis and the broker: merges when an event links
//! two customers (alias reads, no stale cache, `profile.merged` published), and the guards that
//! keep different people apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_tests::{eventually, next_of_kind, test_consumer, Suite};
use serde_json::{json, Value};

fn id_of(profile: &Value) -> String {
    profile["id"].as_str().unwrap().to_owned()
}

fn has(profile: &Value, kind: &str, value: &str) -> bool {
    profile["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == kind && i["value"] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_linking_two_customers_merges_them() {
    let suite = Suite::start().await;
    let merges = test_consumer(&suite.topic("crm.profiles.v1"));

    suite
        .ingest(
            &json!({"id": "m1", "kind": "identify", "occurred_at": "2026-01-01T00:00:00Z",
            "identity": {"anonymous_id": "device-1"}, "traits": {"plan": "free", "city": "Porto"}}),
        )
        .await;
    let older = eventually("anonymous customer", || {
        suite.customer_by("anonymous_id", "device-1")
    })
    .await;
    suite
        .ingest(
            &json!({"id": "m2", "kind": "identify", "occurred_at": "2026-01-02T00:00:00Z",
            "identity": {"user_id": "ana", "email": "Ana@Example.com"}, "traits": {"plan": "pro"}}),
        )
        .await;
    let newer = suite.wait_for_customer("ana", |_| true).await;
    assert_ne!(id_of(&older), id_of(&newer));
    // Warm the cache for the customer about to be merged away.
    let path = format!("/v1/customers/{}", id_of(&newer));
    let warm = suite.get(Some(&suite.key), &path).await;
    assert_eq!(warm.status(), 200);
    let warm = suite.get(Some(&suite.key), &path).await;
    assert_eq!(warm.headers()["x-cache"], "hit");

    // One event carries the device and the email: the two are one person.
    suite
        .ingest(&json!({"id": "m3", "kind": "track", "name": "page_viewed", "occurred_at": "2026-01-03T00:00:00Z",
            "identity": {"anonymous_id": "device-1", "email": "ana@example.com"}}))
        .await;
    let merged = suite
        .wait_for_customer("ana", |p| has(p, "anonymous_id", "device-1"))
        .await;
    // The older customer survives, with every identifier and the combined traits (most recent
    // plan wins; the city only the older one had stays).
    assert_eq!(id_of(&merged), id_of(&older));
    assert!(has(&merged, "user_id", "ana") && has(&merged, "email", "ana@example.com"));
    assert_eq!(merged["traits"]["plan"], "pro");
    assert_eq!(merged["traits"]["city"], "Porto");
    assert_eq!(merged["event_count"], 3);

    // Campaign folds the merged contact into the survivor's: every event counted once, the
    // email kept, no contact left under the merged id.
    let campaign = suite.pool_of("campaign").await;
    let (older_id, newer_id): (uuid::Uuid, uuid::Uuid) = (
        id_of(&older).parse().unwrap(),
        id_of(&newer).parse().unwrap(),
    );
    eventually("campaign follows the merge", || async {
        let rows: Vec<(uuid::Uuid, Option<String>, i64)> = sqlx::query_as(
            "SELECT customer_id, email, events_seen FROM contacts
             WHERE customer_id = ANY($1) ORDER BY customer_id",
        )
        .bind([older_id, newer_id])
        .fetch_all(&campaign)
        .await
        .unwrap();
        (rows == [(older_id, Some("ana@example.com".to_owned()), 3)]).then_some(())
    })
    .await;

    // Its identifiers, through the merged id too.
    let identifiers: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}/identifiers", id_of(&newer)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(identifiers["customer_id"], id_of(&older));
    let kinds: Vec<&str> = identifiers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["anonymous_id", "email", "user_id"]);

    // The merged id is an alias: reading it answers the survivor, never the stale cached copy.
    let alias = suite.get(Some(&suite.key), &path).await;
    assert_eq!(alias.status(), 200);
    assert_eq!(alias.headers()["x-cache"], "miss");
    let alias: Value = alias.json().await.unwrap();
    assert_eq!(id_of(&alias), id_of(&older));
    let again = suite.get(Some(&suite.key), &path).await;
    assert_eq!(
        again.headers()["x-cache"],
        "miss",
        "an alias is never cached"
    );

    // profile.merged names both, with the evidence.
    let event = next_of_kind(&merges, "profile.merged").await;
    assert_eq!(event["properties"]["survivor_id"], id_of(&older));
    assert_eq!(event["properties"]["merged_id"], id_of(&newer));
    assert_eq!(event["properties"]["evidence"]["event_id"], "m3");

    let pool = suite.identity_pool().await;
    let (kind, evidence): (String, Value) = sqlx::query_as(
        "SELECT kind, evidence FROM merges WHERE tenant_id = 'acme' AND merged_id = $1::uuid",
    )
    .bind(id_of(&newer))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kind, "deterministic");
    assert_eq!(evidence["linked_by"]["kind"], "email");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_keep_different_people_apart() {
    let suite = Suite::start().await;
    // Two signed-in users.
    suite
        .ingest(&json!({"id": "g1", "kind": "identify", "identity": {"user_id": "u1", "anonymous_id": "shared-tablet"}}))
        .await;
    suite
        .ingest(&json!({"id": "g2", "kind": "identify", "identity": {"user_id": "u2", "email": "bob@example.com"}}))
        .await;
    let u1 = suite.wait_for_customer("u1", |_| true).await;
    let u2 = suite.wait_for_customer("u2", |_| true).await;

    // An event that links them: different user_ids never merge automatically; it goes to review.
    suite
        .ingest(&json!({"id": "g3", "kind": "track", "name": "x",
            "identity": {"anonymous_id": "shared-tablet", "email": "bob@example.com"}}))
        .await;
    let pool = suite.identity_pool().await;
    let reason: String = eventually("review", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT reason FROM match_reviews WHERE tenant_id = 'acme' AND status = 'pending'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(reason, "different_user_id");
    let u1_now = suite
        .wait_for_customer("u1", |p| p["event_count"] == 2)
        .await;
    assert_eq!(id_of(&u1_now), id_of(&u1));
    assert!(!has(&u1_now, "email", "bob@example.com"));
    assert_eq!(
        id_of(&suite.customer_by_user("u2").await.unwrap()),
        id_of(&u2)
    );

    // A new user on a device another user holds starts a customer of their own.
    suite
        .ingest(&json!({"id": "g4", "kind": "identify", "identity": {"user_id": "u3", "anonymous_id": "shared-tablet"}}))
        .await;
    let u3 = suite.wait_for_customer("u3", |_| true).await;
    assert_ne!(id_of(&u3), id_of(&u1));

    // Junk identifiers identify no one: two strangers typing test@test.com stay two.
    suite
        .ingest(&json!({"id": "g5", "kind": "identify", "identity": {"user_id": "s1", "email": "test@test.com"}}))
        .await;
    suite
        .ingest(&json!({"id": "g6", "kind": "identify", "identity": {"user_id": "s2", "email": "TEST@test.com"}}))
        .await;
    let s1 = suite.wait_for_customer("s1", |_| true).await;
    let s2 = suite.wait_for_customer("s2", |_| true).await;
    assert_ne!(id_of(&s1), id_of(&s2));
    assert!(!has(&s1, "email", "test@test.com"));

    // An invalid email is kept with its flag and counted in the data-quality report.
    suite
        .ingest(
            &json!({"id": "g7", "kind": "identify", "identity": {"user_id": "q1", "email": "q1@"},
                "traits": {"first_name": "  MARÍA ", "birthday": "19860810", "dob": "31/31/1990"}}),
        )
        .await;
    let q1 = suite.wait_for_customer("q1", |_| true).await;
    // Traits in standard form; the invalid date kept as received.
    assert_eq!(q1["traits"]["first_name"], "María");
    assert_eq!(q1["traits"]["birthday"], "1986-08-10");
    assert_eq!(q1["traits"]["dob"], "31/31/1990");
    let (flag, invalid): (Value, i64) = sqlx::query_as(
        "SELECT c.quality, q.invalid FROM customers c, data_quality q
         WHERE c.tenant_id = 'acme' AND q.tenant_id = 'acme' AND q.field = 'email'
           AND c.id = (SELECT customer_id FROM identifiers WHERE tenant_id = 'acme' AND kind = 'user_id' AND value = 'q1')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(flag["email"]["value"], "q1@");
    assert_eq!(flag["email"]["quality"], "invalid");
    assert_eq!(flag["dob"]["value"], "31/31/1990");
    assert_eq!(invalid, 1);
    let counts: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT field, present, valid, invalid, standardised FROM data_quality
         WHERE tenant_id = 'acme' AND field IN ('first_name', 'birthday', 'dob') ORDER BY field",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        vec![
            ("birthday".into(), 1, 1, 0, 1),
            ("dob".into(), 1, 0, 1, 0),
            ("first_name".into(), 1, 1, 0, 1),
        ]
    );
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_and_the_quality_report_through_the_gateway() {
    let suite = Suite::start().await;
    suite
        .ingest(&json!({"id": "r1", "kind": "identify", "identity": {"user_id": "w1", "anonymous_id": "kiosk"}}))
        .await;
    suite
        .ingest(&json!({"id": "r2", "kind": "identify", "identity": {"user_id": "w2", "email": "Eve@Example.com"}}))
        .await;
    let w1 = suite.wait_for_customer("w1", |_| true).await;
    let w2 = suite.wait_for_customer("w2", |_| true).await;
    suite
        .ingest(&json!({"id": "r3", "kind": "track", "name": "x", "identity": {"anonymous_id": "kiosk", "email": "eve@example.com"}}))
        .await;
    let reviews: Value = eventually("a pending review", || async {
        let r: Value = suite
            .get(Some(&suite.key), "/v1/reviews")
            .await
            .json()
            .await
            .unwrap();
        (!r["items"].as_array().unwrap().is_empty()).then_some(r)
    })
    .await;
    let review = &reviews["items"][0];
    assert_eq!(review["reason"], "different_user_id");
    assert_eq!(review["evidence"]["event_id"], "r3");
    let review_id = review["id"].as_str().unwrap().to_owned();

    // Bad input gets a problem with a stable code.
    let bad = suite
        .get(Some(&suite.key), "/v1/reviews?status=maybe")
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["code"], "invalid_status");

    // A read-only key cannot decide.
    let reader = suite.key_with("acme", &[crm_gateway::Scope::Read]).await;
    let url = format!("/v1/reviews/{review_id}/accept");
    let denied = suite.post(&reader, &url, None).await;
    assert_eq!(denied.status(), 403);

    // Accepting merges them (manual), the older surviving; the other id becomes an alias.
    let accepted: Value = suite
        .post(&suite.key, &url, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["survivor_id"], id_of(&w1));
    assert_eq!(accepted["merged_id"], id_of(&w2));
    let alias: Value = suite
        .get(Some(&suite.key), &format!("/v1/customers/{}", id_of(&w2)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id_of(&alias), id_of(&w1));
    assert!(has(&alias, "user_id", "w2") && has(&alias, "email", "eve@example.com"));
    // Decided once: a second decision finds no pending review.
    let again = suite.post(&suite.key, &url, None).await;
    assert_eq!(again.status(), 404);
    let pool = suite.identity_pool().await;
    let kind: String = sqlx::query_scalar("SELECT kind FROM merges WHERE tenant_id = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kind, "manual");

    // The data-quality report counts the two emails, one of them rewritten.
    let report: Value = suite
        .get(Some(&suite.key), "/v1/data-quality")
        .await
        .json()
        .await
        .unwrap();
    let email = report["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "email")
        .cloned()
        .unwrap();
    assert_eq!(email["present"], 2);
    assert_eq!(email["valid"], 2);
    assert_eq!(email["standardised"], 1);
    assert_eq!(email["invalid"], 0);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmerge_splits_the_customers_again_and_no_stale_profile_is_served() {
    let suite = Suite::start().await;
    let profiles = test_consumer(&suite.topic("crm.profiles.v1"));
    suite
        .ingest(
            &json!({"id": "u1", "kind": "identify", "occurred_at": "2026-02-01T00:00:00Z",
            "identity": {"anonymous_id": "laptop"}, "traits": {"colour": "red", "city": "Faro"}}),
        )
        .await;
    let first = eventually("first", || suite.customer_by("anonymous_id", "laptop")).await;
    suite
        .ingest(
            &json!({"id": "u2", "kind": "identify", "occurred_at": "2026-02-02T00:00:00Z",
            "identity": {"user_id": "zoe", "email": "zoe@example.com"},
            "traits": {"colour": "blue",
                       "consent": {"purpose": "marketing", "channel": "email", "granted": true}}}),
        )
        .await;
    let second = suite.wait_for_customer("zoe", |_| true).await;
    suite
        .ingest(
            &json!({"id": "u3", "kind": "track", "name": "x", "occurred_at": "2026-02-03T00:00:00Z",
            "identity": {"anonymous_id": "laptop", "email": "zoe@example.com"}}),
        )
        .await;
    let merged = suite
        .wait_for_customer("zoe", |p| has(p, "anonymous_id", "laptop"))
        .await;
    assert_eq!(id_of(&merged), id_of(&first));
    assert_eq!(merged["traits"]["colour"], "blue");
    let consent_of = |id: String| {
        let suite = &suite;
        async move {
            let consent: Value = suite
                .get(Some(&suite.key), &format!("/v1/customers/{id}/consent"))
                .await
                .json()
                .await
                .unwrap();
            consent["items"].as_array().unwrap().clone()
        }
    };
    // The merged customer's consent went with it to the survivor.
    assert_eq!(consent_of(id_of(&first)).await.len(), 1);

    // Warm the survivor's cache with the merged profile.
    let survivor_path = format!("/v1/customers/{}", id_of(&first));
    suite.get(Some(&suite.key), &survivor_path).await;
    let merges: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}/merges", id_of(&second)),
        )
        .await
        .json()
        .await
        .unwrap();
    let merge_id = merges["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(merges["items"][0]["kind"], "deterministic");
    assert!(
        merges["items"][0].get("snapshot").is_none(),
        "the snapshot holds personal data"
    );

    let url = format!("/v1/merges/{merge_id}/unmerge");
    let undone = suite.post(&suite.key, &url, None).await;
    assert_eq!(undone.status(), 200);
    let undone: Value = undone.json().await.unwrap();
    assert_eq!(undone["status"], "undone");

    // The survivor gives back what came from the other: its identifiers and the colour it set.
    let survivor = suite.get(Some(&suite.key), &survivor_path).await;
    assert_eq!(survivor.headers()["x-cache"], "hit");
    let survivor: Value = survivor.json().await.unwrap();
    assert!(has(&survivor, "anonymous_id", "laptop"));
    assert!(!has(&survivor, "user_id", "zoe") && !has(&survivor, "email", "zoe@example.com"));
    assert_eq!(survivor["traits"]["colour"], "red");
    assert_eq!(survivor["traits"]["city"], "Faro");
    // The restored customer answers for itself again, with what it held.
    let restored: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", id_of(&second)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id_of(&restored), id_of(&second));
    assert!(has(&restored, "user_id", "zoe") && has(&restored, "email", "zoe@example.com"));
    assert_eq!(restored["traits"]["colour"], "blue");
    // And its consent comes back with it.
    let restored_consent = consent_of(id_of(&second)).await;
    assert_eq!(restored_consent.len(), 1);
    assert_eq!(restored_consent[0]["purpose"], "marketing");
    assert!(consent_of(id_of(&first)).await.is_empty());
    assert_eq!(
        id_of(&suite.customer_by_user("zoe").await.unwrap()),
        id_of(&second)
    );

    // profile.unmerged is published.
    let event = next_of_kind(&profiles, "profile.unmerged").await;
    assert_eq!(event["properties"]["restored_id"], id_of(&second));

    // Undone once; and the same link again opens a review instead of merging them again.
    let again = suite.post(&suite.key, &url, None).await;
    assert_eq!(again.status(), 404);
    suite
        .ingest(&json!({"id": "u4", "kind": "track", "name": "x",
            "identity": {"anonymous_id": "laptop", "email": "zoe@example.com"}}))
        .await;
    let pool = suite.identity_pool().await;
    let reason: String = eventually("review after unmerge", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT reason FROM match_reviews WHERE tenant_id = 'acme' AND status = 'pending'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(reason, "rejected_before");
    let still: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", id_of(&second)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id_of(&still), id_of(&second));
    suite.stop().await;
}

/// An identifier that another customer holds is not attached, and the profile says why
/// (the README's first example: its email belongs to a customer of the demo data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_says_why_an_identifier_was_not_attached() {
    let suite = Suite::start().await;
    let post = |body: Value| {
        let suite = &suite;
        async move {
            let r = suite.post_events(&suite.key, &body).await;
            assert_eq!(r.status().as_u16(), 202);
        }
    };
    post(json!({"id": "why-1", "kind": "identify",
        "identity": {"user_id": "why-a", "email": "shared.why@example.com"}}))
    .await;
    let a = suite.wait_for_customer("why-a", |_| true).await;
    post(json!({"id": "why-2", "kind": "identify",
        "identity": {"user_id": "why-b", "email": "shared.why@example.com"}}))
    .await;
    let b = suite.wait_for_customer("why-b", |_| true).await;
    assert_ne!(a["id"], b["id"], "two user ids: two people");
    let ids = b["identifiers"].as_array().unwrap();
    assert!(!ids.iter().any(|i| i["kind"] == "email"), "{b}");
    // The answer the API gives (the cache or identity) explains it.
    let profile: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", b["id"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    let unattached = profile["unattached"].as_array().expect("unattached");
    assert_eq!(unattached.len(), 1, "{profile}");
    assert_eq!(unattached[0]["kind"], "email");
    assert_eq!(
        unattached[0]["reason"],
        "held_by_customer_with_another_user_id"
    );
    assert_eq!(unattached[0]["held_by"], a["id"]);
    assert_eq!(unattached[0]["event_id"], "why-2");
    // A's own profile has nothing unattached.
    let a_profile: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", a["id"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(a_profile.get("unattached").is_none(), "{a_profile}");
    suite.stop().await;
}
