//! Segmentation: per-customer aggregates, and (next issues) segments, RFM, lifecycle stages, scores and predicted value. This first slice keeps per-customer activity aggregates from `crm.events.v1`.

#![forbid(unsafe_code)]

mod api;
mod handler;

use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, PartServer};
use tokio_util::sync::CancellationToken;

pub use handler::SegmentationHandler;

/// The part's name: database `crm_segmentation`, group `crm-segmentation`, `CRM_SEGMENTATION__*`.
pub const PART: &str = "segmentation";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8082;
/// The part's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The part's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
}

impl Config {
    /// Reads `CRM_SEGMENTATION__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
        })
    }
}

/// The part, connected and bound.
pub struct Application {
    server: PartServer,
    handler: SegmentationHandler,
}

impl Application {
    /// Connects, migrates (when configured), creates topics and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let base = Base::connect(PART, config.common, &MIGRATOR).await?;
        let handler = SegmentationHandler::new(base.pool.clone());
        let server = PartServer::bind(base, api::routes(handler.pool())).await?;
        Ok(Self { server, handler })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs until `shutdown`, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.server
            .run_with_consumer(subscription(), self.handler, shutdown)
            .await
    }
}

/// What the part consumes (ARCHITECTURE.md, "Parts").
pub fn subscription() -> Subscription {
    Subscription {
        part: PART,
        topics: vec![
            Topic::Events,
            Topic::Profiles,
            Topic::Loyalty,
            Topic::Interactions,
        ],
    }
}
