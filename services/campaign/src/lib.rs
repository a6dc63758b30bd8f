//! Campaign: campaigns, journeys, messages, conversations, leads. This first slice keeps the
//! reachable contacts (email from profile changes, last activity from events) that campaigns
//! will target.

#![forbid(unsafe_code)]

mod api;
pub mod cli;
mod consumer;
pub mod domain;
pub mod engine;
pub mod store;

use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use consumer::CampaignHandler;

/// The part's name: database `crm_campaign`, group `crm-campaign`, `CRM_CAMPAIGN__*`.
pub const PART: &str = "campaign";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8083;
/// The part's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The part's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
}

impl PartConfig for Config {
    /// Reads `CRM_CAMPAIGN__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The part, connected and bound: `port()`, then `run(shutdown)`.
pub type Application = ConsumerApp<CampaignHandler>;

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let base = Base::connect(PART, config.common, &MIGRATOR).await?;
    let handler = CampaignHandler::new(base.pool.clone());
    let server = PartServer::bind(base, api::routes(handler.pool())).await?;
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
            Topic::Loyalty,
        ],
    }
}
