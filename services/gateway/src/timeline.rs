//! A customer's timeline, relayed to identity: `GET /v1/customers/{id}/timeline`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{query_of, relay};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/customers/{id}/timeline",
        needs(Scope::Read, get(timeline)),
    )
}

/// Which page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct TimelineQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next` of the previous page.
    cursor: Option<String>,
}

/// Every event of the customer (its aliases' included), newest first, kept for the tenant's
/// retention.
#[utoipa::path(
    get, path = "/v1/customers/{id}/timeline", tag = "customers", params(("id" = Uuid, Path, description = "Customer id (a merged id works too)"), TimelineQuery),
    responses(
        (status = 200, description = "A page of the timeline", body = crm_identity::bodies::TimelinePage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn timeline(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<TimelineQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("limit", q.limit.map(|l| l.to_string())),
        ("cursor", q.cursor),
    ];
    let path = format!("customers/{id}/timeline");
    relay(
        &app,
        &caller,
        reqwest::Method::GET,
        &path,
        &query_of(&pairs),
        None,
    )
    .await
}
