//! Segmentation through the gateway: segments (CRUD, versions, preview, members, recompute),
//! a customer's segments, scores and aggregates, RFM and lifecycle reports, scoring runs and
//! the tenant's segmentation settings. Each call is relayed to segmentation's internal API with
//! the caller named, so versions record who changed what.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{json_body as body_of, query_of, SEGMENTATION};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/segments",
            needs(Scope::Read, get(list_segments)).merge(needs(Scope::Admin, post(create_segment))),
        )
        .route(
            "/v1/segments/preview",
            needs(Scope::Read, post(preview_segment)),
        )
        .route(
            "/v1/segments/{id}",
            needs(Scope::Read, get(read_segment))
                .merge(needs(Scope::Admin, put(update_segment)))
                .merge(needs(Scope::Admin, delete(delete_segment))),
        )
        .route(
            "/v1/segments/{id}/versions",
            needs(Scope::Read, get(segment_versions)),
        )
        .route(
            "/v1/segments/{id}/members",
            needs(Scope::Read, get(segment_members)),
        )
        .route(
            "/v1/segments/{id}/recompute",
            needs(Scope::Admin, post(recompute_segment)),
        )
        .route(
            "/v1/customers/{id}/segments",
            needs(Scope::Read, get(customer_segments)),
        )
        .route(
            "/v1/customers/{id}/scores",
            needs(Scope::Read, get(customer_scores)),
        )
        .route(
            "/v1/customers/{id}/activity",
            needs(Scope::Read, get(customer_activity)),
        )
        .route("/v1/reports/rfm", needs(Scope::Read, get(rfm_report)))
        .route(
            "/v1/reports/lifecycle",
            needs(Scope::Read, get(lifecycle_report)),
        )
        .route(
            "/v1/scoring/runs",
            needs(Scope::Read, get(scoring_runs)).merge(needs(Scope::Admin, post(run_scoring))),
        )
        .route(
            "/v1/segmentation/settings",
            needs(Scope::Read, get(read_settings)).merge(needs(Scope::Admin, put(write_settings))),
        )
}

/// Create a segment: `{"name", "description", "rule"}`. The rule language (docs/segmentation.md)
/// is closed JSON: unknown fields are refused, and errors carry the JSON `path` of the faulty
/// node. Members are computed in the background, then kept in real time.
#[utoipa::path(
    post, path = "/v1/segments", tag = "segments",
    request_body(content = crm_segmentation::bodies::NewSegment, description = "{\"name\": \"Lapsed shoe buyers\", \"description\": \"...\", \"rule\": {\"all\": [{\"bought_category\": {\"any_of\": [\"shoes\"]}}, {\"stage\": {\"in\": [\"lapsed\"]}}]}}"),
    responses(
        (status = 201, description = "Created; its members are computed in the background", body = crm_segmentation::bodies::SegmentSaved),
        (status = 400, description = "Not JSON, or unknown body fields (code invalid_body)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken (segment_name_taken)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rule (invalid_rule, with `path`), reference cycle (segment_cycle), unknown referenced segment (unknown_segment)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn create_segment(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            "segments",
            &[],
            Some(&body),
        )
        .await
}

/// The tenant's segments with their sizes.
#[utoipa::path(
    get, path = "/v1/segments", tag = "segments",
    responses((status = 200, description = "The segments with their sizes", body = crm_segmentation::bodies::SegmentList)),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn list_segments(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, "segments", &[], None)
        .await
}

/// One segment and its size.
#[utoipa::path(
    get, path = "/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The segment and its size", body = crm_segmentation::bodies::SegmentSized),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn read_segment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("segments/{id}");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, &path, &[], None)
        .await
}

/// Change a segment's name, description or rule (each optional): a new version, recorded with
/// the key that made it.
#[utoipa::path(
    put, path = "/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path, description = "Segment id")),
    request_body(content = crm_segmentation::bodies::SegmentPatch, description = "{\"name\"?, \"description\"?, \"rule\"?}"),
    responses(
        (status = 200, description = "Saved as a new version", body = crm_segmentation::bodies::SegmentSaved),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rule or cycle", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn update_segment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    let path = format!("segments/{id}");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::PUT, &path, &[], Some(&body))
        .await
}

