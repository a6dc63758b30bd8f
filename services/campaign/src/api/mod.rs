//! Campaign's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and names them in `x-crm-actor`): contacts, journeys and the suppression list.

mod contacts;
mod journeys;
mod suppressions;

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

pub(crate) use crm_service::actor;
