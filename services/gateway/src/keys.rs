//! `POST /v1/api-keys`: an admin issues keys of narrower scope (ingest-only write keys for
//! integrations, read keys for dashboards).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use crm_service::Problem;
use serde::Deserialize;

use crate::auth::{Caller, Scope};
use crate::tenants::{create_key, IssuedKey};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/api-keys", post(issue_key))
}

/// A key to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// What the key is for (shown in listings).
    name: String,
    /// Its scopes.
    scopes: Vec<Scope>,
}

/// Issue an API key for the caller's tenant (admin only). The key is shown once.
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "keys", request_body = NewKey,
    responses(
        (status = 201, description = "The key; store it now", body = IssuedKey),
        (status = 400, description = "No scopes or no name", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn issue_key(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), Problem> {
    caller.require(Scope::Admin)?;
    if body.scopes.is_empty() || body.name.trim().is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_key_request",
            "give a name and at least one scope",
        ));
    }
    let key = create_key(&app.pool, &caller.tenant, body.name.trim(), &body.scopes)
        .await
        .map_err(|e| Problem::internal(&e.into()))?;
    Ok((StatusCode::CREATED, Json(key)))
}
