//! The review queue: pairs of customers that may be one person but were not merged
//! automatically. Accepting merges them (kind `manual`, the reviewer's decision overriding the
//! guards); rejecting closes the review and keeps them apart.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::Code;
use crm_service::TenantPath;
use crm_service::{tenant_from_path, Problem};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::bodies::{Review, ReviewDecision, ReviewPage};
use super::ApiState;
use crate::merge;
use crate::store::settings;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/tenants/{tenant}/reviews", get(list))
        .route(
            "/internal/v1/tenants/{tenant}/reviews/{id}/{decision}",
            post(decide),
        )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `pending` (default), `accepted` or `rejected`.
    status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// The last id of the previous page.
    after: Option<Uuid>,
}

fn bad_request(code: Code, detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}

async fn list(
    State(ApiState { pool, .. }): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<ListQuery>,
) -> Result<Json<ReviewPage>, Problem> {
    let status = q.status.as_deref().unwrap_or("pending");
    if !["pending", "accepted", "rejected"].contains(&status) {
        return Err(bad_request(
            Code::InvalidStatus,
            "status is one of pending, accepted, rejected",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad_request(
            Code::InvalidLimit,
            "limit is between 1 and 200",
        ));
    }
    let items: Vec<Review> = sqlx::query_as(
        "SELECT id, customer_a, customer_b, reason, probability, evidence, status, created_at, decided_at
         FROM match_reviews
         WHERE tenant_id = $1 AND status = $2 AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
    )
    .bind(tenant.as_str())
    .bind(status)
    .bind(q.after)
    .bind(limit)
    .fetch_all(&pool)
    .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(ReviewPage {
        items,
        next_after: next,
    }))
}

async fn decide(
    State(state): State<ApiState>,
    Path((raw_tenant, raw_id, decision)): Path<(String, String, String)>,
) -> Result<Json<ReviewDecision>, Problem> {
    let tenant = tenant_from_path(&raw_tenant)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::ReviewNotFound,
            "no pending review with this id for this tenant",
        )
    };
    let id = Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
    let accept = match decision.as_str() {
        "accept" => true,
        "reject" => false,
        _ => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                Code::UnknownDecision,
                "decide a review with /accept or /reject",
            ))
        }
    };
    let mut tx = state.pool.begin().await?;
    let pair: Option<(Uuid, Uuid, sqlx::types::Json<Value>)> = sqlx::query_as(
        "SELECT customer_a, customer_b, evidence FROM match_reviews
         WHERE tenant_id = $1 AND id = $2 AND status = 'pending' FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (a, b, evidence) = pair.ok_or_else(not_found)?;
    sqlx::query(
        "UPDATE match_reviews SET status = $3, decided_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(if accept { "accepted" } else { "rejected" })
    .execute(&mut *tx)
    .await?;
    if !accept {
        tx.commit().await?;
        return Ok(Json(ReviewDecision {
            id,
            status: "rejected".to_owned(),
            merge_id: None,
            survivor_id: None,
            merged_id: None,
        }));
    }
    let settings = settings::load(&mut tx, &tenant).await?;
    let evidence = json!({
        "review_id": id,
        "rule": "accepted in review",
        "review_evidence": evidence.0,
    });
    // `None` when one of the two was merged or erased meanwhile.
    let merged =
        merge::merge_announced(&mut tx, &tenant, &settings, (a, b), "manual", evidence).await?;
    tx.commit().await?;
    state.relay.notify_one();
    if let Some((m, survivor)) = &merged {
        state.hot.evict(&tenant, m.merged).await;
        state.hot.refresh(&tenant, survivor).await;
    }
    let merged = merged.map(|(m, _)| m);
    Ok(Json(ReviewDecision {
        id,
        status: "accepted".to_owned(),
        merge_id: merged.as_ref().map(|m| m.merge_id),
        survivor_id: merged.as_ref().map(|m| m.survivor),
        merged_id: merged.as_ref().map(|m| m.merged),
    }))
}
