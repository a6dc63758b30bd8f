//! A customer's contact: the email and activity campaigns reach them with.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::contacts::{self, Contact};

pub(crate) fn routes() -> Router<super::ApiState> {
    Router::new().route("/internal/v1/tenants/{tenant}/contacts/{id}", get(contact))
}

async fn contact(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Contact>, Problem> {
    let mut conn = pool.acquire().await?;
    contacts::find(&mut conn, &tenant, id)
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
