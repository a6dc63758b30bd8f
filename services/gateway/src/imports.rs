//! Import jobs and the clean-up of a tenant's base, relayed to identity:
//! `POST /v1/imports`, `GET /v1/imports/{id}`, `POST /v1/cleanup`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{relay, IDENTITY};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/imports", needs(Scope::Ingest, post(start_import)))
        .route("/v1/imports/{id}", needs(Scope::Read, get(import_status)))
        .route("/v1/cleanup", needs(Scope::Admin, post(cleanup)))
}

/// The file's format.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ImportQuery {
    /// `csv` (default; header row first) or `ndjson` (one JSON object a line).
    format: Option<String>,
}

/// Import customers: the body is the file. Columns `user_id`, `anonymous_id`, `email`,
/// `phone`, `handle_<network>` identify; `occurred_at` dates the row; the rest are traits.
/// Each row is resolved like an identify event, so the same file twice creates nothing new;
/// the job ends with a clean-up of the tenant's base.
#[utoipa::path(
    post, path = "/v1/imports", tag = "identity", params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The file (CSV or NDJSON, UTF-8, at most 64 MiB)"),
    responses(
        (status = 202, description = "The file is stored and the import queued; follow it at `url` (also in Location)", body = crm_identity::bodies::ImportQueued),
        (status = 400, description = "Unknown format or not UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 64 MiB", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["ingest"]))
)]
pub(crate) async fn start_import(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Body,
) -> Result<Response, Problem> {
    let mut query = Vec::new();
    if let Some(f) = &q.format {
        query.push(("format", f.as_str()));
    }
    let (status, answer) = app
        .identity
        .post_file(
            &caller.tenant,
            "imports",
            &query,
            reqwest::Body::wrap_stream(body.into_data_stream()),
        )
        .await
        .map_err(|e| IDENTITY.unavailable(&e))?;
    Ok(crate::jobs::accepted(status, answer))
}

/// An import job: status (`running`, `deduplicating`, `done`, `failed`), counts, the per-row
/// error report (first 1,000) and the clean-up's result.
#[utoipa::path(
    get, path = "/v1/imports/{id}", tag = "identity",
    params(("id" = Uuid, Path, description = "Import job id")),
    responses(
        (status = 200, description = "The import", body = crm_identity::bodies::ImportJob),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn import_status(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("imports/{id}");
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// Clean the tenant's base with the probabilistic matcher: merges above the threshold, reviews
/// between the thresholds. A persistent job (the fit takes seconds on a large base): 202 with
/// its URL; follow it with `GET /v1/jobs/{job_id}`.
#[utoipa::path(
    post, path = "/v1/cleanup", tag = "identity",
    responses(
        (status = 202, description = "Queued; follow the job at `url` (also in Location). Its result: {customers, candidate_pairs, merged, reviews, too_few_pairs}", body = crm_service::jobs::JobQueued),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn cleanup(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let (status, body) = app
        .identity
        .call(reqwest::Method::POST, &caller.tenant, "cleanup", &[], None)
        .await
        .map_err(|e| IDENTITY.unavailable(&e))?;
    Ok(crate::jobs::accepted(status, body))
}
