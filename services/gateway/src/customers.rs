//! Customer reads: `GET /v1/customers/{id}` from the hot-profile cache (falling back to
//! identity and filling the cache), `GET /v1/customers?user_id=…` by exact identifier, and
//! `POST /v1/customers/lookup` for identifiers that are personal data (emails).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{passthrough, IDENTITY};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}", needs(Scope::Read, get(get_customer)))
        .route("/v1/customers", needs(Scope::Read, get(find_customers)))
        .route(
            "/v1/customers/lookup",
            needs(Scope::Read, post(lookup_customers)),
        )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::CustomerNotFound,
        "no customer with this id for your tenant",
    )
}

/// Read a customer's profile.
#[utoipa::path(
    get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The profile; header x-cache says hit or miss", body = crm_envelope::Profile),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity unreachable and profile not cached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn get_customer(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
    let key = app.cache.key(&caller.tenant, id);
    match app.cache.get(&key).await {
        Ok(Some(json)) => return Ok(profile_response(json, "hit")),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "profile cache unavailable; reading from identity"),
    }
    let json = app
        .identity
        .customer(&caller.tenant, id)
        .await
        .map_err(|e| IDENTITY.unavailable(&e))?
        .ok_or_else(not_found)?;
    // A merged id answers its survivor's profile: that is cached under the survivor's id only
    // (identity keeps that key fresh), never under the alias, where it would go stale.
    if canonical_id(&json) == Some(id) {
        if let Err(e) = app.cache.fill(&key, &json).await {
            tracing::warn!(error = %e, "profile cache fill failed");
        }
    }
    Ok(profile_response(json, "miss"))
}

/// The `id` of a profile document.
fn canonical_id(json: &str) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Id {
        id: Uuid,
    }
    serde_json::from_str::<Id>(json).ok().map(|p| p.id)
}

fn profile_response(json: String, cache: &'static str) -> Response {
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache));
    response
}

/// Exactly one identifier to look a customer up by.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct Lookup {
    /// The customer's id in your system.
    user_id: Option<String>,
    /// A device or browser id.
    anonymous_id: Option<String>,
    /// Refused here (400 `pii_in_query`): use `POST /v1/customers/lookup`.
    email: Option<String>,
}

/// Find customers by `user_id` or `anonymous_id`. Emails are personal data and query strings
/// end up in access logs: look them up with `POST /v1/customers/lookup`.
#[utoipa::path(
    get, path = "/v1/customers", tag = "customers", params(Lookup),
    responses(
        (status = 200, description = "The customers (empty when none)", body = crm_identity::bodies::ProfileList),
        (status = 400, description = "Not exactly one identifier (invalid_lookup), or an email in the query (pii_in_query)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn find_customers(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<Lookup>,
) -> Result<Response, Problem> {
    if q.email.is_some() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::PiiInQuery,
            "emails are personal data and query strings end up in logs: POST /v1/customers/lookup with {\"email\": \"…\"}",
        ));
    }
    let mut query = Vec::new();
    for (name, value) in [("user_id", &q.user_id), ("anonymous_id", &q.anonymous_id)] {
        if let Some(v) = value {
            query.push((name, v.as_str()));
        }
    }
    let (status, body) = app
        .identity
        .call(
            reqwest::Method::GET,
            &caller.tenant,
            "customers",
            &query,
            None,
        )
        .await
        .map_err(|e| IDENTITY.unavailable(&e))?;
    Ok(passthrough(status, body))
}

/// One identifier to look a customer up by, in a body (so that no email reaches a URL).
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupBody {
    /// The customer's id in your system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// A device or browser id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anonymous_id: Option<String>,
    /// An email address (case-insensitive, with the tenant's provider rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

/// Find customers by exactly one identifier given in the body: `user_id`, `anonymous_id` or
/// `email`.
#[utoipa::path(
    post, path = "/v1/customers/lookup", tag = "customers", request_body = LookupBody,
    responses(
        (status = 200, description = "The customers (empty when none)", body = crm_identity::bodies::ProfileList),
        (status = 400, description = "Not exactly one identifier, or an invalid email", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn lookup_customers(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<LookupBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLookup,
            format!(
                "the body is {{\"user_id\" | \"anonymous_id\" | \"email\": \"…\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let body = serde_json::to_value(&body).map_err(|e| Problem::internal(&e.into()))?;
    let (status, body) = app
        .identity
        .call(
            reqwest::Method::POST,
            &caller.tenant,
            "customers/lookup",
            &[],
            Some(&body),
        )
        .await
        .map_err(|e| IDENTITY.unavailable(&e))?;
    Ok(passthrough(status, body))
}
