//! Periodic work that is safe with several replicas and with restarts: one helper for every
//! scheduler of the suite (segmentation's rechecks and scoring, loyalty's expiry and tiers,
//! identity's timeline purge, and the purge of `processed_messages` every part has).
//!
//! - **One replica per tick.** Each task has a row in `schedules`. A replica runs a tick only
//!   after [`claim`] took the row: its `next_run_at` has come and no live run holds it. The
//!   claim moves `next_run_at` one interval on, so a second replica polling at the same moment
//!   finds nothing to do. A run holds the row for a lease; a holder that died is replaced once
//!   the lease has run out.
//! - **Restarts keep the rhythm.** The schedule lives in the database: a part restarted an hour
//!   into a daily interval runs 23 hours later, not 24, and a task that never ran runs soon
//!   after the first start ([`Schedule::first_after`]).
//! - **Shutdown.** The loop ends when the part's shutdown token is cancelled; a pass in
//!   progress is dropped at its next await and its lease lets the next tick run it again.
//! - **Per-tenant errors.** [`each_tenant`] runs a step per tenant and logs a tenant's failure
//!   without aborting the pass for the others.

use std::future::Future;
use std::time::Duration;

use crm_envelope::TenantId;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A periodic task.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name, unique within the part's database (`segmentation.recheck`, ...).
    pub name: &'static str,
    /// Time between the starts of two runs.
    pub every: Duration,
    /// Delay before a task that never ran runs for the first time.
    pub first_after: Duration,
    /// How long a run holds the task before another replica may take it over.
    pub lease: Duration,
}

impl Schedule {
    /// `name` every `every`, first run after at most 5 s, a run's lease ten minutes (or the
    /// interval, when shorter).
    pub fn every(name: &'static str, every: Duration) -> Self {
        Self {
            name,
            every,
            first_after: every.min(Duration::from_secs(5)),
            lease: every
                .min(Duration::from_secs(600))
                .max(Duration::from_secs(1)),
        }
    }

    /// How often the loop looks at the row: the interval, capped at 5 s so that a replica that
    /// did not run the last tick notices the next one soon.
    fn poll(&self) -> Duration {
        self.every
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(10))
    }
}

/// Takes task `schedule` for `holder` when its run is due and no live run holds it; `true`
/// when this caller is to run it now.
pub async fn claim(pool: &PgPool, schedule: &Schedule, holder: &str) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO schedules (name, next_run_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(schedule.name)
    .bind(schedule.first_after.as_secs_f64())
    .execute(pool)
    .await?;
    let taken = sqlx::query(
        "UPDATE schedules SET holder = $2, runs = runs + 1, last_started_at = now(),
             running_until = now() + make_interval(secs => $3),
             next_run_at = now() + make_interval(secs => $4)
         WHERE name = $1 AND next_run_at <= now()
           AND (running_until IS NULL OR running_until <= now())",
    )
    .bind(schedule.name)
    .bind(holder)
    .bind(schedule.lease.as_secs_f64())
    .bind(schedule.every.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// How long until `schedule` may next be claimed (its next run, or the end of a live run's
/// lease, whichever is later); zero when it may be claimed now.
pub async fn due_in(pool: &PgPool, schedule: &Schedule) -> Result<Duration, sqlx::Error> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM greatest(next_run_at, coalesce(running_until, next_run_at)) - now())::float8
         FROM schedules WHERE name = $1",
    )
    .bind(schedule.name)
    .fetch_optional(pool)
    .await?;
    Ok(Duration::from_secs_f64(secs.unwrap_or(0.0).max(0.0)))
}

/// Records the end of `holder`'s run of `schedule` (its error, if any) and frees the task.
pub async fn finish(
    pool: &PgPool,
    schedule: &Schedule,
    holder: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE schedules SET running_until = NULL, last_finished_at = now(), last_error = $3
         WHERE name = $1 AND holder = $2",
    )
    .bind(schedule.name)
    .bind(holder)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many times `name` has been run, by any replica (for tests and `crm-<part>` checks).
pub async fn runs(pool: &PgPool, name: &str) -> Result<i64, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT runs FROM schedules WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}

/// A name for this process in `schedules.holder` (unique per process).
pub fn holder() -> String {
    format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

/// Runs `pass` on `schedule` until `shutdown`, on whichever replica claims each tick. A pass's
/// error is logged and recorded in `schedules.last_error`; the next tick runs as planned.
pub async fn run<F, Fut>(pool: PgPool, schedule: Schedule, shutdown: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let holder = holder();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match claim(&pool, &schedule, &holder).await {
            Ok(true) => {}
            Ok(false) => {
                // Sleep until the task is due, but look again within the poll interval: a
                // replica that ran it may have moved it, or died holding it.
                wait = match due_in(&pool, &schedule).await {
                    Ok(d) => d.clamp(Duration::from_millis(10), schedule.poll()),
                    Err(_) => schedule.poll(),
                };
                continue;
            }
            Err(e) => {
                tracing::warn!(schedule = schedule.name, error = %e, "could not look at the schedule; trying again");
                wait = schedule.poll();
                continue;
            }
        }
        wait = Duration::ZERO;
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = pass() => outcome,
        };
        let error = outcome.err().map(|e| format!("{e:#}"));
        if let Some(e) = &error {
            tracing::warn!(schedule = schedule.name, error = %e, "scheduled pass failed; the next tick runs as planned");
        }
        if let Err(e) = finish(&pool, &schedule, &holder, error.as_deref()).await {
            tracing::warn!(schedule = schedule.name, error = %e, "could not record the end of a scheduled pass; its lease frees it");
        }
    }
}

/// Runs `step` for each of `tenants` in turn; a tenant's error is logged and counted, and the
/// pass goes on with the next tenant. Fails only when every tenant failed, so that the
/// schedule records a pass that did nothing.
pub async fn each_tenant<F, Fut>(
    task: &str,
    tenants: Vec<TenantId>,
    mut step: F,
) -> anyhow::Result<()>
where
    F: FnMut(TenantId) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let total = tenants.len();
    let mut failed = 0usize;
    let mut last = None;
    for tenant in tenants {
        let name = tenant.as_str().to_owned();
        if let Err(e) = step(tenant).await {
            failed += 1;
            tracing::warn!(task, tenant = %name, error = %format!("{e:#}"), "scheduled step failed for one tenant; going on with the others");
            last = Some(e);
        }
    }
    match last {
        Some(e) if failed == total => {
            Err(e.context(format!("{task}: failed for all {total} tenants")))
        }
        _ => Ok(()),
    }
}

/// Tenants named in `column` of `table` (a part's list of tenants with work of a kind); names
/// that are not valid tenant ids are skipped.
pub async fn tenants_in(
    pool: &PgPool,
    table: &'static str,
    column: &'static str,
) -> Result<Vec<TenantId>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(&format!("SELECT DISTINCT {column} FROM {table}"))
        .fetch_all(pool)
        .await?;
    Ok(names
        .iter()
        .filter_map(|n| TenantId::parse(n).ok())
        .collect())
}

/// Deletes `processed_messages` rows older than `keep` in slices of 10,000 (short
/// transactions); the count deleted. A message redelivered after that would be applied again,
/// so `keep` must exceed the topics' retention.
pub async fn purge_processed(pool: &PgPool, keep: Duration) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM processed_messages WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM processed_messages
                 WHERE processed_at < now() - make_interval(secs => $1) LIMIT 10000))",
        )
        .bind(keep.as_secs_f64())
        .execute(pool)
        .await?;
        total += done.rows_affected();
        if done.rows_affected() < 10_000 {
            return Ok(total);
        }
    }
}