/// Delete a segment no other segment refers to; its members exit (published).
#[utoipa::path(
    delete, path = "/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path, description = "Segment id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Other segments refer to it (segment_in_use)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn delete_segment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("segments/{id}");
    let response = SEGMENTATION
        .relay(&app, &caller, reqwest::Method::DELETE, &path, &[], None)
        .await?;
    if response.status() == StatusCode::NO_CONTENT {
        return Ok(axum::response::IntoResponse::into_response(
            StatusCode::NO_CONTENT,
        ));
    }
    Ok(response)
}

/// Every version of a segment, newest first: what changed, who changed it, when.
#[utoipa::path(
    get, path = "/v1/segments/{id}/versions", tag = "segments", params(("id" = Uuid, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The versions, newest first", body = crm_segmentation::bodies::SegmentVersions),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn segment_versions(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("segments/{id}/versions");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, &path, &[], None)
        .await
}

/// The size and a sample of a rule's audience, before saving it.
#[utoipa::path(
    post, path = "/v1/segments/preview", tag = "segments",
    request_body(content = crm_segmentation::bodies::PreviewRequest, description = "{\"rule\": {...}, \"sample\": 10}"),
    responses(
        (status = 200, description = "The audience now", body = crm_segmentation::bodies::Preview),
        (status = 422, description = "Invalid rule (with `path`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn preview_segment(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            "segments/preview",
            &[],
            Some(&body),
        )
        .await
}

/// Which page of members.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct MembersQuery {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// `next` of the previous page.
    after: Option<Uuid>,
}

/// A segment's members, by customer id.
#[utoipa::path(
    get, path = "/v1/segments/{id}/members", tag = "segments", params(("id" = Uuid, Path, description = "Segment id"), MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = crm_segmentation::bodies::Members),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn segment_members(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<MembersQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("limit", q.limit.map(|l| l.to_string())),
        ("after", q.after.map(|a| a.to_string())),
    ];
    let path = format!("segments/{id}/members");
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            &path,
            &query_of(&pairs),
            None,
        )
        .await
}

/// Recompute a segment over every customer (what changed is published). The recompute is a
/// job: the answer is 202 at once, with the job's URL in `Location` and the body; follow it
/// with `GET /v1/jobs/{job_id}`: its `progress` says customers done (`done` of `of`), the rate
/// and the seconds left; once `succeeded`, its `result` says what changed.
#[utoipa::path(
    post, path = "/v1/segments/{id}/recompute", tag = "segments", params(("id" = Uuid, Path, description = "Segment id")),
    responses(
        (status = 202, description = "Queued; follow the job at `url` (also in Location)", body = crm_service::jobs::JobQueued),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn recompute_segment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("segments/{id}/recompute");
    let (status, body) = SEGMENTATION
        .client(&app)
        .call_as(
            reqwest::Method::POST,
            &caller.tenant,
            &path,
            &[],
            None,
            &[("x-crm-actor", caller.actor.as_str())],
        )
        .await
        .map_err(|e| SEGMENTATION.unavailable(&e))?;
    Ok(crate::jobs::accepted(status, body))
}

/// The segments a customer is in.
#[utoipa::path(
    get, path = "/v1/customers/{id}/segments", tag = "segments", params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses((status = 200, description = "The segments", body = crm_segmentation::bodies::CustomerSegments)),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn customer_segments(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/segments");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, &path, &[], None)
        .await
}

/// A customer's lifecycle stage, RFM scores, lead score with its explanation and value
/// predictions.
#[utoipa::path(
    get, path = "/v1/customers/{id}/scores", tag = "segments", params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The scores", body = crm_segmentation::bodies::CustomerScores),
        (status = 404, description = "Segmentation knows no such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn customer_scores(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/scores");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, &path, &[], None)
        .await
}

