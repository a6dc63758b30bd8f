//! Merges and their evidence, and unmerge.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::{tenant_from_path, Problem};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{customer_not_found, customer_path, ApiState};
use crate::merge;
use crate::store::profile;
use crate::unmerge::{unmerge, UnmergeError};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/merges",
            get(list),
        )
        .route(
            "/internal/v1/tenants/{tenant}/merges/{id}/unmerge",
            post(split),
        )
}

/// The merges a customer took part in, newest first.
async fn list(
    State(ApiState { pool, .. }): State<ApiState>,
    Path((raw_tenant, raw_id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let (tenant, id) = customer_path(&raw_tenant, &raw_id)?;
    let mut conn = pool.acquire().await?;
    let items = merge::merges_of(&mut conn, &tenant, id).await?;
    if items.is_empty() {
        profile::load_following_alias(&mut conn, &tenant, id)
            .await?
            .ok_or_else(customer_not_found)?;
    }
    Ok(Json(json!({ "items": items })))
}

async fn split(
    State(state): State<ApiState>,
    Path((raw_tenant, raw_id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let tenant = tenant_from_path(&raw_tenant)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "merge_not_found",
            "no merge with this id for this tenant that is still in force",
        )
    };
    let id = Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
    let mut tx = state.pool.begin().await?;
    let done = match unmerge(&mut tx, &tenant, id).await {
        Ok(done) => done,
        Err(UnmergeError::NotFound) => return Err(not_found()),
        Err(UnmergeError::SurvivorGone) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "survivor_merged_again",
                "the survivor of this merge was merged or erased since; undo that first",
            ))
        }
        Err(UnmergeError::Database(e)) => return Err(e.into()),
    };
    let survivor = profile::load(&mut tx, &tenant, done.survivor).await?;
    let restored = profile::load(&mut tx, &tenant, done.restored).await?;
    tx.commit().await?;
    state.relay.notify_one();
    // The restored id was tombstoned when it was merged away: it may be cached again.
    state.hot.revive(&tenant, done.restored).await;
    for p in survivor.iter().chain(restored.iter()) {
        state.hot.refresh(&tenant, p).await;
    }
    Ok(Json(json!({
        "merge_id": id,
        "status": "undone",
        "survivor": survivor,
        "restored": restored,
    })))
}
