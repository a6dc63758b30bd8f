//! `/v1/api-keys`: an admin issues keys of narrower scope (ingest-only write keys for
//! integrations, read keys for dashboards, `write:loyalty` keys for a storefront), lists them
//! (never the key itself) and revokes them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use serde::Deserialize;

use crate::auth::{needs, Caller, Scope};
use crate::tenants::{create_key, list_keys, revoke_key, IssuedKey, KeyInfo};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/api-keys",
            needs(Scope::Admin, get(keys)).merge(needs(Scope::Admin, post(issue_key))),
        )
        .route("/v1/api-keys/{id}", needs(Scope::Admin, delete(revoke)))
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
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn issue_key(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), Problem> {
    if body.scopes.is_empty() || body.name.trim().is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidKeyRequest,
            "give a name and at least one scope",
        ));
    }
    let key = create_key(&app.pool, &caller.tenant, body.name.trim(), &body.scopes)
        .await
        .map_err(|e| Problem::internal(&e.into()))?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// The listing of a tenant's keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    /// Newest first, revoked ones included.
    items: Vec<KeyInfo>,
}

/// List the tenant's API keys (admin only): names, prefixes, scopes, revocation; never the keys.
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "keys",
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn keys(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, Problem> {
    Ok(Json(KeyList {
        items: list_keys(&app.pool, &caller.tenant).await?,
    }))
}

/// Revoke one of the tenant's API keys (admin only); it is refused from the next request on.
#[utoipa::path(
    delete, path = "/v1/api-keys/{id}", tag = "keys",
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, revoked", body = KeyInfo),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant has no such key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["admin"]))
)]
pub(crate) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Json<KeyInfo>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::KeyNotFound,
            "this tenant has no API key with this id",
        )
    };
    let id = uuid::Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
    revoke_key(&app.pool, &caller.tenant, id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}
