//! Identity's review queue and data-quality report, relayed: `GET /v1/reviews`,
//! `POST /v1/reviews/{id}/accept|reject`, `GET /v1/data-quality`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::relay;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reviews", needs(Scope::Read, get(list_reviews)))
        .route(
            "/v1/reviews/{id}/accept",
            needs(Scope::Admin, post(accept_review)),
        )
        .route(
            "/v1/reviews/{id}/reject",
            needs(Scope::Admin, post(reject_review)),
        )
        .route("/v1/data-quality", needs(Scope::Read, get(data_quality)))
}

/// Which reviews to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ReviewQuery {
    /// `pending` (default), `accepted` or `rejected`.
    status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next_after` of the previous page.
    after: Option<Uuid>,
}

/// Pairs of customers that may be one person but were not merged automatically.
#[utoipa::path(
    get, path = "/v1/reviews", tag = "identity", params(ReviewQuery),
    responses(
        (status = 200, description = "A page of reviews", body = crm_identity::bodies::ReviewPage),
        (status = 400, description = "Bad status or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn list_reviews(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ReviewQuery>,
) -> Result<Response, Problem> {
    let limit = q.limit.map(|l| l.to_string());
    let after = q.after.map(|a| a.to_string());
    let mut query = Vec::new();
    if let Some(s) = &q.status {
        query.push(("status", s.as_str()));
    }
    if let Some(l) = &limit {
        query.push(("limit", l.as_str()));
    }
    if let Some(a) = &after {
        query.push(("after", a.as_str()));
    }
    relay(&app, &caller, reqwest::Method::GET, "reviews", &query, None).await
}

/// Accept a review: the two customers merge (kind `manual`), the older surviving.
#[utoipa::path(
    post, path = "/v1/reviews/{id}/accept", tag = "identity",
    params(("id" = Uuid, Path, description = "Review id")),
    responses(
        (status = 200, description = "Accepted: the two were merged", body = crm_identity::bodies::ReviewDecision),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No pending review with this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn accept_review(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    decide(&app, &caller, id, "accept").await
}

/// Reject a review: the two customers stay apart.
#[utoipa::path(
    post, path = "/v1/reviews/{id}/reject", tag = "identity",
    params(("id" = Uuid, Path, description = "Review id")),
    responses(
        (status = 200, description = "Rejected: the two stay apart", body = crm_identity::bodies::ReviewDecision),
        (status = 403, description = "The key lacks the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No pending review with this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn reject_review(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    decide(&app, &caller, id, "reject").await
}

/// Per identifier field: values present, valid, invalid (kept with a flag) and standardised.
#[utoipa::path(
    get, path = "/v1/data-quality", tag = "identity",
    responses(
        (status = 200, description = "Counts per field", body = crm_identity::bodies::QualityReport),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn data_quality(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    relay(
        &app,
        &caller,
        reqwest::Method::GET,
        "data-quality",
        &[],
        None,
    )
    .await
}

async fn decide(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
    decision: &str,
) -> Result<Response, Problem> {
    let path = format!("reviews/{id}/{decision}");
    relay(app, caller, reqwest::Method::POST, &path, &[], None).await
}
