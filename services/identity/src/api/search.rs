//! Customer search, prospects (profiles known only by social handles) and per-tenant identity
//! settings.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantPath;
use serde::Deserialize;
use uuid::Uuid;

use super::bodies::ProfilePage;
use super::ApiState;
use crate::domain::settings::Settings;
use crate::store::prospects::{self, Prospect};
use crate::store::settings;
use crate::store::{profile, search};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/search/customers", get(find))
        .route("/internal/v1/tenants/{tenant}/prospects", get(prospects))
        .route(
            "/internal/v1/tenants/{tenant}/settings",
            get(read_settings).put(write_settings),
        )
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
    after: Option<Uuid>,
}

async fn find(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<SearchQuery>,
) -> Result<Json<ProfilePage>, Problem> {
    let text = q.q.unwrap_or_default();
    if text.trim().chars().count() < 2 || text.len() > 200 || text.contains('\0') {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidQuery,
            "q is 2 to 200 characters (no NUL): an identifier, or words of a name or email",
        ));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit is between 1 and 100",
        ));
    }
    let mut conn = pool.acquire().await?;
    let ids = search::search(&mut conn, &tenant, &text, q.after, limit).await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(p) = profile::load(&mut conn, &tenant, *id).await? {
            items.push(p);
        }
    }
    let next = (ids.len() as i64 == limit)
        .then(|| ids.last().copied())
        .flatten();
    Ok(Json(ProfilePage {
        items,
        next_after: next,
    }))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    after: Option<Uuid>,
}

/// A page of prospects.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProspectPage {
    /// By id.
    pub items: Vec<Prospect>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

async fn prospects(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<PageQuery>,
) -> Result<Json<ProspectPage>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit is between 1 and 100",
        ));
    }
    let mut conn = pool.acquire().await?;
    let items = prospects::page(&mut conn, &tenant, q.after, limit).await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|p| p.customer_id))
        .flatten();
    Ok(Json(ProspectPage { items, next_after }))
}

async fn read_settings(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<Settings>, Problem> {
    let mut conn = pool.acquire().await?;
    Ok(Json(settings::load(&mut conn, &tenant).await?))
}

async fn write_settings(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<Settings>, Problem> {
    let Json(new) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidSettings,
            e.body_text(),
        )
    })?;
    new.validate()
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidSettings, e))?;
    let mut conn = pool.acquire().await?;
    settings::save(&mut conn, &tenant, &new).await?;
    Ok(Json(new))
}
