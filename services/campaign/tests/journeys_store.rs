//! Journeys in PostgreSQL: a checked definition is stored as a draft, publishing freezes it as
//! a version that later edits do not change, the lifecycle refuses what it must, and another
//! tenant sees nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_campaign::domain::journeys::lifecycle::{Action, Status};
use crm_campaign::domain::journeys::{parse, Limits};
use crm_campaign::store::journeys::{self, JourneyStoreError};
use crm_envelope::TenantId;
use serde_json::{json, Value};
use uuid::Uuid;

fn welcome(minutes: u32) -> Value {
    json!({
        "name": "Welcome", "time_zone": "Europe/Madrid",
        "trigger": {"event": {"name": "Signed Up"}},
        "start": "hello",
        "nodes": {
            "hello": {"send": {"template": "welcome", "channel": "email", "next": "wait"}},
            "wait": {"wait": {"minutes": minutes, "next": "done"}},
            "done": "exit"
        }
    })
}

#[tokio::test]
async fn drafts_versions_and_the_lifecycle() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_journeys", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 2).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    let mut conn = pool.acquire().await.unwrap();

    // Only a checked definition is stored.
    assert!(parse(welcome(0), &Limits::default()).is_err());
    let j = parse(welcome(60), &Limits::default()).unwrap();
    let created = journeys::create(&mut conn, &acme, &j.name, &welcome(60), "ana")
        .await
        .unwrap();
    assert_eq!(
        (
            created.status,
            created.draft_version,
            created.published_version
        ),
        (Status::Draft, 1, None)
    );

    // Pause before publishing is refused; publish freezes version 1.
    let refused = journeys::act(&mut conn, &acme, created.id, Action::Pause, "ana").await;
    assert!(matches!(refused, Err(JourneyStoreError::NotAllowed(_))));
    let live = journeys::act(&mut conn, &acme, created.id, Action::Publish, "ana")
        .await
        .unwrap();
    assert_eq!(
        (live.status, live.published_version, live.draft_version),
        (Status::Published, Some(1), 2)
    );

    // Editing the draft leaves version 1 as it was; publishing again makes version 2.
    journeys::update_draft(&mut conn, &acme, created.id, "Welcome", &welcome(120), "bo")
        .await
        .unwrap();
    let v1 = journeys::version(&mut conn, &acme, created.id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1["nodes"]["wait"]["wait"]["minutes"], 60);
    let again = journeys::act(&mut conn, &acme, created.id, Action::Publish, "bo")
        .await
        .unwrap();
    assert_eq!(again.published_version, Some(2));
    let v2 = journeys::version(&mut conn, &acme, created.id, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v2["nodes"]["wait"]["wait"]["minutes"], 120);

    // Pause, resume, archive; an archived journey changes no more.
    for (action, status) in [
        (Action::Pause, Status::Paused),
        (Action::Resume, Status::Published),
        (Action::Archive, Status::Archived),
    ] {
        let j = journeys::act(&mut conn, &acme, created.id, action, "bo")
            .await
            .unwrap();
        assert_eq!(j.status, status);
    }
    let edit = journeys::update_draft(&mut conn, &acme, created.id, "x", &welcome(5), "bo").await;
    assert!(matches!(edit, Err(JourneyStoreError::NotAllowed(_))));

    // Another tenant sees and changes nothing.
    assert!(journeys::get(&mut conn, &other, created.id)
        .await
        .unwrap()
        .is_none());
    assert!(journeys::list(&mut conn, &other).await.unwrap().is_empty());
    assert!(journeys::version(&mut conn, &other, created.id, 1)
        .await
        .unwrap()
        .is_none());
    let theirs = journeys::act(&mut conn, &other, created.id, Action::Publish, "eve").await;
    assert!(matches!(theirs, Err(JourneyStoreError::NotFound)));
    assert_eq!(journeys::list(&mut conn, &acme).await.unwrap().len(), 1);
}
