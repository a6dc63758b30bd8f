//! Import jobs (an upload streamed into storage and queued, status with the per-row error
//! report), the clean-up of a tenant's base on demand (a persistent job), and job status.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::{jobs, Problem};
use crm_service::{TenantAnd, TenantPath};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::bodies::{ImportJob, ImportQueued};
use super::ApiState;
use crate::cleanup;
use crate::import::{self, chunks, rows::Format};

/// Largest import file accepted through the API (the CLI has no limit).
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/imports", post(start))
        .route("/internal/v1/tenants/{tenant}/imports/{id}", get(status))
        .route("/internal/v1/tenants/{tenant}/cleanup", post(clean))
        .route("/internal/v1/tenants/{tenant}/jobs/{id}", get(job))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    format: Option<String>,
}

/// Bytes of the file stored per `import_chunks` row.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Streams the file into `import_chunks` as it arrives (never whole in memory), then queues the
/// import as a persistent job and answers 202.
async fn start(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<StartQuery>,
    body: Body,
) -> Result<(StatusCode, Json<ImportQueued>), Problem> {
    let format = Format::parse(q.format.as_deref().unwrap_or("csv")).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidFormat,
            "format is csv or ndjson",
        )
    })?;
    let unavailable = |e: anyhow::Error| {
        tracing::error!(error = %format!("{e:#}"), "storing an import failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::ImportUnavailable,
            "the import could not be stored; retry shortly",
        )
    };
    let pool = &state.pool;
    let id = import::create_job(pool, &tenant, format, "receiving")
        .await
        .map_err(unavailable)?;
    let received = receive(pool, &tenant, id, body).await;
    if let Err(problem) = received {
        // Nothing of a partial upload is imported.
        let _ = chunks::delete(pool, &tenant, id).await;
        let _ = import::fail(pool, &tenant, id, problem.detail()).await;
        return Err(problem);
    }
    let job = jobs::enqueue(pool, &tenant, import::JOB, &json!({"import_id": id}))
        .await
        .map_err(|e| unavailable(e.into()))?;
    sqlx::query("UPDATE import_jobs SET status = 'queued' WHERE tenant_id = $1 AND id = $2 AND status = 'receiving'")
        .bind(tenant.as_str())
        .bind(id)
        .execute(pool)
        .await?;
    tracing::info!(import = %id, job, "import queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(ImportQueued {
            id,
            status: "queued".to_owned(),
            url: format!("/v1/imports/{id}"),
        }),
    ))
}

/// Stores `body` in chunks of [`CHUNK_BYTES`]; 413 past [`MAX_IMPORT_BYTES`].
async fn receive(
    pool: &sqlx::PgPool,
    tenant: &crm_envelope::TenantId,
    id: Uuid,
    body: Body,
) -> Result<(), Problem> {
    let mut stream = body.into_data_stream();
    let (mut buffer, mut seq, mut total) = (Vec::with_capacity(CHUNK_BYTES), 0i32, 0usize);
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                Code::UploadInterrupted,
                "the file did not arrive whole; send it again",
            )
        })?;
        total += piece.len();
        if total > MAX_IMPORT_BYTES {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                format!(
                    "an import through the API is at most {} MiB; use `crm-identity import` for larger files",
                    MAX_IMPORT_BYTES / (1024 * 1024)
                ),
            ));
        }
        buffer.extend_from_slice(&piece);
        if buffer.len() >= CHUNK_BYTES {
            chunks::store(pool, tenant, id, seq, &buffer).await?;
            seq += 1;
            buffer.clear();
        }
    }
    if !buffer.is_empty() || seq == 0 {
        chunks::store(pool, tenant, id, seq, &buffer).await?;
    }
    Ok(())
}

async fn status(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantAnd(tenant, raw_id): TenantAnd<String>,
) -> Result<Json<ImportJob>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::ImportNotFound,
            "no import job with this id for this tenant",
        )
    };
    let id = Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
    sqlx::query_as(
        "SELECT id, format, status, total_rows, processed, imported, unchanged, failed, errors,
                cleanup, failure, created_at, finished_at
         FROM import_jobs WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&pool)
    .await?
    .map(Json)
    .ok_or_else(not_found)
}

/// Queues a clean-up of the tenant's base (the probabilistic matcher's fit and merges) as a
/// persistent job; 202 with the job's id.
async fn clean(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<(StatusCode, Json<jobs::JobQueued>), Problem> {
    let id = jobs::enqueue(&state.pool, &tenant, cleanup::JOB, &json!({})).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(jobs::JobQueued::new("identity", id)),
    ))
}

/// A persistent job of the tenant (a clean-up, an import's run).
async fn job(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    Ok(Json(
        jobs::answer(&state.pool, &tenant, "identity", &id).await?,
    ))
}