/// A customer's aggregates: totals, orders, revenue, average order value, categories, last
/// purchase, and per event name the count and sum (all time, last 7 / 30 / 90 days).
#[utoipa::path(
    get, path = "/v1/customers/{id}/activity", tag = "segments", params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The aggregates", body = crm_segmentation::bodies::Activity),
        (status = 404, description = "Segmentation knows no such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn customer_activity(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/activity");
    SEGMENTATION
        .relay(&app, &caller, reqwest::Method::GET, &path, &[], None)
        .await
}

/// Customers per RFM group and (R, F) cell, from the last scoring run.
#[utoipa::path(
    get, path = "/v1/reports/rfm", tag = "reports",
    responses((status = 200, description = "Customers per group and cell", body = crm_segmentation::bodies::RfmReport)),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn rfm_report(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            "reports/rfm",
            &[],
            None,
        )
        .await
}

/// Which periods.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct LifecycleQuery {
    /// `day`, `week` (default) or `month`.
    period: Option<String>,
    /// Start, RFC 3339 (default: 12 periods before `to`).
    from: Option<String>,
    /// End, RFC 3339 (default: now).
    to: Option<String>,
}

/// Acquisition, retention and win-back: customers per lifecycle stage now, and transitions per
/// period.
#[utoipa::path(
    get, path = "/v1/reports/lifecycle", tag = "reports", params(LifecycleQuery),
    responses(
        (status = 200, description = "Stages now and transitions per period", body = crm_segmentation::bodies::LifecycleReport),
        (status = 400, description = "Bad period or range", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn lifecycle_report(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<LifecycleQuery>,
) -> Result<Response, Problem> {
    let pairs = [("period", q.period), ("from", q.from), ("to", q.to)];
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            "reports/lifecycle",
            &query_of(&pairs),
            None,
        )
        .await
}

/// Run RFM and customer value now (they also run on the part's schedule). The run is a job:
/// the answer is 202 at once, with the job's URL in `Location` and the body; follow it with
/// `GET /v1/jobs/{job_id}` until its status is `succeeded` (the run's summary is its `result`)
/// or `failed` (with its `error`).
#[utoipa::path(
    post, path = "/v1/scoring/runs", tag = "reports",
    responses((status = 202, description = "Queued; follow the job at `url` (also in Location)", body = crm_service::jobs::JobQueued)),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn run_scoring(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let (status, body) = SEGMENTATION
        .client(&app)
        .call_as(
            reqwest::Method::POST,
            &caller.tenant,
            "scoring/runs",
            &[],
            None,
            &[("x-crm-actor", caller.actor.as_str())],
        )
        .await
        .map_err(|e| SEGMENTATION.unavailable(&e))?;
    Ok(crate::jobs::accepted(status, body))
}

/// Recent scoring runs and the tenant's fitted value model.
#[utoipa::path(
    get, path = "/v1/scoring/runs", tag = "reports",
    responses((status = 200, description = "Runs and the value model", body = crm_segmentation::bodies::ScoringRuns)),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn scoring_runs(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            "scoring/runs",
            &[],
            None,
        )
        .await
}

/// The tenant's segmentation settings: lifecycle thresholds, lead scoring, retention, horizon.
#[utoipa::path(
    get, path = "/v1/segmentation/settings", tag = "segments", operation_id = "read_segmentation_settings",
    responses((status = 200, description = "The settings (defaults when never set)", body = crm_segmentation::bodies::Settings)),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn read_settings(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            "segmentation/settings",
            &[],
            None,
        )
        .await
}

/// Replace the tenant's segmentation settings (missing fields take their defaults; unknown ones
/// are refused).
#[utoipa::path(
    put, path = "/v1/segmentation/settings", tag = "segments", operation_id = "write_segmentation_settings",
    request_body(content = crm_segmentation::bodies::Settings, description = "As GET shows them"),
    responses(
        (status = 200, description = "The settings stored", body = crm_segmentation::bodies::Settings),
        (status = 400, description = "Unknown field (invalid_body)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad value (invalid_settings)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn write_settings(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    SEGMENTATION
        .relay(
            &app,
            &caller,
            reqwest::Method::PUT,
            "segmentation/settings",
            &[],
            Some(&body),
        )
        .await
}
