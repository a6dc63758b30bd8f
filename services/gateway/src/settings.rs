//! Per-tenant identity settings and customer search, relayed to identity:
//! `GET|PUT /v1/identity/settings`, `GET /v1/customers/search`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{query_of, relay};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/identity/settings",
            needs(Scope::Admin, get(read_settings)).merge(needs(Scope::Admin, put(write_settings))),
        )
        .route(
            "/v1/customers/search",
            needs(Scope::Read, get(search_customers)),
        )
        .route("/v1/prospects", needs(Scope::Read, get(list_prospects)))
}

/// The tenant's identity settings: `survivorship` (`most_recent`, `most_trusted_source`,
/// `most_complete`), `source_trust`, `email_provider_rules` (`off`, `on`), `phone_region`,
/// `blocklist` ([{kind, value}]), `max_identifiers_per_kind`, `timeline_retention_days`.
#[utoipa::path(
    get, path = "/v1/identity/settings", tag = "identity", operation_id = "read_identity_settings",
    responses(
        (status = 200, description = "The settings (defaults when never set)", body = crm_identity::bodies::Settings),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn read_settings(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    relay(&app, &caller, reqwest::Method::GET, "settings", &[], None).await
}

/// Replace the tenant's identity settings (fields as GET shows them; missing ones take their
/// defaults; unknown ones are refused).
#[utoipa::path(
    put, path = "/v1/identity/settings", tag = "identity", operation_id = "write_identity_settings",
    request_body = crm_identity::bodies::Settings,
    responses(
        (status = 200, description = "The settings stored", body = crm_identity::bodies::Settings),
        (status = 400, description = "Unknown field or bad value (code invalid_settings)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn write_settings(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidSettings,
            e.body_text(),
        )
    })?;
    relay(
        &app,
        &caller,
        reqwest::Method::PUT,
        "settings",
        &[],
        Some(&body),
    )
    .await
}

/// A page of prospects.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ProspectQuery {
    /// Page size, 1 to 100 (default 50).
    limit: Option<u32>,
    /// `next_after` of the previous page.
    after: Option<Uuid>,
}

/// Prospects: profiles known only by social handles (people who mentioned the brand and whom
/// no identifier links to a customer yet), with their interests, the tracked terms their
/// mentions matched. An identify carrying the handle makes the profile a customer's.
#[utoipa::path(
    get, path = "/v1/prospects", tag = "customers", params(ProspectQuery),
    responses(
        (status = 200, description = "A page of prospects, by id", body = crm_identity::bodies::ProspectPage),
        (status = 400, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn list_prospects(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ProspectQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("limit", q.limit.map(|l| l.to_string())),
        ("after", q.after.map(|a| a.to_string())),
    ];
    let query = query_of(&pairs);
    relay(
        &app,
        &caller,
        reqwest::Method::GET,
        "prospects",
        &query,
        None,
    )
    .await
}

/// What to search for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct SearchQuery {
    /// An identifier (user id, email, E.164 phone, ...), or words of a name or email
    /// (accents and case ignored): 2 to 200 characters.
    q: String,
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// `next_after` of the previous page.
    after: Option<Uuid>,
}

/// Search customers by identifier, name or email.
#[utoipa::path(
    get, path = "/v1/customers/search", tag = "customers", params(SearchQuery),
    responses(
        (status = 200, description = "A page of customers", body = crm_identity::bodies::ProfilePage),
        (status = 400, description = "Bad query or limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn search_customers(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("q", Some(q.q)),
        ("limit", q.limit.map(|l| l.to_string())),
        ("after", q.after.map(|a| a.to_string())),
    ];
    let query = query_of(&pairs);
    relay(
        &app,
        &caller,
        reqwest::Method::GET,
        "search/customers",
        &query,
        None,
    )
    .await
}
