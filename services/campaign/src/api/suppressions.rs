//! The suppression list: add, remove (addresses travel in bodies, never in URLs, since URLs
//! end up in access logs) and list.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantPath};
use serde::Deserialize;
use sqlx::PgPool;

use super::actor;
use super::bodies::{AddressBody, Suppressed, SuppressionPage, Unsuppressed};
use crate::domain::journeys::Channel;
use crate::domain::suppression::{normalise, Reason};
use crate::store::suppressions;

pub(crate) fn routes() -> Router<super::ApiState> {
    let base = "/internal/v1/tenants/{tenant}/suppressions";
    Router::new()
        .route(base, get(list).post(add))
        .route(&format!("{base}/remove"), post(remove))
}

fn address_of(body: &[u8]) -> Result<(Channel, String, Reason), Problem> {
    let a: AddressBody = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is {{\"channel\": \"email|sms|push\", \"address\": \"…\"}}: {e}"),
        )
    })?;
    let address = normalise(a.channel, &a.address)
        .map_err(|m| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidBody, m))?;
    Ok((a.channel, address, a.reason.unwrap_or(Reason::Manual)))
}

async fn add(
    State(pool): State<PgPool>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let (channel, address, reason) = address_of(&body)?;
    let mut conn = pool.acquire().await?;
    let added = suppressions::add(
        &mut conn,
        &tenant,
        channel,
        &address,
        reason,
        &actor(&headers),
    )
    .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Suppressed {
            channel,
            address,
            added,
        }),
    )
        .into_response())
}

async fn remove(
    State(pool): State<PgPool>,
    TenantPath(tenant): TenantPath,
    body: axum::body::Bytes,
) -> Result<Json<Unsuppressed>, Problem> {
    let (channel, address, _) = address_of(&body)?;
    let mut conn = pool.acquire().await?;
    let removed = suppressions::remove(&mut conn, &tenant, channel, &address).await?;
    Ok(Json(Unsuppressed {
        channel,
        address,
        removed,
    }))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(pool): State<PgPool>,
    TenantPath(tenant): TenantPath,
    Query(p): Query<Page>,
) -> Result<Json<SuppressionPage>, Problem> {
    let limit = p.limit.unwrap_or(100);
    let offset = p.offset.unwrap_or(0);
    if !(1..=500).contains(&limit) || offset < 0 {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit is 1 to 500 and offset at least 0",
        ));
    }
    let mut conn = pool.acquire().await?;
    let items = suppressions::page(&mut conn, &tenant, offset, limit).await?;
    Ok(Json(SuppressionPage {
        items,
        offset,
        limit,
    }))
}
