//! Identity's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and passes the tenant in the path).

mod accounts;
pub mod bodies;
mod customers;
mod imports;
mod merges;
mod privacy;
mod quality;
mod reviews;
mod search;
mod timeline;

use crm_service::Code;
use crm_service::TenantAnd;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use crm_envelope::TenantId;
use crm_service::Problem;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::hot::HotProfiles;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) pool: PgPool,
    pub(crate) hot: HotProfiles,
    /// Wakes the outbox relay after a commit that enqueued events.
    pub(crate) relay: Arc<Notify>,
}

pub(crate) fn routes(state: ApiState) -> Router {
    customers::routes()
        .merge(reviews::routes())
        .merge(merges::routes())
        .merge(privacy::routes())
        .merge(quality::routes())
        .merge(timeline::routes())
        .merge(search::routes())
        .merge(imports::routes())
        .merge(accounts::routes())
        .with_state(state)
}

/// The 404 of a customer id the tenant does not have.
pub(crate) fn customer_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::CustomerNotFound,
        "no customer with this id for this tenant",
    )
}

/// The tenant and customer id of a `/tenants/{tenant}/customers/{id}/...` path; an id that is
/// not a UUID names no customer (404 `customer_not_found`).
pub(crate) struct CustomerPath(pub TenantId, pub Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CustomerPath {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        let TenantAnd(tenant, raw_id) =
            TenantAnd::<String>::from_request_parts(parts, state).await?;
        let id = Uuid::parse_str(&raw_id).map_err(|_| customer_not_found())?;
        Ok(Self(tenant, id))
    }
}
