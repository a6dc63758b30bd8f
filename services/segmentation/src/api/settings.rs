//! The tenant's segmentation settings: lifecycle thresholds, lead scoring, retention, horizon.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantPath;

use super::{actor, json_body, ApiState};
use crate::domain::settings::Settings;
use crate::store::settings;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route(
        "/internal/v1/tenants/{tenant}/segmentation/settings",
        get(read).put(write),
    )
}

async fn read(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<Settings>, Problem> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(settings::load(&mut conn, &tenant).await?))
}

async fn write(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Settings>, Problem> {
    let new: Settings = json_body(&body)?;
    if let Some(p) = new.problem() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidSettings,
            p,
        ));
    }
    let mut tx = state.pool.begin().await?;
    settings::save(&mut tx, &tenant, &new, &actor(&headers)).await?;
    tx.commit().await?;
    Ok(Json(new))
}
