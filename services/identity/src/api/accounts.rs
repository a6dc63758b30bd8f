//! Accounts (B2B) made by Segment `group` calls: one account with its traits and members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd};

use super::ApiState;
use crate::store::accounts::{self, Account};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/internal/v1/tenants/{tenant}/accounts/{id}", get(read))
}

async fn read(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantAnd(tenant, group_id): TenantAnd<String>,
) -> Result<Json<Account>, Problem> {
    let mut conn = pool.acquire().await?;
    accounts::read(&mut conn, &tenant, &group_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                Code::AccountNotFound,
                "no account with this id for this tenant (accounts are made by Segment group calls)",
            )
        })
}
