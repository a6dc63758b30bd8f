//! Batch import of customers from CSV or NDJSON: every row resolved like an identify event
//! (so the same file twice creates nothing new), a per-row error report, progress in the job
//! row, and a clean-up of the tenant's base with the probabilistic matcher at the end.

pub mod chunks;
pub mod rows;

use crm_envelope::TenantId;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cleanup::{self, Cleanup};
use crate::resolve::Resolver;

use self::rows::{Format, Row, RowError};

/// The dedupe record's consumer name of imported rows.
pub const CONSUMER: &str = "identity:import";

/// Most row errors kept in a job's report (the count goes on).
pub const MAX_REPORTED_ERRORS: usize = 1_000;

/// Rows between two progress updates of the job row.
const PROGRESS_EVERY: u64 = 200;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Data rows in the file.
    pub total_rows: u64,
    /// Rows applied.
    pub imported: u64,
    /// Rows already imported before (nothing changed).
    pub unchanged: u64,
    /// Rows that could not be imported.
    pub failed: u64,
    /// The first row errors.
    pub errors: Vec<RowError>,
    /// The clean-up that ended the import.
    pub cleanup: Option<Cleanup>,
}

/// The persistent job kind that runs an uploaded import (`crm_service::jobs`).
pub const JOB: &str = "import";

/// Creates a job row for an import of `format` with `status` (`running` for the CLI,
/// `receiving` while an upload streams in).
pub async fn create_job(
    pool: &PgPool,
    tenant: &TenantId,
    format: Format,
    status: &str,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO import_jobs (tenant_id, id, format, status) VALUES ($1, $2, $3, $4)")
        .bind(tenant.as_str())
        .bind(id)
        .bind(serde_json::to_value(format)?.as_str().unwrap_or("csv"))
        .bind(status)
        .execute(pool)
        .await?;
    Ok(id)
}

/// Marks import `job` failed with `why` (an upload that broke off or was too large).
pub async fn fail(
    pool: &PgPool,
    tenant: &TenantId,
    job: Uuid,
    why: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE import_jobs SET status = 'failed', failure = $3, finished_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(job)
    .bind(why)
    .execute(pool)
    .await?;
    Ok(())
}

/// An import's row as a resumed job reads it: format, processed, imported, unchanged, failed,
/// errors.
type JobRow = (String, i64, i64, i64, i64, sqlx::types::Json<Vec<RowError>>);

/// Where an interrupted import goes on from: rows done and the counts so far.
#[derive(Debug, Clone, Default)]
struct Checkpoint {
    processed: u64,
    summary: Summary,
}

/// Runs the uploaded import named by a claimed job (`{"import_id": …}`), from its last
/// checkpoint when another worker had started it; the file is deleted when the job ends. Rows
/// between the last checkpoint and a crash are resolved again, which changes nothing (each
/// row is applied once) and counts them as unchanged.
pub async fn run_job(
    resolver: &Resolver,
    job: &crm_service::jobs::Claimed,
) -> Result<serde_json::Value, String> {
    let pool = resolver.pool();
    let tenant = &job.tenant;
    let id = job.params["import_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or("the job names no import")?;
    let outcome = async {
        let row: Option<JobRow> = sqlx::query_as(
            "SELECT format, processed, imported, unchanged, failed, errors FROM import_jobs
                 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let (format, processed, imported, unchanged, failed, errors) =
            row.ok_or_else(|| anyhow::anyhow!("import {id} does not exist"))?;
        let format = Format::parse(&format).unwrap_or(Format::Csv);
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let start = Checkpoint {
            processed: count(processed),
            summary: Summary {
                imported: count(imported),
                unchanged: count(unchanged),
                failed: count(failed),
                errors: errors.0,
                ..Summary::default()
            },
        };
        let bytes = chunks::file(pool, tenant, id).await?;
        let text =
            String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("the file must be UTF-8: {e}"))?;
        import(resolver, tenant, id, format, text, &|_, _| {}, start).await
    }
    .await;
    if let Err(e) = &outcome {
        tracing::error!(error = %format!("{e:#}"), job = %id, "import failed");
        if let Err(e2) = fail(pool, tenant, id, &format!("{e:#}")).await {
            tracing::warn!(error = %e2, "could not record an import's failure");
        }
    }
    if let Err(e) = chunks::delete(pool, tenant, id).await {
        tracing::warn!(error = %e, job = %id, "could not delete an import's file");
    }
    outcome
        .map(|s| serde_json::json!({"import_id": id, "imported": s.imported, "unchanged": s.unchanged, "failed": s.failed}))
        .map_err(|e| format!("{e:#}"))
}

/// Runs an import of `text` for job `job`, reporting progress to the job row and to
/// `progress(processed, total)`; ends with a clean-up. On error, the job is marked failed with
/// the reason, and what was imported stays (rows are independent).
pub async fn run(
    resolver: &Resolver,
    tenant: &TenantId,
    job: Uuid,
    format: Format,
    text: String,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Summary> {
    let pool = resolver.pool();
    let result = import(
        resolver,
        tenant,
        job,
        format,
        text,
        &progress,
        Checkpoint::default(),
    )
    .await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), %job, "import failed");
        sqlx::query(
            "UPDATE import_jobs SET status = 'failed', failure = $3, finished_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(job)
        .bind(format!("{e:#}"))
        .execute(pool)
        .await?;
    }
    result
}

