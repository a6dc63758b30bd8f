//! Consent, export and erasure of a customer, relayed to identity:
//! `GET|POST /v1/customers/{id}/consent`, `GET /v1/customers/{id}/export`,
//! `POST /v1/customers/{id}/erase`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_identity::bodies::ConsentBody;
use crm_service::Code;
use crm_service::Problem;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::relay;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/customers/{id}/consent",
            needs(Scope::Read, get(read_consent))
                .merge(needs(Scope::Privacy, post(record_consent))),
        )
        .route(
            "/v1/customers/{id}/export",
            needs(Scope::Privacy, get(export)),
        )
        .route(
            "/v1/customers/{id}/erase",
            needs(Scope::Privacy, post(erase)),
        )
}

/// The customer's current consent: the latest entry per purpose and channel.
#[utoipa::path(
    get, path = "/v1/customers/{id}/consent", tag = "privacy",
    params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The current consent: the latest entry per purpose and channel", body = crm_identity::bodies::ConsentList),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn read_consent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/consent");
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// Record a consent given or withdrawn: `{"purpose", "channel", "granted", "at"?, "source"?}`.
/// Identify events record consent too, from a `consent` trait of the same shape (or a list).
#[utoipa::path(
    post, path = "/v1/customers/{id}/consent", tag = "privacy",
    params(("id" = Uuid, Path, description = "Customer id")),
    request_body = ConsentBody,
    responses(
        (status = 200, description = "The current consent, after the change", body = crm_identity::bodies::ConsentList),
        (status = 400, description = "Malformed consent (code invalid_consent)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["privacy"]))
)]
pub(crate) async fn record_consent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<ConsentBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(request) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidConsent,
            format!(
                "expected {{purpose, channel, granted, at?, source?}}: {}",
                e.body_text()
            ),
        )
    })?;
    let body = serde_json::to_value(&request).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidConsent,
            "unreadable consent",
        )
    })?;
    let path = format!("customers/{id}/consent");
    relay(
        &app,
        &caller,
        reqwest::Method::POST,
        &path,
        &[],
        Some(&body),
    )
    .await
}

/// Everything identity holds on the customer, as JSON (profile, trait provenance, quality
/// flags, aliases, consent history, merges with their evidence).
#[utoipa::path(
    get, path = "/v1/customers/{id}/export", tag = "privacy",
    params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The export document", body = crm_identity::bodies::ExportDocument),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["privacy"]))
)]
pub(crate) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/export");
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// Erase the customer and its aliases: personal data deleted, a tombstone kept, hot profiles
/// evicted, `profile.erased` published (docs/events.md says what every part does with it).
#[utoipa::path(
    post, path = "/v1/customers/{id}/erase", tag = "privacy",
    params(("id" = Uuid, Path, description = "Customer id (a merged id erases its survivor)")),
    responses(
        (status = 200, description = "Erased", body = crm_identity::bodies::Erased),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer (or erased already)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["privacy"]))
)]
pub(crate) async fn erase(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/erase");
    let response = relay(&app, &caller, reqwest::Method::POST, &path, &[], None).await?;
    // Identity evicted the hot profiles; evict here too, so a fill that raced the erasure
    // cannot leave a copy behind.
    if response.status().is_success() {
        let _ = app
            .cache
            .tombstone(&app.cache.key(&caller.tenant, id))
            .await;
    }
    Ok(response)
}
