//! The suppression list through the gateway, relayed to campaign. Addresses are personal data,
//! so they travel in bodies, never in URLs (which end up in access logs).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Problem;
use serde::Deserialize;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::proxy::{json_body, query_of, CAMPAIGN};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/suppressions",
            needs(Scope::Read, get(list_suppressions))
                .merge(needs(Scope::Admin, post(add_suppression))),
        )
        .route(
            "/v1/suppressions/remove",
            needs(Scope::Admin, post(remove_suppression)),
        )
}

/// Which page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct PageQuery {
    /// Page size, 1 to 500 (default 100).
    limit: Option<u32>,
    /// Entries to skip (default 0).
    offset: Option<u32>,
}

/// The suppressed addresses, by channel and address.
#[utoipa::path(get, path = "/v1/suppressions", tag = "suppressions", params(PageQuery),
    responses((status = 200, description = "A page of suppressed addresses", body = crm_campaign::bodies::SuppressionPage),
        (status = 400, description = "Bad limit or offset", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_suppressions(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("limit", q.limit.map(|l| l.to_string())),
        ("offset", q.offset.map(|o| o.to_string())),
    ];
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            "suppressions",
            &query_of(&pairs),
            None,
        )
        .await
}

/// Suppress an address (`{"channel": "email|sms|push", "address": "…", "reason": "manual"}`);
/// 201 when new, 200 when it was suppressed already. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/suppressions", tag = "suppressions",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::AddressBody, description = "{\"channel\": \"email|sms|push\", \"address\": \"…\", \"reason\": \"manual|unsubscribe|hard_bounce|complaint|soft_bounces\"}"),
    responses((status = 201, description = "Added", body = crm_campaign::bodies::Suppressed), (status = 200, description = "Suppressed already", body = crm_campaign::bodies::Suppressed),
        (status = 400, description = "Bad body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address of that channel", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn add_suppression(
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
        "suppressions",
        Some(&body),
    )
    .await
}

/// Remove an address from the list (`{"channel", "address"}`). Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/suppressions/remove", tag = "suppressions",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::AddressBody, description = "{\"channel\": \"email|sms|push\", \"address\": \"…\"}"),
    responses((status = 200, description = "Whether it was suppressed", body = crm_campaign::bodies::Unsuppressed),
        (status = 400, description = "Bad body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address of that channel", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn remove_suppression(
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
        "suppressions/remove",
        Some(&body),
    )
    .await
}
