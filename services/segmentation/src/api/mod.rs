//! Segmentation's internal HTTP API, reached only through the gateway (which authenticates the
//! caller, passes the tenant in the path and names the caller in `x-crm-actor`).

pub mod bodies;
mod customers;
mod reports;
mod segments;
mod settings;

use crm_service::Code;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Router;
use crm_service::Problem;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::engine::Catalog;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) pool: PgPool,
    pub(crate) catalog: Arc<Catalog>,
    /// Wakes the outbox relay after a commit that enqueued messages.
    pub(crate) relay: Arc<Notify>,
}

pub(crate) fn routes(state: ApiState) -> Router {
    segments::routes()
        .merge(customers::routes())
        .merge(reports::routes())
        .merge(settings::routes())
        .with_state(state)
}

pub(crate) use crm_service::actor;

/// A JSON body, or 400 `invalid_body` saying what is wrong with it.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is not what this call takes: {e}"),
        )
    })
}

/// Page size from a query (1 to 1000, default 100).
pub(crate) fn page_size(limit: Option<u32>) -> Result<i64, Problem> {
    match limit {
        None => Ok(100),
        Some(l @ 1..=1000) => Ok(i64::from(l)),
        Some(_) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            "limit must be 1 to 1000",
        )),
    }
}
