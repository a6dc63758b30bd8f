//! The tenant's programme.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantPath;

use super::keyed::Keyed;
use super::{actor, json_body, programme_of, ApiState};
use crate::domain::programme::Programme;
use crate::store::programmes;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route(
        "/internal/v1/tenants/{tenant}/loyalty/programme",
        get(read).put(write),
    )
}

async fn read(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<Programme>, Problem> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(programme_of(&mut conn, &tenant).await?))
}

async fn write(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let p: Programme = json_body(&body)?;
    if let Some(problem) = p.problem() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidProgramme,
            problem,
        ));
    }
    let mut tx = state.pool.begin().await?;
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, "programme.write", &body).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    programmes::save(&mut tx, &tenant, &p, &actor(&headers)).await?;
    let answer = keyed.answer(&mut tx, &tenant, StatusCode::OK, &p).await?;
    tx.commit().await?;
    Ok(answer)
}
