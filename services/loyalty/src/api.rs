//! Loyalty's internal API.

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
        .route("/internal/v1/tenants/{tenant}/members/{id}", get(member))
        .with_state(pool)
}

#[derive(Serialize, sqlx::FromRow)]
struct Member {
    customer_id: Uuid,
    enrolled_at: DateTime<Utc>,
    orders_seen: i64,
    last_activity_at: DateTime<Utc>,
}

async fn member(
    State(pool): State<PgPool>,
    Path((tenant, id)): Path<(String, Uuid)>,
) -> Result<Json<Member>, Problem> {
    let tenant = tenant_from_path(&tenant)?;
    sqlx::query_as(
        "SELECT customer_id, enrolled_at, orders_seen, last_activity_at FROM members
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&pool)
    .await?
    .map(Json)
    .ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            "no member for this customer",
        )
    })
}
