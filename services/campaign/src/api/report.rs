//! A journey's report (entered, at each node, messages by status, skipped by reason, exited by
//! reason, goal conversion per arm and against the control group with the uplift and its 95%
//! interval) and a customer's journeys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd};
use uuid::Uuid;

use super::bodies::{ArmReport, CustomerJourneys, GoalReport, JourneyReport};
use super::ApiState;
use crate::domain::report::{uplift, Group, MIN_GROUP};
use crate::store::{journeys, report};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/journeys/{id}/report",
            get(journey_report),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/journeys",
            get(customer_journeys),
        )
}

async fn journey_report(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<JourneyReport>, Problem> {
    let mut conn = s.pool.acquire().await?;
    if journeys::status(&mut conn, &tenant, id).await?.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::JourneyNotFound,
            "no journey with this id",
        ));
    }
    let c = report::counts(&mut conn, &tenant, id).await?;
    let sum = |held: bool| {
        c.entered.iter().filter(|(_, h, _, _)| *h == held).fold(
            (0u64, 0u64),
            |(n, k), (_, _, a, b)| {
                (
                    n + u64::try_from(*a).unwrap_or(0),
                    k + u64::try_from(*b).unwrap_or(0),
                )
            },
        )
    };
    let (treated, holdout) = (sum(false), sum(true));
    let arms: Vec<ArmReport> = c
        .entered
        .iter()
        .filter(|(_, held, _, _)| !held)
        .map(|(arm, _, n, k)| {
            let g = Group::new(
                u64::try_from(*n).unwrap_or(0),
                u64::try_from(*k).unwrap_or(0),
            );
            ArmReport {
                arm: arm.clone(),
                entered: g.customers,
                converted: g.converted,
                rate: g.rate,
            }
        })
        .collect();
    let effect = uplift(
        Group::new(treated.0, treated.1),
        Group::new(holdout.0, holdout.1),
    );
    Ok(Json(JourneyReport {
        journey_id: id,
        entered: treated.0 + holdout.0,
        held_out: holdout.0,
        converted: treated.1 + holdout.1,
        arms,
        at_node: c.at_node,
        exited: c.exited,
        messages: c.messages,
        skipped: c.skipped,
        goal: GoalReport {
            treated: effect.treated,
            holdout: effect.holdout,
            uplift: effect.absolute,
            relative_uplift: effect.relative,
            ci95: effect.ci95.map(|(lo, hi)| [lo, hi]),
            min_group_for_interval: MIN_GROUP,
        },
    }))
}

async fn customer_journeys(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<CustomerJourneys>, Problem> {
    let mut conn = s.pool.acquire().await?;
    if crate::store::contacts::find(&mut conn, &tenant, id)
        .await?
        .is_none()
    {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::ContactNotFound,
            "campaign knows no customer with this id",
        ));
    }
    let items = report::of_customer(&mut conn, &tenant, id).await?;
    Ok(Json(CustomerJourneys { items }))
}
