//! The offer catalogue and the tenant's decision settings: create, list, read, replace and
//! archive offers (checked when saved, errors with the JSON pointer), read and replace the
//! settings. Every change drops this replica's cached catalogue at once.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde_json::{json, Value};
use uuid::Uuid;

use super::actor;
use super::bodies::OfferList;
use crate::domain::offers::catalogue::{self, OfferSpec};
use crate::domain::offers::decide::DecisionSettings;
use crate::store::offers::{self, OfferStoreError};

pub(crate) fn routes() -> Router<super::ApiState> {
    let base = "/internal/v1/tenants/{tenant}/offers";
    Router::new()
        .route(base, get(list).post(create))
        .route(
            &format!("{base}/{{id}}"),
            get(read).put(replace).delete(archive),
        )
        .route(
            "/internal/v1/tenants/{tenant}/decision-settings",
            get(read_settings).put(save_settings),
        )
}

/// The body as JSON, or 400 `invalid_json`.
pub(crate) fn json_of(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidJson,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// A problem naming the faulty field by JSON pointer (`path`).
pub(crate) fn at_path(code: Code, path: &str, message: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!("{}: {message}", if path.is_empty() { "/" } else { path }),
    )
    .with("path", json!(path))
}

/// The body parsed as `T`, or 422 under `code` naming the faulty field by JSON pointer (400
/// `invalid_json` when it is not JSON at all).
pub(crate) fn parsed<T: serde::de::DeserializeOwned>(
    body: &[u8],
    code: Code,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(json_of(body)?).map_err(|e| {
        let p = e.path().to_string();
        let path = if p == "." {
            String::new()
        } else {
            format!("/{}", p.replace('.', "/"))
        };
        at_path(code, &path, &e.inner().to_string())
    })
}

fn spec_of(body: &[u8]) -> Result<OfferSpec, Problem> {
    let (spec, _) = catalogue::parse(json_of(body)?)
        .map_err(|e| at_path(Code::InvalidOffer, &e.path, &e.message))?;
    Ok(spec)
}

fn store_problem(e: OfferStoreError) -> Problem {
    match e {
        OfferStoreError::NotFound => not_found(),
        OfferStoreError::NameTaken => Problem::new(
            StatusCode::CONFLICT,
            Code::OfferNameTaken,
            "another offer of this tenant has this name; pick another or archive that one",
        ),
        OfferStoreError::Db(e) => e.into(),
    }
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::OfferNotFound,
        "no offer with this id for this tenant",
    )
}

async fn list(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<OfferList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let items = offers::list(&mut conn, &tenant).await?;
    Ok(Json(OfferList { items }))
}

async fn create(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = spec_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let row = offers::create(&mut conn, &tenant, Uuid::now_v7(), &spec, &actor(&headers))
        .await
        .map_err(store_problem)?;
    s.catalogue.invalidate(&tenant);
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn read(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = offers::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row).into_response())
}

async fn replace(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = spec_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let row = offers::update(&mut conn, &tenant, id, &spec, &actor(&headers))
        .await
        .map_err(store_problem)?;
    s.catalogue.invalidate(&tenant);
    Ok(Json(row).into_response())
}

async fn archive(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    offers::archive(&mut conn, &tenant, id, &actor(&headers))
        .await
        .map_err(store_problem)?;
    s.catalogue.invalidate(&tenant);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn read_settings(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<DecisionSettings>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(offers::settings(&mut conn, &tenant).await?))
}

async fn save_settings(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<DecisionSettings>, Problem> {
    let settings: DecisionSettings = parsed(&body, Code::InvalidDecisionSettings)?;
    settings
        .check()
        .map_err(|(path, m)| at_path(Code::InvalidDecisionSettings, path, m))?;
    let mut conn = s.pool.acquire().await?;
    offers::save_settings(&mut conn, &tenant, &settings, &actor(&headers)).await?;
    s.catalogue.invalidate(&tenant);
    Ok(Json(settings))
}
