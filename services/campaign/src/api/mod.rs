//! Campaign's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and names them in `x-crm-actor`): contacts, journeys and the suppression list.

mod contacts;
mod journeys;
mod suppressions;

use axum::http::HeaderMap;
use axum::Router;
use sqlx::PgPool;

/// Every internal route.
pub(crate) fn routes(pool: PgPool) -> Router {
    Router::new()
        .merge(contacts::routes())
        .merge(journeys::routes())
        .merge(suppressions::routes())
        .with_state(pool)
}

/// Who is calling, as the gateway names them (`key:<name>`); `internal` otherwise.
pub(crate) fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-crm-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .unwrap_or("internal")
        .to_owned()
}
