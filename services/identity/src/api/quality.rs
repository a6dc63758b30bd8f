//! The per-tenant data-quality report.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Problem;
use crm_service::TenantPath;

use super::bodies::{FieldQuality, QualityReport};
use super::ApiState;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/internal/v1/tenants/{tenant}/data-quality", get(report))
}

async fn report(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<QualityReport>, Problem> {
    let fields: Vec<FieldQuality> = sqlx::query_as(
        "SELECT field, present, valid, invalid, standardised FROM data_quality
         WHERE tenant_id = $1 ORDER BY field",
    )
    .bind(tenant.as_str())
    .fetch_all(&pool)
    .await?;
    Ok(Json(QualityReport { fields }))
}
