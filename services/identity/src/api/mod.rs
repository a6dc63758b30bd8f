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

use axum::Router;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::hot::HotProfiles;
use crate::resolve::Resolver;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) pool: PgPool,
    pub(crate) hot: HotProfiles,
    /// Wakes the outbox relay after a commit that enqueued events.
    pub(crate) relay: Arc<Notify>,
    /// Resolves imported rows like ingested events.
    pub(crate) resolver: Resolver,
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
