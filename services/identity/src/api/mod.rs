//! Identity's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and passes the tenant in the path).

mod customers;
mod imports;
mod merges;
mod privacy;
mod quality;
mod reviews;
mod search;
mod timeline;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use crm_envelope::TenantId;
use crm_service::{tenant_from_path, Problem};
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
        .with_state(state)
}

/// The 404 of a customer id the tenant does not have.
pub(crate) fn customer_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "customer_not_found",
        "no customer with this id for this tenant",
    )
}

/// The tenant and customer id of a `/tenants/{tenant}/customers/{id}/...` path; an id that is
/// not a UUID names no customer.
pub(crate) fn customer_path(raw_tenant: &str, raw_id: &str) -> Result<(TenantId, Uuid), Problem> {
    let tenant = tenant_from_path(raw_tenant)?;
    let id = Uuid::parse_str(raw_id).map_err(|_| customer_not_found())?;
    Ok((tenant, id))
}
