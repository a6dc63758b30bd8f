//! The per-tenant data-quality report.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Problem;
use crm_service::TenantPath;
use serde::Serialize;

use super::ApiState;

/// One field's counts.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct FieldQuality {
    field: String,
    /// Values received.
    present: i64,
    /// Usable values (already standard or standardised).
    valid: i64,
    /// Values kept as received with an invalid flag.
    invalid: i64,
    /// Valid values that had to be rewritten to the standard form.
    standardised: i64,
}

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/internal/v1/tenants/{tenant}/data-quality", get(report))
}

async fn report(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<serde_json::Value>, Problem> {
    let fields: Vec<FieldQuality> = sqlx::query_as(
        "SELECT field, present, valid, invalid, standardised FROM data_quality
         WHERE tenant_id = $1 ORDER BY field",
    )
    .bind(tenant.as_str())
    .fetch_all(&pool)
    .await?;
    Ok(Json(serde_json::json!({ "fields": fields })))
}
