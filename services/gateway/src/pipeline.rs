//! The sales pipeline through the gateway, relayed to campaign: leads and an owner's work
//! queue, opportunities (scope `sales` to work them, `read` to look), the lead settings and
//! the pipelines' definitions (`admin`). Every write takes an `Idempotency-Key`, and the
//! part also keys what it opens by it, so a retried create opens nothing twice.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::proxy::{json_body, query_of, CAMPAIGN};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/leads",
            needs(Scope::Read, get(list_leads)).merge(needs(Scope::Sales, post(open_lead))),
        )
        .route(
            "/v1/leads/{id}",
            needs(Scope::Read, get(read_lead)).merge(needs(Scope::Sales, patch(change_lead))),
        )
        .route("/v1/leads/imports", needs(Scope::Sales, post(import_leads)))
        .route(
            "/v1/leads/{id}/convert",
            needs(Scope::Sales, post(convert_lead)),
        )
        .route("/v1/lead-queue", needs(Scope::Read, get(lead_queue)))
        .route(
            "/v1/leads/settings",
            needs(Scope::Read, get(read_lead_settings))
                .merge(needs(Scope::Admin, put(write_lead_settings))),
        )
        .route(
            "/v1/pipelines",
            needs(Scope::Read, get(list_pipelines))
                .merge(needs(Scope::Admin, post(create_pipeline))),
        )
        .route(
            "/v1/pipelines/{id}",
            needs(Scope::Read, get(read_pipeline))
                .merge(needs(Scope::Admin, put(replace_pipeline))),
        )
        .route(
            "/v1/opportunities",
            needs(Scope::Read, get(list_opportunities))
                .merge(needs(Scope::Sales, post(open_opportunity))),
        )
        .route(
            "/v1/opportunities/{id}",
            needs(Scope::Read, get(read_opportunity))
                .merge(needs(Scope::Sales, patch(change_opportunity))),
        )
        .route(
            "/v1/pipelines/{id}/report",
            needs(Scope::Read, get(pipeline_report)),
        )
        .route("/v1/leads/report", needs(Scope::Read, get(lead_report)))
        .route(
            "/v1/tasks",
            needs(Scope::Read, get(list_tasks)).merge(needs(Scope::Sales, post(create_task))),
        )
        .route(
            "/v1/tasks/{id}",
            needs(Scope::Read, get(read_task)).merge(needs(Scope::Sales, patch(change_task))),
        )
        .route(
            "/v1/leads/{id}/notes",
            needs(Scope::Read, get(lead_notes)).merge(needs(Scope::Sales, post(add_lead_note))),
        )
        .route(
            "/v1/opportunities/{id}/notes",
            needs(Scope::Read, get(opportunity_notes))
                .merge(needs(Scope::Sales, post(add_opportunity_note))),
        )
}

