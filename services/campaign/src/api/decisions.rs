//! Decisions: ask for the best offers for a customer at a placement, read a decision, report
//! its offers' outcomes, and list a customer's decisions with their outcomes.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crm_kafka::outbox;
use crm_service::{Code, Problem, TenantAnd};
use serde::Deserialize;
use uuid::Uuid;

use super::bodies::{CustomerDecisions, OutcomeRecorded};
use super::offers::{at_path, parsed};
use crate::offers::decide::{decide, DecideError, DecisionRequest};
use crate::offers::outcomes::{record, OutcomeReport, ReportError};
use crate::store::decisions;
use crate::store::offers::{self, CustomerRef};

pub(crate) fn routes() -> Router<super::ApiState> {
    let base = "/internal/v1/tenants/{tenant}/decisions";
    Router::new()
        .route(base, post(make))
        .route(&format!("{base}/{{id}}"), get(read))
        .route(&format!("{base}/{{id}}/outcomes"), post(outcome))
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/decisions",
            get(for_customer),
        )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::DecisionNotFound,
        "no decision with this id for this tenant",
    )
}

async fn make(
    State(s): State<super::ApiState>,
    crm_service::TenantPath(tenant): crm_service::TenantPath,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: DecisionRequest = parsed(&body, Code::InvalidDecision)?;
    let decided = decide(&s.pool, &s.catalogue, &tenant, request, Utc::now())
        .await
        .map_err(|e| match e {
            DecideError::Invalid(path, m) => at_path(Code::InvalidDecision, path, &m),
            DecideError::UnknownCustomer => Problem::new(
                StatusCode::NOT_FOUND,
                Code::CustomerNotFound,
                "campaign knows no customer of this tenant by that id or identifier (profiles \
                 reach it from crm.profiles.v1 within moments of their first event)",
            ),
            DecideError::Moved => Problem::new(
                StatusCode::CONFLICT,
                Code::InvalidState,
                "the customer was merged or erased while deciding; ask again",
            ),
            DecideError::Db(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(decided)).into_response())
}

async fn read(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let (d, _) = decisions::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(d).into_response())
}

async fn outcome(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let report: OutcomeReport = parsed(&body, Code::InvalidOutcome)?;
    let mut tx = s.pool.begin().await?;
    let done = record(&mut tx, &tenant, id, &report, "api", Utc::now())
        .await
        .map_err(|e| match e {
            ReportError::UnknownDecision => not_found(),
            ReportError::NotOffered => at_path(
                Code::InvalidOutcome,
                "/offer_id",
                "this offer is not among the decision's offers",
            ),
            ReportError::Future => {
                at_path(Code::InvalidOutcome, "/at", "must not be in the future")
            }
            ReportError::Db(e) => e.into(),
        })?;
    outbox::enqueue_all(&mut tx, &done.out).await?;
    tx.commit().await?;
    if !done.out.is_empty() {
        s.delivery.relay.notify_one();
    }
    let status = if done.recorded {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(OutcomeRecorded {
            decision_id: id,
            offer_id: report.offer_id,
            kind: report.kind,
            recorded: done.recorded,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn for_customer(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    Query(q): Query<Limit>,
) -> Result<Json<CustomerDecisions>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit is 1 to 500",
        ));
    }
    let mut conn = s.pool.acquire().await?;
    let Some((customer, _)) = offers::profile(&mut conn, &tenant, &CustomerRef::Id(id)).await?
    else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::ContactNotFound,
            "campaign knows no customer with this id",
        ));
    };
    let (decisions, outcomes) =
        decisions::for_customer(&mut conn, &tenant, customer, limit).await?;
    Ok(Json(CustomerDecisions {
        customer_id: customer,
        decisions,
        outcomes,
    }))
}
