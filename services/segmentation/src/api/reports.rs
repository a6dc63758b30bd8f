//! Reports: RFM and lifecycle distributions, the acquisition / retention / win-back report,
//! and scoring runs (on demand and their history).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use crm_service::Code;
use crm_service::{jobs, Problem};
use crm_service::{TenantAnd, TenantPath};
use serde::Deserialize;
use serde_json::{json, Value};

use super::bodies::{
    LastRun, LifecyclePeriod, LifecycleReport, RfmCell, RfmGroupCount, RfmReport, ScoringRunView,
    ScoringRuns, Transition, ValueModelView,
};
use super::ApiState;
use crate::domain::lifecycle::Stage;
use crate::scoring;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/reports/rfm", get(rfm))
        .route(
            "/internal/v1/tenants/{tenant}/reports/lifecycle",
            get(lifecycle),
        )
        .route(
            "/internal/v1/tenants/{tenant}/scoring/runs",
            get(runs).post(run_now),
        )
        .route("/internal/v1/tenants/{tenant}/jobs/{id}", get(job))
}

/// Customers per RFM group and per (R, F) cell, from the last scoring run.
async fn rfm(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<RfmReport>, Problem> {
    let groups: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT rfm_group, count(*), coalesce(sum(revenue_total), 0)::float8 FROM customer_activity
         WHERE tenant_id = $1 AND rfm_group IS NOT NULL GROUP BY rfm_group ORDER BY 2 DESC",
    )
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    let cells: Vec<(i16, i16, i64)> = sqlx::query_as(
        "SELECT rfm_r, rfm_f, count(*) FROM customer_activity
         WHERE tenant_id = $1 AND rfm_r IS NOT NULL GROUP BY 1, 2 ORDER BY 1 DESC, 2 DESC",
    )
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    let last_run: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, finished_at FROM scoring_runs WHERE tenant_id = $1 AND finished_at IS NOT NULL AND error IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant.as_str())
    .fetch_optional(&state.pool)
    .await?;
    Ok(Json(RfmReport {
        groups: groups
            .into_iter()
            .map(|(group, customers, revenue)| RfmGroupCount {
                group,
                customers,
                revenue,
            })
            .collect(),
        cells: cells
            .into_iter()
            .map(|(r, f, customers)| RfmCell { r, f, customers })
            .collect(),
        last_run: last_run.map(|(run_id, at)| LastRun {
            run_id,
            finished_at: at,
        }),
    }))
}

/// A scoring run as read: id, trigger, started, finished, customers, changed, error.
type RunRow = (
    i64,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

#[derive(Deserialize)]
struct LifecycleQuery {
    /// `day`, `week` (default) or `month`.
    period: Option<String>,
    /// Start, RFC 3339 (default: 12 periods before `to`).
    from: Option<String>,
    /// End, RFC 3339 (default: now).
    to: Option<String>,
}

/// An RFC 3339 time from the query, or 400 `invalid_range` naming the parameter.
fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        Code::InvalidRange,
                        format!("{name} must be an RFC 3339 time, such as 2026-11-01T00:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// Customers per stage now, and transitions per period: acquisition (into `new`), retention
/// (into `at_risk` and `lapsed`), win-back (into `reactivated`).
async fn lifecycle(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<LifecycleQuery>,
) -> Result<Json<LifecycleReport>, Problem> {
    let (period, step) = match q.period.as_deref().unwrap_or("week") {
        "day" => ("day", Duration::days(1)),
        "week" => ("week", Duration::weeks(1)),
        "month" => ("month", Duration::days(31)),
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidPeriod,
                "period must be day, week or month",
            ))
        }
    };
    let to = instant("to", q.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = instant("from", q.from.as_deref())?.unwrap_or(to - step * 12);
    if from >= to || to - from > Duration::days(3660) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRange,
            "from must be before to, at most ten years apart",
        ));
    }
    let stages: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT stage, count(*) FROM customer_activity WHERE tenant_id = $1 GROUP BY stage",
    )
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    let counts: BTreeMap<String, i64> = Stage::ALL
        .iter()
        .map(|s| {
            let n = stages
                .iter()
                .filter(|(x, _)| x.as_deref() == Some(s.as_str()))
                .map(|(_, n)| *n)
                .sum::<i64>();
            (s.as_str().to_owned(), n)
        })
        .collect();
    let transitions: Vec<(DateTime<Utc>, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT date_trunc($4, at), from_stage, to_stage, count(*) FROM stage_transitions
         WHERE tenant_id = $1 AND at >= $2 AND at < $3 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(tenant.as_str())
    .bind(from)
    .bind(to)
    .bind(period)
    .fetch_all(&state.pool)
    .await?;
    let mut periods: Vec<LifecyclePeriod> = Vec::new();
    for (start, from_stage, to_stage, n) in transitions {
        if periods.last().is_none_or(|p| p.period_start != start) {
            periods.push(LifecyclePeriod {
                period_start: start,
                into: BTreeMap::new(),
                transitions: Vec::new(),
            });
        }
        if let Some(p) = periods.last_mut() {
            *p.into.entry(to_stage.clone()).or_insert(0) += n;
            p.transitions.push(Transition {
                from: from_stage,
                to: to_stage,
                customers: n,
            });
        }
    }
    let reading = [
        ("acquisition", "into new"),
        ("retention", "into at_risk and lapsed"),
        ("win_back", "into reactivated"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Ok(Json(LifecycleReport {
        stages: counts,
        period: period.to_owned(),
        from,
        to,
        periods,
        reading,
    }))
}

/// Queues a run of RFM and customer value for the tenant: 202 with the job to follow
/// (`GET /v1/jobs/{job_id}` through the gateway). The run itself is a job ([`scoring::JOB`]),
/// taken by one replica's worker.
async fn run_now(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 1],
        Json<jobs::JobQueued>,
    ),
    Problem,
> {
    let id = jobs::enqueue(&state.pool, &tenant, scoring::JOB, &json!({})).await?;
    let queued = jobs::JobQueued::new("segmentation", id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, queued.url.clone())],
        Json(queued),
    ))
}

/// A job of the tenant's: status, progress, result or error.
async fn job(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        jobs::answer(&state.pool, &tenant, "segmentation", &id).await?,
    ))
}

async fn runs(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<ScoringRuns>, Problem> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT id, trigger, started_at, finished_at, customers, changed, error FROM scoring_runs
         WHERE tenant_id = $1 ORDER BY id DESC LIMIT 50",
    )
    .bind(tenant.as_str())
    .fetch_all(&state.pool)
    .await?;
    let model: Option<(sqlx::types::Json<Value>, DateTime<Utc>)> =
        sqlx::query_as("SELECT model, fitted_at FROM value_models WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&state.pool)
            .await?;
    let runs = rows
        .into_iter()
        .map(
            |(run_id, trigger, started_at, finished_at, customers, changed, error)| {
                ScoringRunView {
                    run_id,
                    trigger,
                    started_at,
                    finished_at,
                    customers,
                    rfm_group_changes: changed,
                    error,
                }
            },
        )
        .collect();
    Ok(Json(ScoringRuns {
        runs,
        value_model: model.map(|(m, fitted_at)| ValueModelView {
            model: m.0,
            fitted_at,
        }),
    }))
}
