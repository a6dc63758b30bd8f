//! Contacts keep the traits identity last published: a late, older profile message never
//! overwrites a newer one, a merge gives the survivor the merged customer's traits only when it
//! has none, and an erased customer's contact is gone for good.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::{Duration, Utc};
use crm_campaign::store::contacts;
use crm_envelope::TenantId;
use serde_json::{json, Map, Value};
use uuid::Uuid;

fn traits(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn traits_follow_the_newest_profile_merges_and_erasure() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_contacts", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 2).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let t = TenantId::parse("acme").unwrap();
    let mut c = pool.acquire().await.unwrap();
    let (ana, dup) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc::now();

    contacts::record_profile(
        &mut c,
        &t,
        ana,
        Some("ana@example.com"),
        &traits(json!({"plan": "pro"})),
        now,
    )
    .await
    .unwrap();
    // An older message arriving late changes nothing.
    contacts::record_profile(
        &mut c,
        &t,
        ana,
        None,
        &traits(json!({"plan": "free"})),
        now - Duration::minutes(5),
    )
    .await
    .unwrap();
    let got = contacts::find(&mut c, &t, ana).await.unwrap().unwrap();
    assert_eq!(got.traits.0["plan"], "pro");
    assert_eq!(got.email.as_deref(), Some("ana@example.com"));

    // A merge: the survivor keeps its own traits; the merged contact is gone.
    contacts::record_profile(
        &mut c,
        &t,
        dup,
        None,
        &traits(json!({"plan": "team", "city": "Vigo"})),
        now,
    )
    .await
    .unwrap();
    contacts::merge(&mut c, &t, dup, ana).await.unwrap();
    let merged = contacts::find(&mut c, &t, ana).await.unwrap().unwrap();
    assert_eq!(merged.traits.0["plan"], "pro");
    assert!(contacts::find(&mut c, &t, dup).await.unwrap().is_none());
    // Later profile messages of the merged id land on the survivor.
    contacts::record_profile(
        &mut c,
        &t,
        dup,
        None,
        &traits(json!({"plan": "enterprise"})),
        now + Duration::minutes(1),
    )
    .await
    .unwrap();
    assert_eq!(
        contacts::find(&mut c, &t, ana)
            .await
            .unwrap()
            .unwrap()
            .traits
            .0["plan"],
        "enterprise"
    );

    // Erased: gone, and a late profile message does not bring it back.
    contacts::erase(&mut c, &t, &[ana]).await.unwrap();
    contacts::record_profile(
        &mut c,
        &t,
        ana,
        Some("ana@example.com"),
        &traits(json!({"plan": "pro"})),
        now + Duration::minutes(2),
    )
    .await
    .unwrap();
    assert!(contacts::find(&mut c, &t, ana).await.unwrap().is_none());
}
