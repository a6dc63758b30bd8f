//! Identity: consumes `crm.ingest.v1`, finds or creates the customer each event belongs to,
//! keeps profiles (traits, identifiers), publishes resolved events on `crm.events.v1` and
//! profile changes on `crm.profiles.v1` through the outbox, and writes hot profiles to Redis.
//!
//! Identifiers are standardised ([`standardise`]) and resolved deterministically; an event that
//! links identifiers of two customers merges them ([`survivorship`] decides which trait values
//! stay), with guards against over-merging ([`settings`]). [`matching`] is the probabilistic
//! (Fellegi–Sunter) matcher, also behind `crm-identity dedupe` ([`dedupe`]).

#![forbid(unsafe_code)]

mod api;
pub mod cleanup;
pub mod dedupe;
pub mod graph;
pub mod hot;
mod identifiers;
pub mod import;
pub mod matching;
mod newcomer;
pub mod online;
mod owned;
mod owners;
mod pending;
pub mod privacy;
mod profile;
mod resolve;
pub mod search;
pub mod settings;
pub mod standardise;
pub mod survivorship;
pub mod timeline;
mod unmerge;

use crm_config::{ConfigError, Env};
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use identifiers::{identifiers_of, Extracted, FieldCheck, IdentifierKey};
pub use resolve::{IngestHandler, Resolver};

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
        hot: hot::HotProfiles::new(std::sync::Arc::clone(&base.cache), base.pool.clone()),
        relay: base.relay.waker(),
        resolver: Resolver::new(&base),
    });
    spawn_timeline_purge(base.pool.clone());
    let repairs = hot::HotProfiles::new(std::sync::Arc::clone(&base.cache), base.pool.clone());
    let server = PartServer::bind(base, api)
        .await?
        .with_task(move |shutdown| repairs.run_repairs(CACHE_REPAIR_EVERY, shutdown));
    Ok(ConsumerApp::new(server, subscription(), handler))
}

/// Purges timeline entries past each tenant's retention, a minute after start and then hourly,
/// until the pool is closed.
fn spawn_timeline_purge(pool: sqlx::PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(3600),
        );
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            let default_days = settings::Settings::default().timeline_retention_days;
            match timeline::purge(&pool, default_days).await {
                Ok(n) => tracing::info!(deleted = n, "timeline purged past retention"),
                Err(e) => tracing::warn!(error = %e, "timeline purge failed; retrying next hour"),
            }
        }
    });
}

/// What identity consumes.
pub fn subscription() -> Subscription {
    Subscription {
        part: PART,
        topics: vec![crm_envelope::Topic::Ingest],
    }
}
