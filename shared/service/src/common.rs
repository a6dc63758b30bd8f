use std::net::SocketAddr;
use std::time::Duration;

use crm_cache::CacheConfig;
use crm_config::{ConfigError, Env};
use crm_kafka::KafkaConfig;

/// A part's settings: read from the environment, and holding the [`CommonConfig`].
pub trait PartConfig: Sized {
    /// Reads the part's settings, failing with the name of a bad key.
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
    /// The settings every part has.
    fn common(&self) -> &CommonConfig;
}

/// The settings every part reads. For part `identity` the keys are `CRM_IDENTITY__LISTEN` and
/// `CRM_IDENTITY__DATABASE_URL`; Kafka and Redis settings are shared (`CRM_KAFKA__*`,
/// `CRM_REDIS__*`).
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// Address the HTTP server binds (`CRM_<PART>__LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The part's own PostgreSQL database (`CRM_<PART>__DATABASE_URL`, default
    /// `postgres://postgres@127.0.0.1:5432/crm_<part>`).
    pub database_url: String,
    /// Pool size (`CRM_<PART>__DATABASE_POOL`, default 10).
    pub database_pool: u32,
    /// Run migrations when serving (`CRM_<PART>__MIGRATE_ON_START`, default true).
    pub migrate_on_start: bool,
    /// How often the outbox relay looks for rows it was not woken for
    /// (`CRM_<PART>__OUTBOX_POLL_MS`, default 200).
    pub outbox_poll: Duration,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Redis settings.
    pub redis: CacheConfig,
    /// The deployment's service token (`CRM_SERVICE_TOKEN`, at least 32 characters, the same
    /// in every part): the gateway sends it on every internal call and the parts refuse
    /// internal calls without it, so no client can bypass the gateway or forge `x-crm-actor`.
    /// Required to serve; commands that do not serve (migrate, verify) run without it.
    pub service_token: Option<crate::ServiceToken>,
    /// Limits on every HTTP request (timeout, requests in flight, body size).
    pub http: crate::limits::HttpLimits,
}

impl CommonConfig {
    /// Reads the settings of `part` (lower case), whose default port is `default_port`.
    pub fn from_env(env: &Env, part: &str, default_port: u16) -> Result<Self, ConfigError> {
        let upper = part.to_ascii_uppercase();
        Ok(Self {
            listen: env.addr_or(
                &format!("CRM_{upper}__LISTEN"),
                &format!("127.0.0.1:{default_port}"),
            )?,
            database_url: env.url_or(
                &format!("CRM_{upper}__DATABASE_URL"),
                &format!("postgres://postgres@127.0.0.1:5432/crm_{part}"),
                &["postgres", "postgresql"],
            )?,
            database_pool: env.ranged_or(&format!("CRM_{upper}__DATABASE_POOL"), 10, 1..=500)?,
            migrate_on_start: env.get_or(&format!("CRM_{upper}__MIGRATE_ON_START"), true)?,
            outbox_poll: env.millis_or(&format!("CRM_{upper}__OUTBOX_POLL_MS"), 200)?,
            kafka: KafkaConfig::from_env(env)?,
            service_token: crate::token::from_env(env)?,
            redis: CacheConfig::from_env(env)?,
            http: crate::limits::HttpLimits::from_env(env, &upper)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_keys() {
        let c = CommonConfig::from_env(&Env::default(), "identity", 8081).unwrap();
        assert_eq!(c.listen.port(), 8081);
        assert!(c.database_url.ends_with("/crm_identity"));
        let err = CommonConfig::from_env(
            &Env::from_pairs([("CRM_IDENTITY__LISTEN", "localhost")]),
            "identity",
            8081,
        )
        .unwrap_err();
        assert_eq!(err.key, "CRM_IDENTITY__LISTEN");
    }
}
