//! Loyalty: a points programme per tenant on a double-entry ledger that never double-counts.
//! Points are earned from `crm.events.v1` (orders, refunds, bonuses including positive social
//! mentions), spent on rewards (reserve, then confirm or cancel), expire in lots, and qualify
//! customers for tiers; every movement is published on `crm.loyalty.v1`. docs/loyalty.md
//! explains the design.

#![forbid(unsafe_code)]

mod api;
pub mod cli;
mod consumer;
pub mod domain;
pub mod earn;
pub mod schedule;
pub mod store;
pub mod verify;

use std::time::Duration;

use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use api::bodies;
pub use consumer::LoyaltyHandler;

/// The part's name: database `crm_loyalty`, group `crm-loyalty`, `CRM_LOYALTY__*`.
pub const PART: &str = "loyalty";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8084;
/// The part's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The part's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
    /// How often reservations are released, lots expired and tier periods ended
    /// (`CRM_LOYALTY__SCHEDULER_TICK_MS`, default 10000).
    pub scheduler_tick: Duration,
}

impl PartConfig for Config {
    /// Reads `CRM_LOYALTY__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
            scheduler_tick: env.millis_or("CRM_LOYALTY__SCHEDULER_TICK_MS", 10_000)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The part, connected and bound: `port()`, then `run(shutdown)`.
pub type Application = ConsumerApp<LoyaltyHandler>;

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let base = Base::connect(PART, config.common, &MIGRATOR).await?;
    let handler = LoyaltyHandler::new(base.pool.clone());
    let (pool, relay, tick) = (base.pool.clone(), base.relay.waker(), config.scheduler_tick);
    let api = api::routes(api::ApiState {
        pool: base.pool.clone(),
        relay: base.relay.waker(),
    });
    let server = PartServer::bind(base, api)
        .await?
        .with_task({
            let pool = pool.clone();
            move |shutdown| schedule::run(pool, tick, relay, shutdown)
        })
        .with_task(move |shutdown| schedule::purge_keys(pool, shutdown));
    Ok(ConsumerApp::new(server, subscription(), handler))
}

/// What the part consumes (ARCHITECTURE.md, "Parts").
pub fn subscription() -> Subscription {
    Subscription {
        part: PART,
        topics: vec![
            Topic::Events,
            Topic::Profiles,
            Topic::Segments,
            Topic::Interactions,
        ],
    }
}
