//! Import jobs (start, status with the per-row error report) and the clean-up of a tenant's
//! base on demand.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::{tenant_from_path, Problem};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ApiState;
use crate::cleanup;
use crate::import::{self, rows::Format};

/// Largest import file accepted through the API (the CLI has no limit).
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/imports",
            post(start).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/internal/v1/tenants/{tenant}/imports/{id}", get(status))
        .route("/internal/v1/tenants/{tenant}/cleanup", post(clean))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    format: Option<String>,
}

async fn start(
    State(state): State<ApiState>,
    Path(raw_tenant): Path<String>,
    Query(q): Query<StartQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let tenant = tenant_from_path(&raw_tenant)?;
    let format = Format::parse(q.format.as_deref().unwrap_or("csv")).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            "format is csv or ndjson",
        )
    })?;
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_encoding",
            format!("the file must be UTF-8: {e}"),
        )
    })?;
    let job = import::create_job(&state.pool, &tenant, format)
        .await
        .map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "creating an import job failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "import_unavailable",
                "the import could not start; retry shortly",
            )
        })?;
    let task_tenant = tenant.clone();
    tokio::spawn(async move {
        let _ = import::run(&state.resolver, &task_tenant, job, format, &text, |_, _| {}).await;
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": job, "status": "running" })),
    ))
}

/// A job as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct Job {
    id: Uuid,
    format: String,
    status: String,
    total_rows: i64,
    processed: i64,
    imported: i64,
    unchanged: i64,
    failed: i64,
    errors: sqlx::types::Json<Value>,
    cleanup: Option<sqlx::types::Json<Value>>,
    failure: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

async fn status(
    State(ApiState { pool, .. }): State<ApiState>,
    Path((raw_tenant, raw_id)): Path<(String, String)>,
) -> Result<Json<Job>, Problem> {
    let tenant = tenant_from_path(&raw_tenant)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "import_not_found",
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

async fn clean(
    State(state): State<ApiState>,
    Path(raw_tenant): Path<String>,
) -> Result<Json<cleanup::Cleanup>, Problem> {
    let tenant = tenant_from_path(&raw_tenant)?;
    cleanup::clean_tenant(&state.pool, &state.hot, &tenant)
        .await
        .map(Json)
        .map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "clean-up failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cleanup_failed",
                "the clean-up stopped; what it merged stays, run it again",
            )
        })
}