/// Relays a read to campaign.
pub(crate) async fn read(
    app: &AppState,
    caller: &Caller,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Response, Problem> {
    CAMPAIGN
        .relay(app, caller, reqwest::Method::GET, path, query, None)
        .await
}

/// Relays a write to campaign once per `Idempotency-Key`.
pub(crate) async fn write(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write_once(app, &CAMPAIGN, caller, headers, method, path, Some(&body)).await
}

pub(crate) const KEY: &str = "Unique per intended change";

/// Open a lead for a customer (source, campaign, owner); without an owner the tenant's
/// assignment rules choose one. A customer's open lead from the same source is answered as
/// it is (200), never a second one. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/leads", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::LeadRequest, example = json!({"customer_id": "0193d2a4-7b5e-7c3a-9f00-1a2b3c4d5e6f", "source": "form", "campaign": "spring-webinar"})),
    responses((status = 201, description = "The lead opened", body = crm_campaign::bodies::LeadRow),
        (status = 200, description = "The customer's open lead from this source", body = crm_campaign::bodies::LeadRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_lead: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn open_lead(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "leads",
        body,
    )
    .await
}

/// Import leads: customers named by id, user id, anonymous id or email, each opened as a lead
/// of source `import` (one open per customer and source, so importing a list twice opens
/// nothing more). Runs as a job: 202 with its URL; the job's result counts the rows opened,
/// already open and rejected, with the first 1,000 rejected rows and why. Needs
/// `Idempotency-Key` (asked again with it, the same job answers).
#[utoipa::path(post, path = "/v1/leads/imports", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::LeadImport, example = json!({"campaign": "trade-show-2026", "leads": [{"customer": {"email": "ana@example.com"}}, {"customer": {"user_id": "u-42"}, "owner": "bo"}]})),
    responses((status = 202, description = "Queued; follow the job at `url` (also in Location). Its result: LeadImportResult", body = crm_service::jobs::JobQueued),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_lead: `path` names the field (1 to 10,000 leads)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn import_leads(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let answer = write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "lead-imports",
        body,
    )
    .await?;
    Ok(crate::jobs::with_location(answer).await)
}

/// Filters and keyset paging of `/v1/leads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct LeadQuery {
    /// Only this owner's.
    owner: Option<String>,
    /// Only in this status: new, assigned, working, converted, disqualified.
    status: Option<String>,
    /// Only from this source: score, form, survey, social, journey, import, api.
    source: Option<String>,
    /// Only this customer's.
    customer_id: Option<Uuid>,
    /// Only with at least this priority.
    min_priority: Option<f64>,
    /// The last lead of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// Leads, newest first, with filters and keyset paging.
#[utoipa::path(get, path = "/v1/leads", tag = "pipeline", params(LeadQuery),
    responses((status = 200, description = "A page of leads", body = crm_campaign::bodies::LeadList),
        (status = 400, description = "A bad filter or limit", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_leads(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<LeadQuery>,
) -> Result<Response, Problem> {
    let (min, after, limit, customer) = (
        q.min_priority.map(|v| v.to_string()),
        q.after.map(|v| v.to_string()),
        q.limit.map(|v| v.to_string()),
        q.customer_id.map(|v| v.to_string()),
    );
    let pairs = [
        ("owner", q.owner),
        ("status", q.status),
        ("source", q.source),
        ("customer_id", customer),
        ("min_priority", min),
        ("after", after),
        ("limit", limit),
    ];
    read(&app, &caller, "leads", &query_of(&pairs)).await
}

/// A lead, its priority now with each factor's points, and its history.
#[utoipa::path(get, path = "/v1/leads/{id}", tag = "pipeline", params(("id" = Uuid, Path, description = "Lead id")),
    responses((status = 200, description = "The lead", body = crm_campaign::bodies::LeadDetail),
        (status = 404, description = "lead_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_lead(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("leads/{id}"), &[]).await
}

/// Change a lead's status (`assigned`, `working`, `disqualified` with a reason of the
/// tenant's list, …) or owner. Needs `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/leads/{id}", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Lead id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::LeadPatch, example = json!({"status": "disqualified", "reason": "no budget"})),
    responses((status = 200, description = "The lead", body = crm_campaign::bodies::LeadRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "lead_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: the move is not allowed (the detail says why)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_lead", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn change_lead(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("leads/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// Convert a lead: its opportunity opens in the pipeline (default: the tenant's oldest), owned
/// by the lead's owner, and the lead closes as `converted`. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/leads/{id}/convert", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Lead id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::ConvertRequest, example = json!({"name": "Annual plan", "amount": 12000, "currency": "EUR", "expected_close": "2027-03-31"})),
    responses((status = 200, description = "The lead and its opportunity", body = crm_campaign::bodies::Conversion),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "lead_not_found or pipeline_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: the lead is disqualified", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_opportunity", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn convert_lead(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("leads/{id}/convert");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, body).await
}

/// Paging of an owner's work queue.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct QueueQuery {
    /// The owner.
    owner: String,
    /// The priority of the last lead of the previous page (with `after`).
    after_priority: Option<f64>,
    /// The last lead of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// An owner's open leads, highest priority first (keyset paging).
#[utoipa::path(get, path = "/v1/lead-queue", tag = "pipeline", params(QueueQuery),
    responses((status = 200, description = "A page of the queue", body = crm_campaign::bodies::LeadList),
        (status = 400, description = "A bad cursor or limit", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn lead_queue(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<QueueQuery>,
) -> Result<Response, Problem> {
    let (p, after, limit) = (
        q.after_priority.map(|v| v.to_string()),
        q.after.map(|v| v.to_string()),
        q.limit.map(|v| v.to_string()),
    );
    let pairs = [
        ("owner", Some(q.owner)),
        ("after_priority", p),
        ("after", after),
        ("limit", limit),
    ];
    read(&app, &caller, "lead-queue", &query_of(&pairs)).await
}

/// The tenant's lead settings: disqualify reasons, assignment rules, priority weights and the
/// first-touch SLA, and whether lead-score qualifications open leads.
#[utoipa::path(get, path = "/v1/leads/settings", tag = "pipeline",
    responses((status = 200, description = "The settings", body = crm_campaign::bodies::LeadSettings)),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_lead_settings(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "lead-settings", &[]).await
}

/// Replace the tenant's lead settings. Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/leads/settings", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::LeadSettings, example = json!({"assignment": [{"name": "Iberia", "when": {"trait": {"name": "country", "op": "in", "value": ["ES", "PT"]}}, "team": ["ana", "joao"], "capacity": 50}], "priority": {"first_touch_minutes": 120}})),
    responses((status = 200, description = "The settings", body = crm_campaign::bodies::LeadSettings),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_lead_settings: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn write_lead_settings(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        "lead-settings",
        body,
    )
    .await
}

/// The tenant's pipelines, oldest first (the first takes converted leads by default).
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipeline",
    responses((status = 200, description = "The pipelines", body = crm_campaign::bodies::PipelineList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_pipelines(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "pipelines", &[]).await
}

/// Define a pipeline: stages in order with default probabilities, won and lost stages, lost
/// reasons, default currency. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::PipelineSpec, example = json!({"name": "New business", "stages": [{"key": "qualify", "name": "Qualify", "probability": 10}, {"key": "proposal", "name": "Proposal", "probability": 50}, {"key": "won", "name": "Won", "probability": 100, "won": true}, {"key": "lost", "name": "Lost", "probability": 0, "lost": true}], "lost_reasons": ["price", "competitor", "no decision"]})),
    responses((status = 201, description = "The pipeline", body = crm_campaign::bodies::PipelineRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "pipeline_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_pipeline: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_pipeline(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "pipelines",
        body,
    )
    .await
}

/// A pipeline.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipeline", params(("id" = Uuid, Path, description = "Pipeline id")),
    responses((status = 200, description = "The pipeline", body = crm_campaign::bodies::PipelineRow),
        (status = 404, description = "pipeline_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_pipeline(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("pipelines/{id}"), &[]).await
}

/// Replace a pipeline's definition; refused while open opportunities stand in a stage it
/// drops. Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/pipelines/{id}", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Pipeline id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::PipelineSpec),
    responses((status = 200, description = "The pipeline", body = crm_campaign::bodies::PipelineRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "pipeline_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "pipeline_name_taken or pipeline_stage_in_use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_pipeline", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn replace_pipeline(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("pipelines/{id}");
    write(&app, &caller, &headers, reqwest::Method::PUT, &path, body).await
}

/// Open an opportunity in a pipeline (default: the tenant's oldest) at its first open stage
/// or the one named. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/opportunities", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::OpportunityRequest, example = json!({"customer_id": "0193d2a4-7b5e-7c3a-9f00-1a2b3c4d5e6f", "name": "Fleet renewal", "amount": 48000, "account": "Acme Logistics", "owner": "ana"})),
    responses((status = 201, description = "The opportunity", body = crm_campaign::bodies::OpportunityRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found or pipeline_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_opportunity: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn open_opportunity(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "opportunities",
        body,
    )
    .await
}

/// Filters and keyset paging of `/v1/opportunities`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct OpportunityQuery {
    /// Only this pipeline's.
    pipeline_id: Option<Uuid>,
    /// Only in this stage (its key).
    stage: Option<String>,
    /// Only open, won or lost.
    status: Option<String>,
    /// Only this owner's.
    owner: Option<String>,
    /// Only this customer's.
    customer_id: Option<Uuid>,
    /// The last opportunity of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// Opportunities, newest first, with filters and keyset paging.
#[utoipa::path(get, path = "/v1/opportunities", tag = "pipeline", params(OpportunityQuery),
    responses((status = 200, description = "A page of opportunities", body = crm_campaign::bodies::OpportunityList),
        (status = 400, description = "A bad filter or limit", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_opportunities(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<OpportunityQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("pipeline_id", q.pipeline_id.map(|v| v.to_string())),
        ("stage", q.stage),
        ("status", q.status),
        ("owner", q.owner),
        ("customer_id", q.customer_id.map(|v| v.to_string())),
        ("after", q.after.map(|v| v.to_string())),
        ("limit", q.limit.map(|v| v.to_string())),
    ];
    read(&app, &caller, "opportunities", &query_of(&pairs)).await
}

/// An opportunity and the stages it went through, with the time in each.
#[utoipa::path(get, path = "/v1/opportunities/{id}", tag = "pipeline", params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "The opportunity", body = crm_campaign::bodies::OpportunityDetail),
        (status = 404, description = "opportunity_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_opportunity(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("opportunities/{id}"), &[]).await
}

/// Change an opportunity: its stage (a won stage wins it and starts the journeys on
/// `opportunity.won`; a lost stage needs `lost_reason`), amount, close date, owner. Needs
/// `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/opportunities/{id}", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::OpportunityPatch, example = json!({"stage": "lost", "lost_reason": "price"})),
    responses((status = 200, description = "The opportunity", body = crm_campaign::bodies::OpportunityRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "opportunity_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_opportunity, or lost_reason_required", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn change_opportunity(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("opportunities/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// Create a task (call, email, meeting, to-do) on a lead or an opportunity; it is announced
/// as `task.due` on the customer's timeline when it comes due. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/tasks", tag = "pipeline",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::TaskRequest, example = json!({"kind": "call", "subject": "Discovery call", "due_at": "2026-12-10T09:00:00Z", "lead_id": "0193d2a4-7b5e-7c3a-9f00-1a2b3c4d5e6f"})),
    responses((status = 201, description = "The task", body = crm_campaign::bodies::TaskRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such lead or opportunity", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_task: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn create_task(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "tasks",
        body,
    )
    .await
}

/// Filters and paging of `/v1/tasks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct TaskQuery {
    /// Only this owner's.
    owner: Option<String>,
    /// Only this lead's.
    lead_id: Option<Uuid>,
    /// Only this opportunity's.
    opportunity_id: Option<Uuid>,
    /// `open`, `done` or `overdue`.
    state: Option<String>,
    /// The last task of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// Tasks, soonest due first, with filters (an owner's overdue calls, a lead's tasks).
#[utoipa::path(get, path = "/v1/tasks", tag = "pipeline", params(TaskQuery),
    responses((status = 200, description = "A page of tasks", body = crm_campaign::bodies::TaskList),
        (status = 400, description = "A bad filter or limit", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_tasks(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<TaskQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("owner", q.owner),
        ("lead_id", q.lead_id.map(|v| v.to_string())),
        ("opportunity_id", q.opportunity_id.map(|v| v.to_string())),
        ("state", q.state),
        ("after", q.after.map(|v| v.to_string())),
        ("limit", q.limit.map(|v| v.to_string())),
    ];
    read(&app, &caller, "tasks", &query_of(&pairs)).await
}

/// A task.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "pipeline", params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = crm_campaign::bodies::TaskRow),
        (status = 404, description = "task_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_task(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("tasks/{id}"), &[]).await
}

/// Complete a task (or open it again), or change its due time, owner or subject. Needs
/// `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Task id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::TaskPatch, example = json!({"completed": true})),
    responses((status = 200, description = "The task", body = crm_campaign::bodies::TaskRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "task_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_task", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn change_task(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("tasks/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// A lead's notes, oldest first.
#[utoipa::path(get, path = "/v1/leads/{id}/notes", tag = "pipeline", params(("id" = Uuid, Path, description = "Lead id")),
    responses((status = 200, description = "The notes", body = crm_campaign::bodies::NoteList),
        (status = 404, description = "not_found: no such lead or opportunity", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn lead_notes(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("leads/{id}/notes"), &[]).await
}

/// Add a note to a lead. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/leads/{id}/notes", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Lead id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::NoteRequest, example = json!({"body": "Wants a demo for the regional team."})),
    responses((status = 201, description = "The note", body = crm_campaign::bodies::NoteRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such lead", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_task: the note's body", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn add_lead_note(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("leads/{id}/notes");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, body).await
}

/// An opportunity's notes, oldest first.
#[utoipa::path(get, path = "/v1/opportunities/{id}/notes", tag = "pipeline", params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "The notes", body = crm_campaign::bodies::NoteList),
        (status = 404, description = "not_found: no such lead or opportunity", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn opportunity_notes(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("opportunities/{id}/notes"), &[]).await
}

/// Add a note to an opportunity. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/opportunities/{id}/notes", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::NoteRequest),
    responses((status = 201, description = "The note", body = crm_campaign::bodies::NoteRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such opportunity", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_task: the note's body", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn add_opportunity_note(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("opportunities/{id}/notes");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, body).await
}

/// The period of a report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct Period {
    /// From (inclusive, RFC 3339; default: 90 days before `to`).
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// To (exclusive, RFC 3339; default: now).
    to: Option<chrono::DateTime<chrono::Utc>>,
}

/// A pipeline's report: open opportunities by stage (count, amount, weighted amount, per
/// currency), win rate and cycle time per owner for those closed in the period, and the
/// forecast by month of expected close.
#[utoipa::path(get, path = "/v1/pipelines/{id}/report", tag = "pipeline",
    params(("id" = Uuid, Path, description = "Pipeline id"), Period),
    responses((status = 200, description = "The report", body = crm_campaign::bodies::PipelineReport),
        (status = 400, description = "invalid_period", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "pipeline_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn pipeline_report(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Period>,
) -> Result<Response, Problem> {
    let pairs = [
        ("from", p.from.map(|t| t.to_rfc3339())),
        ("to", p.to.map(|t| t.to_rfc3339())),
    ];
    read(
        &app,
        &caller,
        &format!("pipelines/{id}/report"),
        &query_of(&pairs),
    )
    .await
}

/// Lead conversion by source and campaign for leads created in the period: leads,
/// converted, disqualified, open, conversion rate.
#[utoipa::path(get, path = "/v1/leads/report", tag = "pipeline", params(Period),
    responses((status = 200, description = "The report", body = crm_campaign::bodies::LeadConversion),
        (status = 400, description = "invalid_period", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn lead_report(
    State(app): State<AppState>,
    caller: Caller,
    Query(p): Query<Period>,
) -> Result<Response, Problem> {
    let pairs = [
        ("from", p.from.map(|t| t.to_rfc3339())),
        ("to", p.to.map(|t| t.to_rfc3339())),
    ];
    read(&app, &caller, "lead-report", &query_of(&pairs)).await
}
