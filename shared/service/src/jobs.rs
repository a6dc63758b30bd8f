//! Persistent jobs: long-running work (a scoring run with its model fits, a clean-up, an
//! import) that an HTTP call starts and a worker carries out, so that the call answers at once
//! (202 with the job's URL) and no request holds a runtime thread for seconds.
//!
//! - [`enqueue`] writes a `queued` row; [`get`] reads it back for its tenant only.
//! - A part's [`Worker`] claims the oldest open job of its kinds with `FOR UPDATE SKIP LOCKED`
//!   (several replicas never take the same job), holds a lease that it renews while the job
//!   runs, and records the result or the error. When the holder dies, the lease runs out and
//!   another replica (or the restarted one) takes the job over; a job taken over
//!   [`MAX_ATTEMPTS`] times is failed rather than retried forever.
//! - The job itself runs CPU-heavy steps on `spawn_blocking` (its own business: see the part's
//!   job function).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A job taken over this many times (its holder died each time) is failed.
pub const MAX_ATTEMPTS: i32 = 3;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobView {
    /// Its id within the part.
    pub id: i64,
    /// What it does (`scoring_run`, ...).
    pub kind: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// The latest progress the job reported.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<sqlx::types::Json<Value>>,
    /// What it produced, once `succeeded`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<sqlx::types::Json<Value>>,
    /// Why it failed.
    pub error: Option<String>,
    /// How many times a worker took it.
    pub attempts: i32,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When a worker first took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The answer to a call that queued a job (202, with `url` also in `Location`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobQueued {
    /// The job's id through the gateway: the part's name, a dash and its id.
    #[schema(example = "segmentation-42")]
    pub job_id: String,
    /// `queued`.
    pub status: String,
    /// Where to follow it: `GET /v1/jobs/{job_id}`.
    #[schema(example = "/v1/jobs/segmentation-42")]
    pub url: String,
}

impl JobQueued {
    /// The answer for job `id` of `part`.
    pub fn new(part: &str, id: i64) -> Self {
        let job_id = format!("{part}-{id}");
        Self {
            url: format!("/v1/jobs/{job_id}"),
            job_id,
            status: "queued".to_owned(),
        }
    }
}

/// A part's answer to `GET …/tenants/{tenant}/jobs/{id}`: the job of `tenant` with its
/// gateway id (`<part>-<id>`) as `job_id`; 404 `job_not_found` for none or another tenant's.
pub async fn answer(
    pool: &PgPool,
    tenant: &TenantId,
    part: &str,
    id: &str,
) -> Result<Value, crate::Problem> {
    let not_found = || {
        crate::Problem::new(
            axum::http::StatusCode::NOT_FOUND,
            crate::Code::JobNotFound,
            "no such job for this tenant",
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let job = get(pool, tenant, id).await?.ok_or_else(not_found)?;
    let mut view = serde_json::json!(job);
    view["job_id"] = Value::String(format!("{part}-{}", job.id));
    Ok(view)
}

/// Queues a job of `kind` for `tenant`; its id.
pub async fn enqueue(
    pool: &PgPool,
    tenant: &TenantId,
    kind: &str,
    params: &Value,
) -> Result<i64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    enqueue_in(&mut conn, tenant, kind, params).await
}

/// [`enqueue`] inside the caller's transaction: the job exists if and only if the change that
/// calls for it commits.
pub async fn enqueue_in(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    kind: &str,
    params: &Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, params) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(kind)
    .bind(sqlx::types::Json(params))
    .fetch_one(conn)
    .await
}

/// The job `id` of `tenant` (another tenant's job is not found).
pub async fn get(
    pool: &PgPool,
    tenant: &TenantId,
    id: i64,
) -> Result<Option<JobView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, status, progress, result, error, attempts, created_at, started_at, finished_at
         FROM jobs WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant: TenantId,
    /// What it does.
    pub kind: String,
    /// Its parameters.
    pub params: Value,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
}

/// Takes the oldest open job of `kinds` (queued, or running under a lease that ran out) for
/// `owner`, leased for `lease`. Jobs over [`MAX_ATTEMPTS`] are failed on the way.
pub async fn claim(
    pool: &PgPool,
    kinds: &[&str],
    owner: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = now(), lease_owner = NULL,
             error = 'abandoned: its worker stopped ' || attempts || ' times while running it'
         WHERE kind = ANY($1) AND status = 'running' AND lease_until < now() AND attempts >= $2",
    )
    .bind(&kinds)
    .bind(MAX_ATTEMPTS)
    .execute(pool)
    .await?;
    let row: Option<(i64, String, String, sqlx::types::Json<Value>, i32)> = sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2,
             lease_until = now() + make_interval(secs => $3), started_at = coalesce(started_at, now())
         WHERE id = (SELECT id FROM jobs
                     WHERE kind = ANY($1)
                       AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
                     ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING id, tenant_id, kind, params, attempts",
    )
    .bind(&kinds)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(id, tenant, kind, params, attempts)| {
        Some(Claimed {
            id,
            tenant: TenantId::parse(&tenant).ok()?,
            kind,
            params: params.0,
            attempts,
        })
    }))
}

