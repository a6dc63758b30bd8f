//! Persistent jobs against a real PostgreSQL: one claim per job across replicas, a lease that
//! another replica takes over when the holder dies, a job abandoned after repeated deaths,
//! tenant isolation, and a worker carrying a job to its result.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crm_envelope::TenantId;
use crm_service::jobs::{self, Worker, MAX_ATTEMPTS};
use crm_tests::{eventually, postgres, unique_id};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn database() -> PgPool {
    let url = format!("{}/crm_test_{}_jobs", postgres(), unique_id());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 4).await.unwrap();
    crm_service::db::migrate(&pool, &crm_segmentation::MIGRATOR)
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn a_dead_holders_job_is_taken_over_after_its_lease_and_abandoned_after_repeated_deaths() {
    let pool = database().await;
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    let lease = Duration::from_millis(800);
    let kinds = &["demo"];
    let first = jobs::enqueue(&pool, &acme, "demo", &json!({"n": 1}))
        .await
        .unwrap();
    let second = jobs::enqueue(&pool, &acme, "demo", &json!({"n": 2}))
        .await
        .unwrap();

    // Two replicas claim at once: each gets its own job.
    let (a, b) = tokio::join!(
        jobs::claim(&pool, kinds, "replica-a", lease),
        jobs::claim(&pool, kinds, "replica-b", lease)
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_ne!(a.id, b.id);
    let mut ids = [a.id, b.id];
    ids.sort_unstable();
    assert_eq!(ids, [first, second]);
    assert!(jobs::claim(&pool, kinds, "replica-c", lease)
        .await
        .unwrap()
        .is_none());

    // B finishes its job; A dies holding the other. After the lease, C takes it over.
    assert!(
        jobs::finish(&pool, b.id, "replica-b", &Ok(json!({"done": true})))
            .await
            .unwrap()
    );
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let taken = jobs::claim(&pool, kinds, "replica-c", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.attempts), (a.id, 2));
    // The dead holder's late answer is refused; its renewal too.
    assert!(!jobs::finish(&pool, a.id, "replica-a", &Ok(json!({})))
        .await
        .unwrap());
    assert!(!jobs::renew(&pool, a.id, "replica-a", lease).await.unwrap());
    assert!(jobs::renew(&pool, a.id, "replica-c", lease).await.unwrap());

    // Each tenant sees its own jobs only.
    let view = jobs::get(&pool, &acme, b.id).await.unwrap().unwrap();
    assert_eq!(view.status, "succeeded");
    assert_eq!(view.result.unwrap().0, json!({"done": true}));
    assert!(jobs::get(&pool, &other, b.id).await.unwrap().is_none());

    // A job whose holder keeps dying is failed after MAX_ATTEMPTS, not run forever.
    for attempt in 3..=MAX_ATTEMPTS {
        tokio::time::sleep(lease + Duration::from_millis(300)).await;
        let again = jobs::claim(&pool, kinds, "replica-d", lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.attempts, attempt);
    }
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    assert!(jobs::claim(&pool, kinds, "replica-e", lease)
        .await
        .unwrap()
        .is_none());
    let abandoned = jobs::get(&pool, &acme, a.id).await.unwrap().unwrap();
    assert_eq!(abandoned.status, "failed");
    assert!(abandoned.error.unwrap().starts_with("abandoned"));
}

#[tokio::test]
async fn a_worker_runs_queued_jobs_to_their_result_and_records_failures() {
    let pool = database().await;
    let acme = TenantId::parse("acme").unwrap();
    let ok = jobs::enqueue(&pool, &acme, "square", &json!({"n": 7}))
        .await
        .unwrap();
    let bad = jobs::enqueue(&pool, &acme, "square", &json!({"n": "x"}))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = Worker {
        poll: Duration::from_millis(50),
        ..Worker::new(pool.clone(), &["square"])
    };
    let task = tokio::spawn(worker.run(stop.clone(), |job| async move {
        let n = job.params["n"].as_i64().ok_or("n is not a number")?;
        let square = tokio::task::spawn_blocking(move || n * n)
            .await
            .map_err(|e| e.to_string())?;
        Ok(json!({"square": square}))
    }));
    let ended = |id| {
        let (pool, acme) = (&pool, &acme);
        async move {
            eventually("the job ended", || async {
                let job = jobs::get(pool, acme, id).await.unwrap()?;
                (job.status == "succeeded" || job.status == "failed").then_some(job)
            })
            .await
        }
    };
    let done = ended(ok).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.result.unwrap().0, json!({"square": 49}));
    let failed = ended(bad).await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.error.as_deref(), Some("n is not a number"));
    stop.cancel();
    task.await.unwrap();
}