async fn import(
    resolver: &Resolver,
    tenant: &TenantId,
    job: Uuid,
    format: Format,
    text: String,
    progress: &impl Fn(u64, u64),
    start: Checkpoint,
) -> anyhow::Result<Summary> {
    let (pool, hot) = (resolver.pool(), resolver.hot());
    // Parsing a large file is CPU work: off the async runtime.
    let parse_tenant = tenant.clone();
    let rows: Vec<Row> =
        tokio::task::spawn_blocking(move || rows::read(&parse_tenant, format, &text)).await?;
    let mut summary = Summary {
        total_rows: rows.len() as u64,
        ..start.summary
    };
    update(pool, tenant, job, "running", &summary, start.processed).await?;
    let skip = usize::try_from(start.processed).unwrap_or(usize::MAX);
    for (n, row) in rows.iter().enumerate().skip(skip) {
        match row {
            Ok(event) => {
                let applied = resolver
                    .resolve(CONSUMER, event)
                    .await
                    .map_err(|e| anyhow::anyhow!("row {}: {e}", n + 1))?;
                if applied {
                    summary.imported += 1;
                } else {
                    summary.unchanged += 1;
                }
            }
            Err(e) => {
                summary.failed += 1;
                if summary.errors.len() < MAX_REPORTED_ERRORS {
                    summary.errors.push(e.clone());
                }
            }
        }
        let processed = n as u64 + 1;
        if processed % PROGRESS_EVERY == 0 {
            update(pool, tenant, job, "running", &summary, processed).await?;
        }
        progress(processed, summary.total_rows);
    }
    update(
        pool,
        tenant,
        job,
        "deduplicating",
        &summary,
        summary.total_rows,
    )
    .await?;
    let cleanup = cleanup::clean_tenant(pool, hot, tenant).await?;
    sqlx::query("UPDATE import_jobs SET cleanup = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(job)
        .bind(sqlx::types::Json(&cleanup))
        .execute(pool)
        .await?;
    summary.cleanup = Some(cleanup);
    update(pool, tenant, job, "done", &summary, summary.total_rows).await?;
    Ok(summary)
}

async fn update(
    pool: &PgPool,
    tenant: &TenantId,
    job: Uuid,
    status: &str,
    s: &Summary,
    processed: u64,
) -> Result<(), sqlx::Error> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE import_jobs SET status = $3, total_rows = $4, processed = $5, imported = $6,
                unchanged = $7, failed = $8, errors = $9,
                finished_at = CASE WHEN $3 = 'done' THEN now() ELSE NULL END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(job)
    .bind(status)
    .bind(count(s.total_rows))
    .bind(count(processed))
    .bind(count(s.imported))
    .bind(count(s.unchanged))
    .bind(count(s.failed))
    .bind(sqlx::types::Json(json!(s.errors)))
    .execute(pool)
    .await?;
    Ok(())
}
