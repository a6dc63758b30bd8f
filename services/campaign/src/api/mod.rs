//! Campaign's internal HTTP API, reached only through the gateway (which authenticates the
//! caller and names them in `x-crm-actor`): contacts, journeys, templates, channels, the
//! contact policy, the suppression list, a customer's messages, the tracking callbacks
//! the gateway's public routes forward, and Personalize: offers, decisions and outcomes.

pub mod bodies;
mod channels;
mod connectors;
mod contacts;
mod conversations;
mod decisions;
mod experiments;
mod journeys;
mod offers;
mod pipeline;
mod report;
mod sales_report;
mod suppressions;
mod surveys;
mod tasks;
mod templates;
mod tracking;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::channels::deliver::Delivery;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// The part's database.
    pub pool: PgPool,
    /// The delivery settings (template limits, tracking key).
    pub delivery: Delivery,
    /// Wakes the delivery loop (a test send).
    pub sends: Arc<Notify>,
    /// The offer catalogue in memory.
    pub catalogue: crate::offers::cache::Catalogue,
    /// Runs the journeys a won or lost opportunity starts.
    pub runner: crate::journeys::Runner,
    /// Wakes the conversation reply loop.
    pub replies: Arc<Notify>,
}

impl FromRef<ApiState> for PgPool {
    fn from_ref(s: &ApiState) -> PgPool {
        s.pool.clone()
    }
}

/// Every internal route.
pub(crate) fn routes(state: ApiState) -> Router {
    Router::new()
        .merge(contacts::routes())
        .merge(connectors::routes())
        .merge(conversations::routes())
        .merge(journeys::routes())
        .merge(suppressions::routes())
        .merge(templates::routes())
        .merge(channels::routes())
        .merge(tracking::routes())
        .merge(report::routes())
        .merge(offers::routes())
        .merge(decisions::routes())
        .merge(experiments::routes())
        .merge(pipeline::routes())
        .merge(tasks::routes())
        .merge(sales_report::routes())
        .merge(surveys::routes())
        .with_state(state)
}

pub(crate) use crm_service::actor;
