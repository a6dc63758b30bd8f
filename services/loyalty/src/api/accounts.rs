//! A customer's account: balance and tier, statement, manual adjustments; the programme's
//! liability report; the member record.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_kafka::outbox::enqueue_all;
use crm_service::Code;
use crm_service::Problem;
use crm_service::{TenantAnd, TenantPath};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::bodies::{
    AccountView, Adjusted, Adjustment, Expiring, Liability, Statement, StatementEntry, TierView,
};
use super::keyed::Keyed;
use super::{idempotency_key, json_body, op_problem, programme_of, ApiState};
use crate::domain::ledger::Points;
use crate::store::{rewards, tiers};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/members/{id}", get(member))
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/customers/{id}",
            get(account),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/customers/{id}/statement",
            get(statement),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/customers/{id}/adjustments",
            post(adjust),
        )
        .route(
            "/internal/v1/tenants/{tenant}/loyalty/liability",
            get(liability),
        )
}

async fn member(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Value>, Problem> {
    let row: Option<(DateTime<Utc>, i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT enrolled_at, orders_seen, last_activity_at FROM members WHERE tenant_id = $1 AND customer_id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    let (enrolled_at, orders_seen, last_activity_at) = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::CustomerNotFound,
            "no member with this id",
        )
    })?;
    Ok(Json(
        json!({"customer_id": id, "enrolled_at": enrolled_at, "orders_seen": orders_seen, "last_activity_at": last_activity_at}),
    ))
}

async fn account(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<AccountView>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let p = programme_of(&mut conn, &tenant).await?;
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, balance FROM accounts WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let of = |k: &str| {
        balances
            .iter()
            .find(|(kind, _)| kind == k)
            .map_or(0, |(_, b)| *b)
    };
    let now = Utc::now();
    let qualifying = tiers::qualifying(&mut conn, &tenant, &p, &[id], now)
        .await?
        .get(&id)
        .copied()
        .unwrap_or(0);
    let tier: Option<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT tier, since, period_end FROM tier_status WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let expiring: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT expires_at, sum(remaining)::int8 FROM lots WHERE tenant_id = $1 AND customer_id = $2 AND remaining > 0 AND expires_at IS NOT NULL
         GROUP BY 1 ORDER BY 1 LIMIT 10",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(AccountView {
        customer_id: id,
        balance: of("customer"),
        reserved: of("reserved"),
        tier: tier.map(|(name, since, period_end)| TierView {
            name,
            since,
            period_end,
        }),
        qualifying_points: qualifying,
        tier_window_days: p.tier_window_days,
        expiring: expiring
            .into_iter()
            .map(|(expires_at, points)| Expiring { expires_at, points })
            .collect(),
        currency: p.currency,
    }))
}

/// An entry as read: entry id, account, points, transaction id, kind, reason, source event, time.
type StatementRow = (
    i64,
    String,
    i64,
    i64,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);

#[derive(Deserialize)]
struct StatementQuery {
    limit: Option<u32>,
    /// `next` of the previous page: entries older than this id.
    before: Option<i64>,
}

/// The customer's entries (available and reserved accounts), newest first, with the reason and
/// source event of their transaction.
async fn statement(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    Query(q): Query<StatementQuery>,
) -> Result<Json<Statement>, Problem> {
    let limit = match q.limit {
        None => 50,
        Some(l @ 1..=500) => i64::from(l),
        Some(_) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidLimit,
                "limit must be 1 to 500",
            ))
        }
    };
    let rows: Vec<StatementRow> = sqlx::query_as(
        "SELECT e.id, e.kind, e.amount, t.id, t.kind, t.reason, t.source_event, e.created_at
         FROM entries e JOIN ledger_transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
         WHERE e.tenant_id = $1 AND e.customer_id = $2 AND e.kind IN ('customer', 'reserved') AND e.id < $3
         ORDER BY e.id DESC LIMIT $4",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    let items = rows
        .into_iter()
        .map(
            |(entry_id, account, points, transaction_id, kind, reason, source_event, at)| {
                StatementEntry {
                    entry_id,
                    account,
                    points,
                    transaction_id,
                    kind,
                    reason,
                    source_event,
                    at,
                }
            },
        )
        .collect();
    Ok(Json(Statement {
        customer_id: id,
        items,
        next,
    }))
}

async fn adjust(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let a: Adjustment = json_body(&body)?;
    let mut tx = state.pool.begin().await?;
    let op = format!("adjustment {id}");
    let keyed = match Keyed::start(&mut tx, &tenant, &headers, &op, &body).await? {
        Ok(k) => k,
        Err(replayed) => return Ok(replayed),
    };
    let p = programme_of(&mut tx, &tenant).await?;
    let points = Points::adjustment(a.points)
        .map_err(rewards::OpError::Invalid)
        .map_err(op_problem)?;
    let (transaction_id, messages) = rewards::adjust(
        &mut tx,
        &tenant,
        &p,
        id,
        points,
        &a.reason,
        &key,
        Utc::now(),
    )
    .await
    .map_err(op_problem)?;
    enqueue_all(&mut tx, &messages).await?;
    let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM accounts WHERE tenant_id = $1 AND kind = 'customer' AND customer_id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let body = Adjusted {
        transaction_id,
        customer_id: id,
        points: a.points,
        balance,
    };
    let answer = keyed
        .answer(&mut tx, &tenant, StatusCode::CREATED, &body)
        .await?;
    tx.commit().await?;
    state.relay.notify_one();
    Ok(answer)
}

/// What the programme owes: points held by customers (available and reserved), with issued,
/// redeemed and expired totals; they always reconcile.
async fn liability(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<Liability>, Problem> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT kind, coalesce(sum(balance), 0)::int8, count(*) FILTER (WHERE balance <> 0) FROM accounts WHERE tenant_id = $1 GROUP BY kind",
    )
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    let of = |k: &str| {
        rows.iter()
            .find(|r| r.0 == k)
            .map_or((0, 0), |r| (r.1, r.2))
    };
    let (available, holders) = of("customer");
    let (reserved, _) = of("reserved");
    let (issued, _) = of("issued");
    let (redeemed, _) = of("redeemed");
    let (expired, _) = of("expired");
    Ok(Json(Liability {
        outstanding: available + reserved,
        available,
        reserved,
        customers_with_points: holders,
        issued: -issued,
        redeemed,
        expired,
        reconciles: available + reserved == -(issued + redeemed + expired),
    }))
}
