//! Consent (read, record), export and erasure of a customer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::{Envelope, Topic};
use crm_kafka::outbox;
use crm_service::Code;
use crm_service::Problem;
use serde_json::json;

use super::bodies::{ConsentBody, ConsentList, Erased};
use super::{customer_not_found, ApiState, CustomerPath};
use crate::privacy::{self, ConsentChange};
use crate::store::profile;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/consent",
            get(read_consent).post(record_consent),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/export",
            get(export),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/erase",
            post(erase),
        )
}

async fn read_consent(
    State(ApiState { pool, .. }): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<ConsentList>, Problem> {
    let mut conn = pool.acquire().await?;
    let customer = profile::canonical_id(&mut conn, &tenant, id)
        .await?
        .ok_or_else(customer_not_found)?;
    let items = privacy::current_consent(&mut conn, &tenant, customer).await?;
    Ok(Json(ConsentList {
        customer_id: customer,
        items,
    }))
}

async fn record_consent(
    State(state): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
    body: Result<Json<ConsentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ConsentList>, Problem> {
    let Json(body) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidConsent,
            format!(
                "expected {{purpose, channel, granted, at?, source?}}: {}",
                e.body_text()
            ),
        )
    })?;
    let change = ConsentChange {
        purpose: body.purpose,
        channel: body.channel,
        granted: body.granted,
    };
    change
        .validate()
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidConsent, &e))?;
    let mut tx = state.pool.begin().await?;
    let customer = profile::canonical_id(&mut tx, &tenant, id)
        .await?
        .ok_or_else(customer_not_found)?;
    let source = body.source.unwrap_or_else(|| "api".to_owned());
    let at = body.at.unwrap_or_else(Utc::now);
    privacy::record_consent(
        &mut tx,
        &tenant,
        customer,
        std::slice::from_ref(&change),
        &source,
        at,
    )
    .await?;
    let mut event = Envelope::domain(tenant.clone(), "consent.changed", customer, "identity");
    event.properties = json!({
        "purpose": change.purpose, "channel": change.channel, "granted": change.granted,
        "source": source, "at": at,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    outbox::enqueue(&mut tx, Topic::Profiles, &event).await?;
    let items = privacy::current_consent(&mut tx, &tenant, customer).await?;
    tx.commit().await?;
    state.relay.notify_one();
    Ok(Json(ConsentList {
        customer_id: customer,
        items,
    }))
}

async fn export(
    State(ApiState { pool, .. }): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<crate::privacy::ExportDocument>, Problem> {
    let mut conn = pool.acquire().await?;
    privacy::export(&mut conn, &tenant, id)
        .await?
        .map(Json)
        .ok_or_else(customer_not_found)
}

async fn erase(
    State(state): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<Erased>, Problem> {
    let mut tx = state.pool.begin().await?;
    let erased = privacy::erase(&mut tx, &tenant, id)
        .await?
        .ok_or_else(customer_not_found)?;
    tx.commit().await?;
    state.relay.notify_one();
    for id in &erased {
        state.hot.evict(&tenant, *id).await;
    }
    Ok(Json(Erased {
        status: "erased".to_owned(),
        erased_ids: erased,
    }))
}
