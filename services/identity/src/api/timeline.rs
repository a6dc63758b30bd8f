//! A customer's timeline, newest first, with cursor paging.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use serde::Deserialize;

use super::bodies::TimelinePage;
use super::{customer_not_found, ApiState, CustomerPath};
use crate::store::settings;
use crate::store::{profile, timeline};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route(
        "/internal/v1/tenants/{tenant}/customers/{id}/timeline",
        get(page),
    )
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    /// 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next` of the previous page.
    cursor: Option<String>,
}

async fn page(
    State(ApiState { pool, .. }): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
    Query(q): Query<PageQuery>,
) -> Result<Json<TimelinePage>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit is between 1 and 200",
        ));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(timeline::parse_cursor(c).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidCursor,
                "cursor is not one this API gave; pass the previous page's next as it is",
            )
        })?),
    };
    let mut conn = pool.acquire().await?;
    let customer = profile::canonical_id(&mut conn, &tenant, id)
        .await?
        .ok_or_else(customer_not_found)?;
    let retention = settings::load(&mut conn, &tenant)
        .await?
        .timeline_retention_days;
    let items = timeline::page(&mut conn, &tenant, customer, before, limit, retention).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(timeline::cursor_of))
        .flatten();
    Ok(Json(TimelinePage {
        customer_id: customer,
        items,
        next,
    }))
}
