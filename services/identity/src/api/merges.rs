//! Merges and their evidence, and unmerge.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantAnd;
use uuid::Uuid;

use super::bodies::{MergeList, Unmerged};
use super::{customer_not_found, ApiState, CustomerPath};
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
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<MergeList>, Problem> {
    let mut conn = pool.acquire().await?;
    let items = merge::merges_of(&mut conn, &tenant, id).await?;
    if items.is_empty() {
        profile::load_following_alias(&mut conn, &tenant, id)
            .await?
            .ok_or_else(customer_not_found)?;
    }
    Ok(Json(MergeList { items }))
}

async fn split(
    State(state): State<ApiState>,
    TenantAnd(tenant, raw_id): TenantAnd<String>,
) -> Result<Json<Unmerged>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::MergeNotFound,
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
                Code::SurvivorMergedAgain,
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
    Ok(Json(Unmerged {
        merge_id: id,
        status: "undone".to_owned(),
        survivor,
        restored,
    }))
}
