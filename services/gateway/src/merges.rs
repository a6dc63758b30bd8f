//! A customer's identifiers, merges and their evidence, and unmerge, relayed to identity:
//! `GET /v1/customers/{id}/identifiers`, `GET /v1/customers/{id}/merges`,
//! `POST /v1/merges/{id}/unmerge`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use crm_service::Problem;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::relay;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/customers/{id}/merges",
            needs(Scope::Read, get(customer_merges)),
        )
        .route(
            "/v1/customers/{id}/identifiers",
            needs(Scope::Read, get(customer_identifiers)),
        )
        .route(
            "/v1/merges/{id}/unmerge",
            needs(Scope::Admin, post(unmerge)),
        )
}

/// The merges a customer took part in, newest first, with their evidence.
#[utoipa::path(
    get, path = "/v1/customers/{id}/merges", tag = "identity",
    params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The merges, newest first", body = crm_identity::bodies::MergeList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn customer_merges(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/merges");
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// The customer's identifiers (user ids, anonymous ids, emails, phones, handles, external
/// ids), with when each was first seen.
#[utoipa::path(
    get, path = "/v1/customers/{id}/identifiers", tag = "identity",
    params(("id" = Uuid, Path, description = "Customer id (a merged id works too)")),
    responses(
        (status = 200, description = "The identifiers", body = crm_identity::bodies::Identifiers),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn customer_identifiers(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("customers/{id}/identifiers");
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// Split a merge again: the merged customer comes back with what it held at the merge; both
/// profiles are republished (`profile.unmerged`, `profile.updated`), and the pair will not
/// merge automatically again.
#[utoipa::path(
    post, path = "/v1/merges/{id}/unmerge", tag = "identity",
    params(("id" = Uuid, Path, description = "Merge id")),
    responses(
        (status = 200, description = "Undone", body = crm_identity::bodies::Unmerged),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No merge in force with this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The survivor was merged again since", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn unmerge(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("merges/{id}/unmerge");
    relay(&app, &caller, reqwest::Method::POST, &path, &[], None).await
}
