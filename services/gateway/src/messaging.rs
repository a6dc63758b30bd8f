//! Templates, channels (sender settings, providers, webhook endpoints), the contact policy
//! (frequency caps, quiet hours, global control group) and a customer's messages, through the
//! gateway, relayed to campaign. Writes take an `Idempotency-Key`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use crm_service::Problem;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::proxy::{json_body, CAMPAIGN};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/templates", needs(Scope::Read, get(list_templates)))
        .route(
            "/v1/templates/preview",
            needs(Scope::Read, post(preview_draft)),
        )
        .route(
            "/v1/templates/{key}",
            needs(Scope::Read, get(read_template)).merge(needs(
                Scope::Admin,
                put(put_template).delete(delete_template),
            )),
        )
        .route(
            "/v1/templates/{key}/preview",
            needs(Scope::Read, post(preview_template)),
        )
        .route(
            "/v1/templates/{key}/test-send",
            needs(Scope::Admin, post(test_send)),
        )
        .route("/v1/channels", needs(Scope::Read, get(list_channels)))
        .route(
            "/v1/channels/{key}",
            needs(Scope::Read, get(read_channel)).merge(needs(Scope::Admin, put(put_channel))),
        )
        .route(
            "/v1/channels/{key}/rotate",
            needs(Scope::Admin, post(rotate_channel)),
        )
        .route(
            "/v1/contact-policy",
            needs(Scope::Read, get(read_policy)).merge(needs(Scope::Admin, put(put_policy))),
        )
        .route(
            "/v1/customers/{id}/messages",
            needs(Scope::Read, get(customer_messages)),
        )
        .route(
            "/v1/customers/{id}/journeys",
            needs(Scope::Read, get(customer_journeys)),
        )
        .route(
            "/v1/journeys/{id}/report",
            needs(Scope::Read, get(journey_report)),
        )
}

async fn read(app: &AppState, caller: &Caller, path: &str) -> Result<Response, Problem> {
    CAMPAIGN
        .relay(app, caller, reqwest::Method::GET, path, &[], None)
        .await
}

async fn write(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    write_once(app, &CAMPAIGN, caller, headers, method, path, body).await
}

/// The tenant's templates.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, description = "The templates", body = crm_campaign::bodies::TemplateList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_templates(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "templates").await
}