/// Extends `owner`'s lease on job `id`; `false` when the job is no longer its own (the lease
/// ran out and another worker took it).
pub async fn renew(
    pool: &PgPool,
    id: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records progress of job `id` (for example `{"done": 40000, "of": 1000000}`).
pub async fn report_progress(pool: &PgPool, id: i64, progress: &Value) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET progress = $2 WHERE id = $1")
        .bind(id)
        .bind(sqlx::types::Json(progress))
        .execute(pool)
        .await?;
    Ok(())
}

/// [`report_progress`] inside the caller's transaction: the progress commits with the work it
/// describes, so a job taken over resumes exactly where the last commit left it.
pub async fn report_progress_in(
    conn: &mut sqlx::PgConnection,
    id: i64,
    progress: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET progress = $2 WHERE id = $1")
        .bind(id)
        .bind(sqlx::types::Json(progress))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the end of job `id`, if `owner` still holds it.
pub async fn finish(
    pool: &PgPool,
    id: i64,
    owner: &str,
    outcome: &Result<Value, String>,
) -> Result<bool, sqlx::Error> {
    let (status, result, error) = match outcome {
        Ok(v) => ("succeeded", Some(sqlx::types::Json(v)), None),
        Err(e) => ("failed", None, Some(e.as_str())),
    };
    let done = sqlx::query(
        "UPDATE jobs SET status = $3, result = $4, error = $5, finished_at = now(),
             lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(status)
    .bind(result)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A part's job worker: which kinds it runs, under which owner name, with which lease.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The part's database.
    pub pool: PgPool,
    /// The kinds of job it takes.
    pub kinds: &'static [&'static str],
    /// This replica's name in `lease_owner` (unique per process).
    pub owner: String,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often it looks for work when idle.
    pub poll: Duration,
    /// Counts leases lost while running (`crm_job_leases_lost_total`), when set.
    pub leases_lost: Option<prometheus::IntCounterVec>,
}

impl Worker {
    /// A worker of `kinds` on `pool` with a 30 s lease, looking for work every 500 ms.
    pub fn new(pool: PgPool, kinds: &'static [&'static str]) -> Self {
        Self {
            pool,
            kinds,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            leases_lost: None,
        }
    }

    /// The worker counting lost leases in `metrics`.
    pub fn with_metrics(mut self, metrics: &crm_telemetry::Metrics) -> Self {
        self.leases_lost = Some(metrics.job_leases_lost.clone());
        self
    }

    /// Runs jobs one at a time until `shutdown`: claims one, renews its lease while `run`
    /// works on it, records what `run` returned. A job still running at shutdown is left to
    /// its lease (another replica, or this one restarted, takes it over).
    pub async fn run<F, Fut>(self, shutdown: CancellationToken, run: F)
    where
        F: Fn(Claimed) -> Fut,
        Fut: Future<Output = Result<Value, String>>,
    {
        loop {
            let claimed = match claim(&self.pool, self.kinds, &self.owner, self.lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for jobs");
                    None
                }
            };
            let Some(job) = claimed else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.poll) => continue,
                }
            };
            let (id, kind) = (job.id, job.kind.clone());
            tracing::info!(job = id, kind = %kind, attempt = job.attempts, "job started");
            let work = run(job);
            tokio::pin!(work);
            let mut renewals = tokio::time::interval(self.lease / 3);
            renewals.tick().await;
            let outcome = loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        tracing::info!(job = id, "shutdown with a job running; its lease lets another replica take it over");
                        return;
                    }
                    outcome = &mut work => break outcome,
                    _ = renewals.tick() => {
                        match renew(&self.pool, id, &self.owner, self.lease).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(job = id, "job lease lost to another worker; leaving it");
                                if let Some(lost) = &self.leases_lost {
                                    lost.with_label_values(&[kind.as_str()]).inc();
                                }
                                break Err(String::new());
                            }
                            Err(e) => tracing::warn!(job = id, error = %e, "could not renew a job lease"),
                        }
                    }
                }
            };
            match finish(&self.pool, id, &self.owner, &outcome).await {
                Ok(true) => {
                    tracing::info!(job = id, kind = %kind, ok = outcome.is_ok(), "job ended")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "could not record a job's end; its lease will run out and it runs again")
                }
            }
        }
    }
}
