//! Identity: consumes `crm.ingest.v1`, finds or creates the customer each event belongs to,
//! keeps profiles (traits, identifiers), publishes resolved events on `crm.events.v1` and
//! profile changes on `crm.profiles.v1` through the outbox, and writes hot profiles to Redis.
//!
//! Identifiers are standardised ([`domain::standardise`]) and resolved deterministically
//! ([`resolve`]); an event that links identifiers of two customers merges them ([`merge`];
//! [`domain::survivorship`] decides which trait values stay), with guards against over-merging
//! ([`domain::settings`]). [`domain::matching`] is the probabilistic (Fellegi–Sunter) matcher,
//! also behind `crm-identity dedupe` ([`dedupe`]). docs/architecture.md describes the layout:
//! `domain/` (no I/O), `store/`, the use cases, then the consumer, `api/` and `cli`.

#![forbid(unsafe_code)]

mod api;
pub mod cleanup;
pub mod cli;
mod consumer;
pub mod dedupe;
pub mod domain;
pub mod import;
pub mod merge;
pub mod privacy;
pub mod resolve;
pub mod store;
mod unmerge;

use crm_config::{ConfigError, Env};
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use api::bodies;
pub use consumer::{timeline_subscription, IngestHandler, TimelineHandler};
pub use domain::identifiers::{identifiers_of, Extracted, FieldCheck, IdentifierKey};
pub use resolve::Resolver;

/// The part's name: database `crm_identity`, group `crm-identity`, `CRM_IDENTITY__*`.
pub const PART: &str = "identity";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8081;
/// Identity's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Identity's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
}

impl PartConfig for Config {
    /// Reads `CRM_IDENTITY__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Identity, connected and bound: `port()`, then `run(shutdown)`.
pub type Application = ConsumerApp<IngestHandler>;

/// How often possibly stale hot-profile keys (left by failed Redis calls) are repaired.
const CACHE_REPAIR_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let base = Base::connect(PART, config.common, &MIGRATOR).await?;
    let handler = IngestHandler::new(&base);
    let api = api::routes(api::ApiState {
        pool: base.pool.clone(),
        hot: store::hot::HotProfiles::new(std::sync::Arc::clone(&base.cache), base.pool.clone()),
        relay: base.relay.waker(),
    });
    let purge_pool = base.pool.clone();
    let (job_resolver, job_hot) = (
        Resolver::new(&base),
        store::hot::HotProfiles::new(std::sync::Arc::clone(&base.cache), base.pool.clone()),
    );
    let repairs =
        store::hot::HotProfiles::new(std::sync::Arc::clone(&base.cache), base.pool.clone());
    let timeline = TimelineHandler::new(base.pool.clone());
    let job_metrics = base.metrics.clone();
    let (kafka, producer, metrics) = (
        base.config.kafka.clone(),
        base.producer.clone(),
        base.metrics.clone(),
    );
    let server = PartServer::bind(base, api)
        .await?
        .with_task(move |shutdown| async move {
            // Like the ingest consumer, a timeline consumer that stops ends the part (it is
            // restarted) rather than leaving timelines silently behind.
            let stop = shutdown.clone();
            let result = crm_kafka::consumer::run(
                &kafka,
                timeline_subscription(),
                timeline,
                producer,
                metrics,
                shutdown,
            )
            .await;
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "timeline consumer failed");
            }
            stop.cancel();
        })
        .with_task(move |shutdown| repairs.run_repairs(CACHE_REPAIR_EVERY, shutdown))
        .with_task(move |shutdown| timeline_purge(purge_pool, shutdown))
        .with_task(move |shutdown| run_jobs(job_resolver, job_hot, job_metrics, shutdown));
    Ok(ConsumerApp::new(server, subscription(), handler))
}

/// Runs identity's persistent jobs (uploaded imports, clean-ups) until `shutdown`.
async fn run_jobs(
    resolver: Resolver,
    hot: store::hot::HotProfiles,
    metrics: crm_telemetry::Metrics,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let worker =
        crm_service::jobs::Worker::new(resolver.pool().clone(), &[import::JOB, cleanup::JOB])
            .with_metrics(&metrics);
    worker
        .run(shutdown, move |job| {
            let (resolver, hot) = (resolver.clone(), hot.clone());
            async move {
                match job.kind.as_str() {
                    import::JOB => import::run_job(&resolver, &job).await,
                    _ => cleanup::run_job(resolver.pool(), &hot, &job).await,
                }
            }
        })
        .await;
}

/// How often timeline entries past retention are purged.
const TIMELINE_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Purges timeline entries past each tenant's retention, soon after the first start and then
/// hourly, on one replica, until `shutdown`.
async fn timeline_purge(pool: sqlx::PgPool, shutdown: tokio_util::sync::CancellationToken) {
    use crm_service::schedule::{self, Schedule};
    let schedule = Schedule::every("identity.timeline.purge", TIMELINE_PURGE_EVERY);
    schedule::run(pool.clone(), schedule, shutdown, move || {
        let pool = pool.clone();
        async move {
            let default_days = domain::settings::Settings::default().timeline_retention_days;
            let n = store::timeline::purge(&pool, default_days).await?;
            if n > 0 {
                tracing::info!(deleted = n, "timeline purged past retention");
            }
            Ok(())
        }
    })
    .await;
}

/// What identity consumes.
pub fn subscription() -> Subscription {
    Subscription {
        part: PART,
        topics: vec![crm_envelope::Topic::Ingest],
    }
}
