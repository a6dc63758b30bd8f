//! Segmentation: the Differentiate step. Per-customer aggregates from `crm.events.v1`, segments
//! in a closed rule language with real-time membership on `crm.segments.v1`, RFM, lifecycle
//! stages, lead scores and customer value (BG/NBD, Gamma-Gamma). docs/segmentation.md explains
//! the design.

#![forbid(unsafe_code)]

mod api;
pub mod batch;
pub mod cli;
mod consumer;
pub mod domain;
pub mod engine;
pub mod recompute;
pub mod schedule;
pub mod scoring;
pub mod store;

use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use api::bodies;
pub use consumer::SegmentationHandler;

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
    /// How often customers due for time re-evaluation are looked for
    /// (`CRM_SEGMENTATION__RECHECK_TICK_MS`, default 5000).
    pub recheck_tick: std::time::Duration,
    /// How often RFM and customer value are recomputed for every tenant
    /// (`CRM_SEGMENTATION__SCORING_INTERVAL_MS`, default 86400000 = daily; 0 disables).
    pub scoring_interval: Option<std::time::Duration>,
}

impl PartConfig for Config {
    /// Reads `CRM_SEGMENTATION__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let scoring = env.millis_or("CRM_SEGMENTATION__SCORING_INTERVAL_MS", 86_400_000)?;
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
            recheck_tick: env.millis_or("CRM_SEGMENTATION__RECHECK_TICK_MS", 5_000)?,
            scoring_interval: (!scoring.is_zero()).then_some(scoring),
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The part, connected and bound: `port()`, then `run(shutdown)`.
pub type Application = ConsumerApp<SegmentationHandler>;

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let base = Base::connect(PART, config.common, &MIGRATOR).await?;
    let catalog = std::sync::Arc::new(engine::Catalog::default());
    let handler = SegmentationHandler::new(base.pool.clone(), std::sync::Arc::clone(&catalog));
    let (recheck, scoring) = (
        (base.pool.clone(), std::sync::Arc::clone(&catalog)),
        (base.pool.clone(), std::sync::Arc::clone(&catalog)),
    );
    let (pool, relay) = (base.pool.clone(), base.relay.waker());
    let job_metrics = base.metrics.clone();
    let api = api::routes(api::ApiState {
        pool: base.pool.clone(),
        catalog: std::sync::Arc::clone(&catalog),
        relay: base.relay.waker(),
    });
    let server = PartServer::bind(base, api)
        .await?
        .with_task(move |shutdown| {
            schedule::recheck(recheck.0, recheck.1, config.recheck_tick, shutdown)
        })
        .with_task(move |shutdown| {
            schedule::scoring(scoring.0, scoring.1, config.scoring_interval, shutdown)
        })
        .with_task(move |shutdown| {
            let worker =
                crm_service::jobs::Worker::new(pool.clone(), &[scoring::JOB, recompute::JOB])
                    .with_metrics(&job_metrics);
            worker.run(shutdown, move |job| {
                let (pool, catalog, relay) = (
                    pool.clone(),
                    std::sync::Arc::clone(&catalog),
                    std::sync::Arc::clone(&relay),
                );
                async move {
                    if job.kind == recompute::JOB {
                        recompute::run_job(&pool, &catalog, &relay, &job).await
                    } else {
                        scoring::run_job(&pool, &catalog, &relay, &job).await
                    }
                }
            })
        });
    Ok(ConsumerApp::new(server, subscription(), handler))
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
