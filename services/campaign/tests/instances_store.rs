//! Journey instances in PostgreSQL: entry rules and one live instance per key (also when two
//! connections enter at once), timers shared by concurrent claimers without a double claim and
//! returned by a rolled-back claim, step keys applied once, exits cancelling the pending
//! timer, merges (the survivor keeps one instance per journey) and erasure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use crm_campaign::domain::journeys::{Entry, Reentry};
use crm_campaign::store::instances::{self, Entrant};
use crm_envelope::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

async fn pool() -> PgPool {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_instances", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 6).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    pool
}

fn entrant(journey: Uuid, customer: Uuid, key: &str) -> Entrant<'_> {
    Entrant {
        journey,
        version: 1,
        customer,
        entry_key: key,
        start: "hello",
    }
}

#[tokio::test]
async fn entry_rules_and_one_live_instance_per_key() {
    let pool = pool().await;
    let t = TenantId::parse("acme").unwrap();
    let (journey, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let key = customer.to_string();
    let now = Utc::now();
    let never = Entry::default();
    let after = Entry {
        reentry: Reentry::AfterExit,
        cooldown_hours: Some(24),
    };
    let mut c = pool.acquire().await.unwrap();

    // Two connections entering the same customer at once make one instance.
    let (a, b) = tokio::join!(
        async {
            let mut c = pool.acquire().await.unwrap();
            instances::enter(&mut c, &t, &entrant(journey, customer, &key), &after, now).await
        },
        async {
            let mut c = pool.acquire().await.unwrap();
            instances::enter(&mut c, &t, &entrant(journey, customer, &key), &after, now).await
        }
    );
    let made: Vec<Uuid> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let first = made[0];

    // While live: no second instance; after exit: not before the cooldown.
    assert_eq!(
        instances::enter(&mut c, &t, &entrant(journey, customer, &key), &after, now)
            .await
            .unwrap(),
        None
    );
    assert!(instances::exit(&mut c, &t, first, "goal", now)
        .await
        .unwrap());
    assert!(!instances::exit(&mut c, &t, first, "goal", now)
        .await
        .unwrap());
    assert_eq!(
        instances::enter(
            &mut c,
            &t,
            &entrant(journey, customer, &key),
            &after,
            now + Duration::hours(23)
        )
        .await
        .unwrap(),
        None
    );
    assert!(instances::enter(
        &mut c,
        &t,
        &entrant(journey, customer, &key),
        &after,
        now + Duration::hours(25)
    )
    .await
    .unwrap()
    .is_some());

    // `never`: once per key, ever.
    let other = Uuid::now_v7();
    let k2 = other.to_string();
    let once = instances::enter(&mut c, &t, &entrant(other, customer, &k2), &never, now)
        .await
        .unwrap()
        .unwrap();
    instances::exit(&mut c, &t, once, "done", now)
        .await
        .unwrap();
    assert_eq!(
        instances::enter(
            &mut c,
            &t,
            &entrant(other, customer, &k2),
            &never,
            now + Duration::days(400)
        )
        .await
        .unwrap(),
        None
    );
}

#[tokio::test]
async fn timers_are_claimed_once_across_replicas_and_exits_cancel_them() {
    let pool = pool().await;
    let t = TenantId::parse("acme").unwrap();
    let journey = Uuid::now_v7();
    let now = Utc::now();
    let mut c = pool.acquire().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        let customer = Uuid::now_v7();
        let key = customer.to_string();
        let id = instances::enter(
            &mut c,
            &t,
            &entrant(journey, customer, &key),
            &Entry::default(),
            now,
        )
        .await
        .unwrap()
        .unwrap();
        instances::schedule(&mut c, &t, id, now - Duration::seconds(1), "next")
            .await
            .unwrap();
        ids.push(id);
    }
    // One not yet due, one cancelled by an exit.
    instances::schedule(&mut c, &t, ids[0], now + Duration::hours(1), "later")
        .await
        .unwrap();
    instances::exit(&mut c, &t, ids[1], "exit_event", now)
        .await
        .unwrap();

    // A claim rolled back (a replica that died) gives its timers back.
    {
        let mut tx = pool.begin().await.unwrap();
        let lost = instances::claim_due(&mut tx, now, 10).await.unwrap();
        assert_eq!(lost.len(), 10);
        tx.rollback().await.unwrap();
    }

    // Two replicas claiming at once, in small batches, each until nothing is left.
    let claim_all = |pool: PgPool| async move {
        let mut got = Vec::new();
        loop {
            let mut tx = pool.begin().await.unwrap();
            let batch = instances::claim_due(&mut tx, now, 5).await.unwrap();
            tx.commit().await.unwrap();
            if batch.is_empty() {
                break got;
            }
            got.extend(batch.into_iter().map(|d| d.instance));
        }
    };
    let (a, b) = tokio::join!(claim_all(pool.clone()), claim_all(pool.clone()));
    let all: Vec<Uuid> = a.iter().chain(&b).copied().collect();
    let distinct: BTreeSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a timer was claimed twice");
    let expected: BTreeSet<Uuid> = ids[2..].iter().copied().collect();
    assert_eq!(distinct, expected);

    // Step keys apply once.
    assert!(instances::first_step(&mut c, &t, ids[2], "hello", 1)
        .await
        .unwrap());
    assert!(!instances::first_step(&mut c, &t, ids[2], "hello", 1)
        .await
        .unwrap());
    assert!(instances::first_step(&mut c, &t, ids[2], "hello", 2)
        .await
        .unwrap());
}

