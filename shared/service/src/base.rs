use std::sync::Arc;

use axum::Router;
use crm_cache::ProfileCache;
use crm_kafka::outbox::Relay;
use crm_kafka::Producer;
use crm_telemetry::Metrics;
use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::ops::{self, Checks};
use crate::{db, CommonConfig};

/// The connected resources of one part: its database (migrated), the topics (created when
/// missing), an idempotent producer, the profile cache, its metrics registry and its outbox
/// relay.
pub struct Base {
    /// The part's name (`identity`, ...).
    pub part: &'static str,
    /// Its settings.
    pub config: CommonConfig,
    /// Its own database.
    pub pool: PgPool,
    /// The producer (also used for dead letters and the outbox relay).
    pub producer: Producer,
    /// The hot-profile cache.
    pub cache: Arc<ProfileCache>,
    /// Its metrics.
    pub metrics: Metrics,
    /// Publishes its outbox; wake it with `relay.waker()` after committing rows.
    pub relay: Relay,
}

impl Base {
    /// Connects everything a part needs, migrating first when `migrate_on_start` is set.
    pub async fn connect(
        part: &'static str,
        config: CommonConfig,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        if config.migrate_on_start {
            db::ensure_database(&config.database_url).await?;
        }
        let pool = db::connect(&config.database_url, config.database_pool).await?;
        if config.migrate_on_start {
            db::migrate(&pool, migrator).await?;
        }
        let metrics = Metrics::new(part)?;
        crm_kafka::ensure_topics(&config.kafka).await?;
        let producer = Producer::connect(&config.kafka, metrics.clone()).await?;
        let cache = Arc::new(ProfileCache::new(config.redis.clone())?);
        let relay = Relay::new(
            pool.clone(),
            producer.clone(),
            metrics.clone(),
            config.outbox_poll,
        );
        Ok(Self {
            part,
            config,
            pool,
            producer,
            cache,
            metrics,
            relay,
        })
    }

    /// `crm-<part> migrate`: creates the database if missing and applies every migration.
    pub async fn migrate_only(config: &CommonConfig, migrator: &Migrator) -> anyhow::Result<()> {
        db::ensure_database(&config.database_url).await?;
        let pool = db::connect(&config.database_url, 1).await?;
        db::migrate(&pool, migrator).await?;
        pool.close().await;
        Ok(())
    }

    pub(crate) fn ops_routes(&self) -> Router {
        ops::routes(Checks {
            pool: self.pool.clone(),
            cache: Arc::clone(&self.cache),
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
        })
    }
}