/// A template.
#[utoipa::path(get, path = "/v1/templates/{key}", tag = "templates", params(("key" = String, Path, description = "Template key")),
    responses((status = 200, description = "The template", body = crm_campaign::bodies::TemplateView), (status = 404, description = "template_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("templates/{key}")).await
}

/// Create or replace a template, checked in the sandbox (errors name part, line and column).
/// Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/templates/{key}", tag = "templates",
    params(("key" = String, Path, description = "Template key"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::TemplateBody, description = "{\"channel\": \"email|sms|push\", \"subject\", \"html\", \"text\", \"message_type\": \"marketing\", \"purpose\": \"marketing|transactional\"}"),
    responses((status = 200, description = "The template", body = crm_campaign::bodies::TemplateView),
        (status = 400, description = "Bad body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_template: `errors` name part, line and column", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn put_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("templates/{key}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &path,
        Some(&body),
    )
    .await
}

/// Delete a template. Needs `Idempotency-Key`.
#[utoipa::path(delete, path = "/v1/templates/{key}", tag = "templates",
    params(("key" = String, Path, description = "Template key"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "template_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn delete_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    let path = format!("templates/{key}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::DELETE,
        &path,
        None,
    )
    .await
}

/// Render a stored template for a sample customer (`{"traits": {…}, "stage", "tier", "segments"}`).
#[utoipa::path(post, path = "/v1/templates/{key}/preview", tag = "templates", params(("key" = String, Path, description = "Template key")),
    request_body(content = crm_campaign::bodies::Sample, description = "{\"traits\": {…}, \"stage\", \"tier\", \"segments\"}"),
    responses((status = 200, description = "Rendered for the sample", body = crm_campaign::bodies::Rendered),
        (status = 422, description = "invalid_template: the render failed (line and column)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn preview_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("templates/{key}/preview");
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            &path,
            &[],
            Some(&body),
        )
        .await
}

/// Check and render a draft template (`{"template": {…}, "sample": {…}}`) without saving it.
#[utoipa::path(post, path = "/v1/templates/preview", tag = "templates",
    request_body(content = crm_campaign::bodies::Draft, description = "{\"template\": {\"subject\", \"html\", \"text\"}, \"sample\": {\"traits\": {…}}}"),
    responses((status = 200, description = "Rendered for the sample", body = crm_campaign::bodies::Rendered),
        (status = 422, description = "invalid_template (line and column)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn preview_draft(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            "templates/preview",
            &[],
            Some(&body),
        )
        .await
}

/// The tenant's channels (secrets are never shown back).
#[utoipa::path(get, path = "/v1/channels", tag = "channels",
    responses((status = 200, description = "The channels (secrets never shown)", body = crm_campaign::bodies::ChannelList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_channels(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "channels").await
}

/// A channel.
#[utoipa::path(get, path = "/v1/channels/{key}", tag = "channels", params(("key" = String, Path, description = "Channel key")),
    responses((status = 200, description = "The channel", body = crm_campaign::bodies::ChannelRow), (status = 404, description = "channel_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("channels/{key}")).await
}

/// Create or replace a channel: email sender settings, an SMS or push provider (with its
/// `token`), or a webhook endpoint (its `whsec_` secret is answered once). Needs
/// `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/channels/{key}", tag = "channels",
    params(("key" = String, Path, description = "Channel key"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::ChannelBody, description = "{\"settings\": {\"kind\": \"email\", \"from\", \"from_name\", \"reply_to\"} | {\"kind\": \"sms\", \"url\", \"account\", \"from\"} | {\"kind\": \"push\", \"url\", \"account\"} | {\"kind\": \"webhook\", \"url\"}, \"token\"}"),
    responses((status = 200, description = "The channel (and `secret` once for a new webhook)", body = crm_campaign::bodies::ChannelView),
        (status = 400, description = "Bad body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_channel", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn put_channel(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("channels/{key}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &path,
        Some(&body),
    )
    .await
}

/// Rotate a webhook channel's signing secret: the new one is answered once; the previous one
/// stays valid beside it until the next rotation. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/channels/{key}/rotate", tag = "channels",
    params(("key" = String, Path, description = "Channel key"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The channel and its new `secret`", body = crm_campaign::bodies::ChannelView),
        (status = 404, description = "channel_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_channel: not a webhook", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn rotate_channel(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    let path = format!("channels/{key}/rotate");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, None).await
}

/// The contact policy: frequency caps, quiet hours, global control group.
#[utoipa::path(get, path = "/v1/contact-policy", tag = "channels",
    responses((status = 200, description = "The policy", body = crm_campaign::bodies::ContactPolicy)),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_policy(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "contact-policy").await
}

/// Replace the contact policy. Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/contact-policy", tag = "channels",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::ContactPolicy, description = "{\"caps\": [{\"channel\": \"email\", \"message_type\": \"marketing\", \"max\": 2, \"window\": {\"rolling_hours\": 24} | \"calendar_day\" | \"calendar_week\" | \"calendar_month\"}], \"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\", \"policy\": \"defer|drop\"}, \"global_holdout_percent\": 0, \"priority_hold_seconds\": 0}"),
    responses((status = 200, description = "The policy", body = crm_campaign::bodies::ContactPolicy),
        (status = 400, description = "Bad body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_policy", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn put_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        "contact-policy",
        Some(&body),
    )
    .await
}

/// A customer's messages, newest first: sent, skipped with the reason, and their delivery.
#[utoipa::path(get, path = "/v1/customers/{id}/messages", tag = "journeys", params(("id" = Uuid, Path, description = "Customer id")),
    responses((status = 200, description = "The messages, newest first", body = crm_campaign::bodies::MessageList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn customer_messages(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("customers/{id}/messages")).await
}

/// A customer's journeys, newest first: status, node, arm, control group, exit reason, goal.
#[utoipa::path(get, path = "/v1/customers/{id}/journeys", tag = "journeys", params(("id" = Uuid, Path, description = "Customer id")),
    responses((status = 200, description = "The journeys, newest first", body = crm_campaign::bodies::CustomerJourneys)),
    security(("api_key" = ["read"])))]
pub(crate) async fn customer_journeys(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("customers/{id}/journeys")).await
}

/// A journey's report: entered, at each node, messages by status, skipped by reason, exited
/// by reason, goal conversion per arm and against the control group with the uplift and its
/// 95% interval (Wald, given from 30 customers per group).
#[utoipa::path(get, path = "/v1/journeys/{id}/report", tag = "journeys", params(("id" = Uuid, Path, description = "Journey id")),
    responses((status = 200, description = "The report", body = crm_campaign::bodies::JourneyReport),
        (status = 404, description = "journey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn journey_report(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("journeys/{id}/report")).await
}

/// Send the template once to one address (no consent needed; the suppression list applies),
/// through the delivery loop: 202 with the message id. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/templates/{key}/test-send", tag = "templates",
    params(("key" = String, Path, description = "Template key"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::TestSend, description = "{\"address\": \"…\"}"),
    responses((status = 202, description = "Queued", body = crm_campaign::bodies::TestSent),
        (status = 404, description = "template_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address of the template's channel", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn test_send(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("templates/{key}/test-send");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        &path,
        Some(&body),
    )
    .await
}
