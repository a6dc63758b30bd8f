//! Journeys through the gateway, relayed to campaign: create and edit drafts (checked; a
//! refusal names the JSON pointer), list, read, published versions, and publish / pause /
//! resume / archive. Every write takes an `Idempotency-Key` (publishing twice by accident would
//! make two versions). docs/campaign.md describes the language.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Problem;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::proxy::{json_body, CAMPAIGN};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/journeys",
            needs(Scope::Read, get(list_journeys)).merge(needs(Scope::Admin, post(create_journey))),
        )
        .route(
            "/v1/journeys/{id}",
            needs(Scope::Read, get(read_journey))
                .merge(needs(Scope::Admin, axum::routing::put(update_journey))),
        )
        .route(
            "/v1/journeys/{id}/versions",
            needs(Scope::Read, get(journey_versions)),
        )
        .route(
            "/v1/journeys/{id}/publish",
            needs(Scope::Admin, post(publish_journey)),
        )
        .route(
            "/v1/journeys/{id}/pause",
            needs(Scope::Admin, post(pause_journey)),
        )
        .route(
            "/v1/journeys/{id}/resume",
            needs(Scope::Admin, post(resume_journey)),
        )
        .route(
            "/v1/journeys/{id}/archive",
            needs(Scope::Admin, post(archive_journey)),
        )
        .route(
            "/v1/journeys/{id}/migrate",
            needs(Scope::Admin, post(migrate_journey)),
        )
        .route(
            "/v1/journeys/{id}/test-send",
            needs(Scope::Admin, post(test_send_journey)),
        )
}

async fn read(app: &AppState, caller: &Caller, path: &str) -> Result<Response, Problem> {
    CAMPAIGN
        .relay(app, caller, reqwest::Method::GET, path, &[], None)
        .await
}

/// The tenant's journeys, newest first.
#[utoipa::path(get, path = "/v1/journeys", tag = "journeys",
    responses((status = 200, description = "The journeys", body = crm_campaign::bodies::JourneyList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_journeys(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "journeys").await
}

/// Create a journey: the body is its definition (docs/campaign.md), checked and stored as a
/// draft (version 1). Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys", tag = "journeys",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::Journey, description = "{\"name\", \"time_zone\", \"trigger\", \"entry\", \"exit\", \"goal\", \"holdout_percent\", \"start\", \"nodes\": {name: node}}"),
    responses((status = 201, description = "The journey, as a draft", body = crm_campaign::bodies::JourneyRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_journey: `path` names the JSON pointer of the fault", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write_once(
        &app,
        &CAMPAIGN,
        &caller,
        &headers,
        reqwest::Method::POST,
        "journeys",
        Some(&body),
    )
    .await
}

/// A journey: its draft, status and live version.
#[utoipa::path(get, path = "/v1/journeys/{id}", tag = "journeys", params(("id" = Uuid, Path, description = "Journey id")),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_journey(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("journeys/{id}")).await
}

/// Replace the draft (running instances follow the version they entered with). Needs
/// `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/journeys/{id}", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::Journey, description = "The definition"),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: archived", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_journey", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn update_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("journeys/{id}");
    write_once(
        &app,
        &CAMPAIGN,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &path,
        Some(&body),
    )
    .await
}

/// Every published version, frozen.
#[utoipa::path(get, path = "/v1/journeys/{id}/versions", tag = "journeys", params(("id" = Uuid, Path, description = "Journey id")),
    responses((status = 200, description = "The published versions", body = crm_campaign::bodies::JourneyVersions), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn journey_versions(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("journeys/{id}/versions")).await
}

async fn act(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: Uuid,
    action: &str,
) -> Result<Response, Problem> {
    let path = format!("journeys/{id}/{action}");
    write_once(
        app,
        &CAMPAIGN,
        caller,
        headers,
        reqwest::Method::POST,
        &path,
        None,
    )
    .await
}

/// Publish the draft as a new version and make it live. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/publish", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn publish_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    act(&app, &caller, &headers, id, "publish").await
}

/// Pause: no entries, no sends; instances keep their place. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/pause", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: only a published journey pauses", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn pause_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    act(&app, &caller, &headers, id, "pause").await
}

/// Resume a paused journey. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/resume", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: only a paused journey resumes", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn resume_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    act(&app, &caller, &headers, id, "resume").await
}

/// Archive for good. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/archive", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The journey", body = crm_campaign::bodies::JourneyRow), (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: archived already", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn archive_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    act(&app, &caller, &headers, id, "archive").await
}

/// Move running instances to the live version, where the node they stand at exists in it
/// (publishing alone moves nobody; the others finish on their version). Needs
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/migrate", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "Instances moved", body = crm_campaign::bodies::Migrated),
        (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_status: never published", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn migrate_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("journeys/{id}/migrate");
    write_once(
        &app,
        &CAMPAIGN,
        &caller,
        &headers,
        reqwest::Method::POST,
        &path,
        None,
    )
    .await
}

/// Send every `send` message of the journey's draft on one channel once to one address (no
/// customer, no consent needed; the suppression list applies), through the delivery loop: 202
/// with each node's message id. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/journeys/{id}/test-send", tag = "journeys",
    params(("id" = Uuid, Path, description = "Journey id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::JourneyTestSend, description = "{\"address\": \"…\", \"channel\": \"email\" (default) | \"sms\" | \"push\"}"),
    responses((status = 202, description = "Queued, one message per send node", body = crm_campaign::bodies::JourneyTestSent),
        (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address of the channel, or no send node on it", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn test_send_journey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("journeys/{id}/test-send");
    write_once(
        &app,
        &CAMPAIGN,
        &caller,
        &headers,
        reqwest::Method::POST,
        &path,
        Some(&body),
    )
    .await
}
