//! The sales reports: a pipeline by stage with win rates, cycle times and the forecast, and
//! lead conversion by source and campaign, over a period (default: the last 90 days).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde::Deserialize;
use uuid::Uuid;

use super::bodies::LeadConversion;
use crate::store::pipelines;
use crate::store::sales_report::{self, PipelineReport};

pub(crate) fn routes() -> Router<super::ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/pipelines/{{id}}/report"), get(pipeline))
        .route(&format!("{t}/lead-report"), get(leads))
}

#[derive(Debug, Deserialize)]
struct Period {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Period {
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
        let to = self.to.unwrap_or_else(Utc::now);
        let from = self.from.unwrap_or(to - Duration::days(90));
        if from >= to {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidPeriod,
                "`from` must come before `to`",
            ));
        }
        Ok((from, to))
    }
}

async fn pipeline(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    Query(period): Query<Period>,
) -> Result<Json<PipelineReport>, Problem> {
    let (from, to) = period.bounds()?;
    let mut conn = s.pool.acquire().await?;
    let row = pipelines::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                Code::PipelineNotFound,
                "no such pipeline for this tenant",
            )
        })?;
    let order: Vec<String> = row
        .definition
        .stages
        .iter()
        .map(|s| s.key.clone())
        .collect();
    Ok(Json(
        sales_report::pipeline(&mut conn, &tenant, id, &order, from, to).await?,
    ))
}

async fn leads(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    Query(period): Query<Period>,
) -> Result<Json<LeadConversion>, Problem> {
    let (from, to) = period.bounds()?;
    let mut conn = s.pool.acquire().await?;
    let rows = sales_report::conversion(&mut conn, &tenant, from, to).await?;
    Ok(Json(LeadConversion { from, to, rows }))
}