#[tokio::test]
async fn instances_follow_merges_and_erasure() {
    let pool = pool().await;
    let t = TenantId::parse("acme").unwrap();
    let (welcome, winback) = (Uuid::now_v7(), Uuid::now_v7());
    let (survivor, merged) = (Uuid::now_v7(), Uuid::now_v7());
    let (s, m) = (survivor.to_string(), merged.to_string());
    let now = Utc::now();
    let rule = Entry::default();
    let mut c = pool.acquire().await.unwrap();
    instances::enter(&mut c, &t, &entrant(welcome, survivor, &s), &rule, now)
        .await
        .unwrap()
        .unwrap();
    let dup = instances::enter(&mut c, &t, &entrant(welcome, merged, &m), &rule, now)
        .await
        .unwrap()
        .unwrap();
    instances::schedule(&mut c, &t, dup, now + Duration::hours(1), "wait")
        .await
        .unwrap();
    let moved = instances::enter(&mut c, &t, &entrant(winback, merged, &m), &rule, now)
        .await
        .unwrap()
        .unwrap();

    instances::follow_merge(&mut c, &t, merged, survivor, now)
        .await
        .unwrap();
    let live = instances::live_of(&mut c, &t, survivor).await.unwrap();
    let journeys: BTreeSet<Uuid> = live.iter().map(|(_, j)| *j).collect();
    assert_eq!(
        journeys,
        BTreeSet::from([welcome, winback]),
        "one instance per journey"
    );
    assert!(live.iter().any(|(i, _)| *i == moved));
    assert!(instances::live_of(&mut c, &t, merged)
        .await
        .unwrap()
        .is_empty());
    // The duplicate's pending wait was cancelled with it.
    let mut tx = pool.begin().await.unwrap();
    let due = instances::claim_due(&mut tx, now + Duration::days(1), 100)
        .await
        .unwrap();
    assert!(due.iter().all(|d| d.instance != dup));
    tx.rollback().await.unwrap();
    // The moved instance now counts under the survivor's key: it blocks a second entry.
    assert_eq!(
        instances::enter(&mut c, &t, &entrant(winback, survivor, &s), &rule, now)
            .await
            .unwrap(),
        None
    );

    // Erasure removes every instance of the customer; another tenant's are untouched.
    let other = TenantId::parse("globex").unwrap();
    instances::enter(&mut c, &other, &entrant(welcome, survivor, &s), &rule, now)
        .await
        .unwrap()
        .unwrap();
    instances::erase(&mut c, &t, &[survivor]).await.unwrap();
    assert!(instances::live_of(&mut c, &t, survivor)
        .await
        .unwrap()
        .is_empty());
    let (left,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM journey_instances WHERE tenant_id = 'acme' AND customer_id = $1",
    )
    .bind(survivor)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        instances::live_of(&mut c, &other, survivor)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_new_version_moves_running_instances_only_when_asked_and_only_where_it_can() {
    let pool = pool().await;
    let t = TenantId::parse("acme").unwrap();
    let mut c = pool.acquire().await.unwrap();
    let journey = Uuid::now_v7();
    let now = Utc::now();
    let mut ids = Vec::new();
    for node in ["wait", "old-only"] {
        let customer = Uuid::now_v7();
        let key = customer.to_string();
        let id = instances::enter(
            &mut c,
            &t,
            &entrant(journey, customer, &key),
            &Entry::default(),
            now,
        )
        .await
        .unwrap()
        .unwrap();
        instances::move_to(&mut c, &t, id, node, None)
            .await
            .unwrap();
        ids.push(id);
    }
    let version = |id: Uuid| {
        let pool = pool.clone();
        async move {
            let (v,): (i32,) =
                sqlx::query_as("SELECT version FROM journey_instances WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            v
        }
    };
    // Publishing version 2 moves nobody by itself; asked, the instance at a node version 2
    // has moves, the other stays on version 1 and runs to its end there.
    assert_eq!((version(ids[0]).await, version(ids[1]).await), (1, 1));
    let nodes = vec!["wait".to_owned(), "send".to_owned(), "done".to_owned()];
    let (moved, left) = instances::migrate(&mut c, &t, journey, 2, &nodes)
        .await
        .unwrap();
    assert_eq!((moved, left), (1, 1));
    assert_eq!((version(ids[0]).await, version(ids[1]).await), (2, 1));
    // Asked again: nothing more moves.
    assert_eq!(
        instances::migrate(&mut c, &t, journey, 2, &nodes)
            .await
            .unwrap(),
        (0, 1)
    );
}
