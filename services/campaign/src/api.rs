//! Campaign's internal API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantAnd;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/contacts/{id}", get(contact))
        .with_state(pool)
}

#[derive(Serialize, sqlx::FromRow)]
struct Contact {
    customer_id: Uuid,
    email: Option<String>,
    events_seen: i64,
    last_event_at: Option<DateTime<Utc>>,
}

async fn contact(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Contact>, Problem> {
    sqlx::query_as(
        "SELECT customer_id, email, events_seen, last_event_at FROM contacts
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
            Code::ContactNotFound,
            "no contact for this customer",
        )
    })
}
