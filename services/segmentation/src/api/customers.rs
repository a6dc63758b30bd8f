//! A customer's view: aggregates, segments, stage, RFM, lead score with its explanation,
//! value predictions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::Code;
use crm_service::Problem;
use crm_service::TenantAnd;
use uuid::Uuid;

use super::bodies::{
    Activity, CustomerScores, CustomerSegment, CustomerSegments, EventCounts, LeadView, ValueView,
};
use super::ApiState;
use crate::domain::lifecycle;
use crate::domain::rules::eval::{count_matching, Window};
use crate::store::activity::lookup;
use crate::store::facts::load_many;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/activity",
            get(activity),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/segments",
            get(segments),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/scores",
            get(scores),
        )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::CustomerNotFound,
        "segmentation has no activity or profile for this customer",
    )
}

/// Aggregates: totals, orders, revenue, average order value, categories, last purchase, and
/// counts per event name (all time, last 7 / 30 / 90 days).
async fn activity(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Activity>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let id = lookup(&mut conn, &tenant, id).await?.customer;
    let model = state.catalog.get(&mut conn, &tenant).await?;
    let mut model = (*model).clone();
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT name FROM daily_activity WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    model.event_names.extend(names.into_iter().map(|(n,)| n));
    let now = Utc::now();
    let f = load_many(&mut conn, &tenant, &[id], &model, now, false)
        .await?
        .pop()
        .ok_or_else(not_found)?;
    let events = f
        .totals
        .iter()
        .map(|(name, t)| {
            let window =
                |d: u32| count_matching(&f.events, name, &[], Window::of(Some(d), None, now), now);
            let counts = EventCounts {
                count: t.count,
                sum: t.sum,
                last_7_days: window(7),
                last_30_days: window(30),
                last_90_days: window(90),
            };
            (name.clone(), counts)
        })
        .collect();
    Ok(Json(Activity {
        customer_id: f.customer_id,
        events_total: f.events_total(),
        first_seen_at: f.first_seen_at,
        last_seen_at: f.last_seen_at,
        orders: f.orders(),
        revenue: f.revenue(),
        average_order_value: f.average_order_value(),
        last_order_at: f.last_order_at,
        last_order_value: f.last_order_value,
        categories: f.categories.iter().cloned().collect(),
        order_days: f.order_days.len(),
        events,
    }))
}

async fn segments(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<CustomerSegments>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let found = lookup(&mut conn, &tenant, id).await?;
    let id = found.customer;
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2)",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if found.erased || !known {
        return Err(not_found());
    }
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT m.segment_id, s.name, m.entered_at FROM memberships m
         JOIN segments s ON s.tenant_id = m.tenant_id AND s.id = m.segment_id
         WHERE m.tenant_id = $1 AND m.customer_id = $2 ORDER BY lower(s.name)",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let segments = rows
        .into_iter()
        .map(|(segment_id, name, entered_at)| CustomerSegment {
            segment_id,
            name,
            entered_at,
        })
        .collect();
    Ok(Json(CustomerSegments {
        customer_id: id,
        segments,
    }))
}

async fn scores(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<CustomerScores>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let id = lookup(&mut conn, &tenant, id).await?.customer;
    let model = state.catalog.get(&mut conn, &tenant).await?;
    let now = Utc::now();
    let f = load_many(&mut conn, &tenant, &[id], &model, now, false)
        .await?
        .pop()
        .ok_or_else(not_found)?;
    let (since,): (Option<DateTime<Utc>>,) = sqlx::query_as(
        "SELECT stage_since FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let settings = &model.settings;
    let lead = settings.lead_scoring.score(&f, now);
    Ok(Json(CustomerScores {
        customer_id: id,
        stage: lifecycle::stage(&f.order_days, now.date_naive(), &settings.lifecycle),
        stage_since: since,
        rfm: f.rfm,
        lead: LeadView::of(lead, settings.lead_scoring.qualified_at),
        value: f.value.map(|v| ValueView {
            probability_alive: v.probability_alive,
            expected_purchases: v.expected_purchases,
            lifetime_value: v.lifetime_value,
            horizon_weeks: settings.horizon_weeks,
        }),
        loyalty_tier: f.loyalty_tier,
    }))
}
