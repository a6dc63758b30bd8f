//! Identity's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and passes the tenant in the path).

mod customers;
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
        .with_state(state)
}
