//! The reward catalogue and redemptions (reserve, confirm, cancel).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use crm_kafka::outbox::enqueue_all;
use crm_service::Code;
use crm_service::Problem;
use crm_service::{TenantAnd, TenantPath};
use uuid::Uuid;

use super::bodies::{ReserveBody, Reward, RewardBody, RewardList};
use super::keyed::Keyed;
use super::{idempotency_key, json_body, op_problem, programme_of, ApiState};
use crate::store::rewards::{self, Redemption};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/rewards",
            get(list).post(create),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/rewards/{id}",
            put(update),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/redemptions",
            post(reserve),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/redemptions/{id}",
            get(read),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/redemptions/{id}/confirm",
            post(confirm),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/redemptions/{id}/cancel",
            post(cancel),
        )
}

fn check(r: &RewardBody) -> Result<(), Problem> {
    let bad = |m: &str| {
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidReward,
            m.to_owned(),
        ))
    };
    if r.name.trim().is_empty() || r.name.len() > 200 {
        return bad("name must be 1 to 200 characters");
    }
    if r.cost <= 0 {
        return bad("cost must be a positive number of points");
    }
    if r.stock.is_some_and(|s| s < 0) {
        return bad("stock must not be negative (absent: unlimited)");
    }
    if let (Some(f), Some(t)) = (r.valid_from, r.valid_to) {
        if f >= t {
            return bad("valid_from must be before valid_to");
        }
    }
    Ok(())
}

const REWARD: &str = "id, name, cost, stock, valid_from, valid_to, active";

async fn create(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let r: RewardBody = json_body(&body)?;
    check(&r)?;
    let mut tx = state.pool.begin().await?;
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, "reward.create", &body).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let row: Reward = sqlx::query_as(&format!(
        "INSERT INTO rewards (tenant_id, id, name, cost, stock, valid_from, valid_to, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {REWARD}"
    ))
    .bind(tenant.as_str())
    .bind(Uuid::now_v7())
    .bind(r.name.trim())
    .bind(r.cost)
    .bind(r.stock)
    .bind(r.valid_from)
    .bind(r.valid_to)
    .bind(r.active)
    .fetch_one(&mut *tx)
    .await?;
    let answer = keyed
        .answer(&mut tx, &tenant, StatusCode::CREATED, &row)
        .await?;
    tx.commit().await?;
    Ok(answer)
}

async fn update(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let r: RewardBody = json_body(&body)?;
    check(&r)?;
    let mut tx = state.pool.begin().await?;
    let op = format!("reward.update {id}");
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, &op, &body).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let row: Option<Reward> = sqlx::query_as(&format!(
        "UPDATE rewards SET name = $3, cost = $4, stock = $5, valid_from = $6, valid_to = $7, active = $8 WHERE tenant_id = $1 AND id = $2 RETURNING {REWARD}"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .bind(r.name.trim())
    .bind(r.cost)
    .bind(r.stock)
    .bind(r.valid_from)
    .bind(r.valid_to)
    .bind(r.active)
    .fetch_optional(&mut *tx)
    .await?;
    let row =
        row.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, Code::NotFound, "no such reward"))?;
    let answer = keyed.answer(&mut tx, &tenant, StatusCode::OK, &row).await?;
    tx.commit().await?;
    Ok(answer)
}

async fn list(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<RewardList>, Problem> {
    let items: Vec<Reward> = sqlx::query_as(&format!(
        "SELECT {REWARD} FROM rewards WHERE tenant_id = $1 ORDER BY cost, name"
    ))
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(RewardList { items }))
}

async fn reserve(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let b: ReserveBody = json_body(&body)?;
    let mut tx = state.pool.begin().await?;
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, "redemption.reserve", &body).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let p = programme_of(&mut tx, &tenant).await?;
    let r = rewards::reserve(
        &mut tx,
        &tenant,
        &p,
        b.customer_id,
        b.reward_id,
        &key,
        Utc::now(),
    )
    .await
    .map_err(op_problem)?;
    let answer = keyed
        .answer(&mut tx, &tenant, StatusCode::CREATED, &r)
        .await?;
    tx.commit().await?;
    Ok(answer)
}

async fn read(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Redemption>, Problem> {
    sqlx::query_as("SELECT id, customer_id, reward_id, points, status, reserved_at, expires_at, settled_at, coupon_code FROM redemptions WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, Code::NotFound, "no such redemption"))
}

async fn confirm(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let mut tx = state.pool.begin().await?;
    let op = format!("redemption.confirm {id}");
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, &op, &[]).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let p = programme_of(&mut tx, &tenant).await?;
    let (r, messages) = rewards::confirm(&mut tx, &tenant, &p, id, Utc::now())
        .await
        .map_err(op_problem)?;
    enqueue_all(&mut tx, &messages).await?;
    let answer = keyed.answer(&mut tx, &tenant, StatusCode::OK, &r).await?;
    tx.commit().await?;
    state.relay.notify_one();
    Ok(answer)
}

async fn cancel(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let mut tx = state.pool.begin().await?;
    let op = format!("redemption.cancel {id}");
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, &op, &[]).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let p = programme_of(&mut tx, &tenant).await?;
    let r = rewards::cancel(&mut tx, &tenant, &p, id, "cancelled", Utc::now())
        .await
        .map_err(op_problem)?;
    let answer = keyed.answer(&mut tx, &tenant, StatusCode::OK, &r).await?;
    tx.commit().await?;
    Ok(answer)
}
