//! The customer timeline through the gateway: every event in order with cursor paging, merged
//! customers' events following the merge, and the tenant's retention.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, Utc};
use crm_tests::{eventually, Suite};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_pages_follows_merges_and_keeps_retention() {
    let suite = Suite::start().await;
    let pool = suite.identity_pool().await;
    // Keep 30 days for this tenant.
    sqlx::query("INSERT INTO identity_settings (tenant_id, settings) VALUES ('acme', '{\"timeline_retention_days\": 30}')")
        .execute(&pool)
        .await
        .unwrap();

    let now = Utc::now();
    let day = |d: i64| (now - Duration::days(d)).to_rfc3339();
    suite
        .ingest(&json!({"id": "t-old", "kind": "track", "name": "ancient", "occurred_at": day(90), "identity": {"user_id": "tim"}}))
        .await;
    for (n, d) in [(1, 5), (2, 4), (3, 3)] {
        suite
            .ingest(&json!({"id": format!("t{n}"), "kind": "track", "name": format!("step-{n}"), "occurred_at": day(d),
                "identity": {"user_id": "tim"}, "properties": {"n": n}}))
            .await;
    }
    // An anonymous visitor's events, merged in later.
    suite
        .ingest(&json!({"id": "a1", "kind": "page", "name": "landing", "occurred_at": day(6), "identity": {"anonymous_id": "visitor-9"}}))
        .await;
    eventually("visitor", || suite.customer_by("anonymous_id", "visitor-9")).await;
    suite
        .ingest(
            &json!({"id": "t4", "kind": "track", "name": "signed-in", "occurred_at": day(2),
            "identity": {"user_id": "tim", "anonymous_id": "visitor-9"}}),
        )
        .await;
    let tim = suite
        .wait_for_customer("tim", |p| p["event_count"] == 6)
        .await;
    let id = tim["id"].as_str().unwrap().to_owned();

    // Newest first, two per page; the 90-day-old event is past retention.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/customers/{id}/timeline?limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = suite
            .get(Some(&suite.key), &path)
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(
        names,
        ["signed-in", "step-3", "step-2", "step-1", "landing"]
    );

    let bad = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{id}/timeline?cursor=nothex"),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "invalid_cursor");

    // The purge deletes what is past retention.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM timeline WHERE tenant_id = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let purged = crm_identity::store::timeline::purge(&pool, 730)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM timeline WHERE tenant_id = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, before - 1);
    suite.stop().await;
}
