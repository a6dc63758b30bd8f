//! The shared scheduler against a real PostgreSQL: several replicas run each tick once, a run
//! whose holder died is taken over after its lease, a task that never ran runs soon after
//! start while a restart keeps the rhythm, one tenant's failure does not stop the others, and
//! the purge of applied-message records keeps what is inside the retention.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use crm_service::schedule::{self, Schedule};
use crm_tests::{eventually, postgres, unique_id};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn database() -> PgPool {
    let url = format!("{}/crm_test_{}_schedule", postgres(), unique_id());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 6).await.unwrap();
    crm_service::db::migrate(&pool, &crm_loyalty::MIGRATOR)
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn three_replicas_run_each_tick_once() {
    let pool = database().await;
    let every = Duration::from_millis(300);
    let schedule = Schedule {
        first_after: Duration::ZERO,
        ..Schedule::every("test.ticks", every)
    };
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let (pool, schedule, starts) = (pool.clone(), schedule.clone(), Arc::clone(&starts));
        replicas.push(tokio::spawn(schedule::run(
            pool,
            schedule,
            shutdown.clone(),
            move || {
                let starts = Arc::clone(&starts);
                async move {
                    starts.lock().unwrap().push(Instant::now());
                    // A pass that takes a while: the others must not start it meanwhile.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(())
                }
            },
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.cancel();
    for r in replicas {
        r.await.unwrap();
    }
    let starts = starts.lock().unwrap().clone();
    let runs = schedule::runs(&pool, "test.ticks").await.unwrap();
    assert_eq!(runs as usize, starts.len(), "every claim ran once");
    // 3 s at one run per 300 ms: about 10 runs, however many replicas poll.
    assert!(
        (5..=12).contains(&starts.len()),
        "{} runs in 3 s with a 300 ms interval",
        starts.len()
    );
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(200),
            "two runs {gap:?} apart: a tick ran twice"
        );
    }
}

#[tokio::test]
async fn a_dead_holders_run_is_taken_over_after_its_lease() {
    let pool = database().await;
    let schedule = Schedule {
        name: "test.lease",
        every: Duration::from_millis(100),
        first_after: Duration::ZERO,
        lease: Duration::from_millis(1_500),
    };
    assert!(schedule::claim(&pool, &schedule, "replica-a")
        .await
        .unwrap());
    // A dies without finishing: its lease holds the task although the next tick is due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!schedule::claim(&pool, &schedule, "replica-b")
        .await
        .unwrap());
    let waited = Instant::now();
    eventually("replica b takes the task over", || {
        let (pool, schedule) = (pool.clone(), schedule.clone());
        async move {
            schedule::claim(&pool, &schedule, "replica-b")
                .await
                .unwrap()
                .then_some(())
        }
    })
    .await;
    // Not before the lease ran out (1.5 s from A's claim, 0.3 s of it already gone).
    assert!(waited.elapsed() >= Duration::from_millis(1_000));
    let holder: String = sqlx::query_scalar("SELECT holder FROM schedules WHERE name = $1")
        .bind("test.lease")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(holder, "replica-b");
    // A finishing late does not free B's run.
    schedule::finish(&pool, &schedule, "replica-a", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!schedule::claim(&pool, &schedule, "replica-c")
        .await
        .unwrap());
    schedule::finish(&pool, &schedule, "replica-b", Some("boom"))
        .await
        .unwrap();
    let error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM schedules WHERE name = $1")
            .bind("test.lease")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(error.as_deref(), Some("boom"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(schedule::claim(&pool, &schedule, "replica-c")
        .await
        .unwrap());
}

#[tokio::test]
async fn a_new_task_runs_soon_after_start_and_a_restart_keeps_the_rhythm() {
    let pool = database().await;
    let schedule = Schedule {
        first_after: Duration::from_millis(200),
        ..Schedule::every("test.daily", Duration::from_secs(24 * 3600))
    };
    let run_once = |pool: PgPool, schedule: Schedule| async move {
        let shutdown = CancellationToken::new();
        let loop_ = tokio::spawn(schedule::run(pool, schedule, shutdown.clone(), || async {
            Ok(())
        }));
        tokio::time::sleep(Duration::from_secs(2)).await;
        shutdown.cancel();
        loop_.await.unwrap();
    };
    let started = Instant::now();
    run_once(pool.clone(), schedule.clone()).await;
    assert_eq!(schedule::runs(&pool, "test.daily").await.unwrap(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Restarted: the daily task already ran, so it does not run again now.
    run_once(pool.clone(), schedule).await;
    assert_eq!(schedule::runs(&pool, "test.daily").await.unwrap(), 1);
    let next_in_hours: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_run_at - now())::float8 / 3600 FROM schedules WHERE name = 'test.daily'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((23.9..24.0).contains(&next_in_hours), "{next_in_hours}");
}

#[tokio::test]
async fn one_tenants_failure_does_not_stop_the_others() {
    let tenants: Vec<TenantId> = ["alpha", "bravo", "charlie"]
        .iter()
        .map(|t| TenantId::parse(t).unwrap())
        .collect();
    let done: Arc<Mutex<Vec<String>>> = Arc::default();
    let outcome = schedule::each_tenant("test", tenants.clone(), |t| {
        let done = Arc::clone(&done);
        async move {
            if t.as_str() == "bravo" {
                anyhow::bail!("bravo's settings are unreadable");
            }
            done.lock().unwrap().push(t.as_str().to_owned());
            Ok(())
        }
    })
    .await;
    assert!(outcome.is_ok());
    assert_eq!(*done.lock().unwrap(), ["alpha", "charlie"]);
    let all_fail = schedule::each_tenant("test", tenants, |_| async {
        anyhow::bail!("database gone")
    })
    .await;
    let message = format!("{:#}", all_fail.unwrap_err());
    assert!(message.contains("failed for all 3 tenants"), "{message}");
}

#[tokio::test]
async fn applied_message_records_are_purged_only_past_retention() {
    let pool = database().await;
    sqlx::query(
        "INSERT INTO processed_messages (consumer, tenant_id, message_id, processed_at)
         SELECT 'crm-loyalty', 'acme', 'old-' || i, now() - interval '15 days' FROM generate_series(1, 12000) i
         UNION ALL SELECT 'crm-loyalty', 'acme', 'recent', now() - interval '13 days'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let deleted = schedule::purge_processed(&pool, Duration::from_secs(14 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(deleted, 12_000);
    let left: Vec<String> = sqlx::query_scalar("SELECT message_id FROM processed_messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["recent"]);
}
