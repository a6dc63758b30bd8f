//! Segmentation's internal API.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::{tenant_from_path, Problem};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn routes(pool: PgPool) -> Router {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/activity",
            get(activity),
        )
        .with_state(pool)
}

#[derive(Serialize, sqlx::FromRow)]
struct Activity {
    customer_id: Uuid,
    events_total: i64,
    orders_total: i64,
    revenue_total: f64,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

async fn activity(
    State(pool): State<PgPool>,
    Path((tenant, id)): Path<(String, Uuid)>,
) -> Result<Json<Activity>, Problem> {
    let tenant = tenant_from_path(&tenant)?;
    sqlx::query_as(
        "SELECT customer_id, events_total, orders_total, revenue_total::float8 AS revenue_total,
                first_seen_at, last_seen_at
         FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&pool)
    .await?
    .map(Json)
    .ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "customer_not_found",
            "no activity for this customer",
        )
    })
}
