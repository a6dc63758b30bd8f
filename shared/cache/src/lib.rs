//! The hot-profile cache (ARCHITECTURE.md: `{prefix}:{tenant}:profile:{customer_id}`). Redis is
//! a cache, never a source of truth: every operation has a short timeout, the connection is made
//! lazily and remade after failures, and callers treat an error as a miss.

#![forbid(unsafe_code)]

use std::time::Duration;

use crm_config::{ConfigError, Env};
use crm_envelope::TenantId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Cache settings (`CRM_REDIS__*`).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `CRM_REDIS__URL`, default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Key prefix, `CRM_REDIS__PREFIX`, default `crm`.
    pub prefix: String,
    /// How long a cached profile lives, `CRM_REDIS__PROFILE_TTL_MS`, default 1 hour.
    pub ttl: Duration,
    /// Bound on each Redis operation, `CRM_REDIS__TIMEOUT_MS`, default 250 ms.
    pub timeout: Duration,
}

impl CacheConfig {
    /// Reads `CRM_REDIS__*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.url_or(
                "CRM_REDIS__URL",
                "redis://127.0.0.1:6379",
                &["redis", "rediss"],
            )?,
            prefix: env.string_or("CRM_REDIS__PREFIX", "crm"),
            ttl: env.millis_or("CRM_REDIS__PROFILE_TTL_MS", 3_600_000)?,
            timeout: env.millis_or("CRM_REDIS__TIMEOUT_MS", 250)?,
        })
    }
}

/// A cache operation that did not complete; callers degrade (a miss, a skipped write).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("redis did not answer in time")]
    Timeout,
}

/// The key of one customer's hot profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileKey(String);

impl ProfileKey {
    /// `{prefix}:{tenant}:profile:{customer_id}`.
    pub fn new(prefix: &str, tenant: &TenantId, customer_id: Uuid) -> Self {
        Self(format!("{prefix}:{tenant}:profile:{customer_id}"))
    }

    /// The key as Redis sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hot customer profiles in Redis, stored as the JSON that identity serves.
pub struct ProfileCache {
    config: CacheConfig,
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
}

impl ProfileCache {
    /// A cache for `config`; does not connect until first use, so a part starts while Redis is
    /// down and uses it once it is back.
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        let client = redis::Client::open(config.url.as_str())?;
        Ok(Self {
            config,
            client,
            conn: Mutex::new(None),
        })
    }

    /// The key of a customer's profile.
    pub fn key(&self, tenant: &TenantId, customer_id: Uuid) -> ProfileKey {
        ProfileKey::new(&self.config.prefix, tenant, customer_id)
    }

    /// The cached profile JSON, if present.
    pub async fn get(&self, key: &ProfileKey) -> Result<Option<String>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key.as_str());
        self.run(cmd).await
    }

    /// Stores a profile written by its owner (identity), replacing any cached version.
    pub async fn put(&self, key: &ProfileKey, json: &str) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str()).arg(json).arg("PX").arg(self.ttl_ms());
        self.run::<()>(cmd).await
    }

    /// Fills a miss with a profile read from its owner, unless a fresher version was written
    /// meanwhile (`SET NX`), so a slow read never overwrites a newer profile.
    pub async fn fill(&self, key: &ProfileKey, json: &str) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str())
            .arg(json)
            .arg("PX")
            .arg(self.ttl_ms())
            .arg("NX");
        self.run::<Option<String>>(cmd).await.map(|_| ())
    }

    /// Removes a profile (merge, erasure).
    pub async fn evict(&self, key: &ProfileKey) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key.as_str());
        self.run::<i64>(cmd).await.map(|_| ())
    }

    /// Writes several profiles in one round trip (a pipeline of `SET … PX`).
    pub async fn put_many(&self, entries: &[(ProfileKey, String)]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, json) in entries {
            pipe.cmd("SET")
                .arg(key.as_str())
                .arg(json)
                .arg("PX")
                .arg(self.ttl_ms())
                .ignore();
        }
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.config.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout),
        }
    }

    /// Removes several profiles in one command.
    pub async fn evict_many(&self, keys: &[ProfileKey]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(key.as_str());
        }
        self.run::<i64>(cmd).await.map(|_| ())
    }

    /// Whether Redis answers `PING`.
    pub async fn ping(&self) -> bool {
        self.run::<String>(redis::cmd("PING")).await.is_ok()
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.timeout)
            .set_response_timeout(self.config.timeout)
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            self.config.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| CacheError::Timeout)??;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.config.timeout, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        let tenant = TenantId::parse("acme").unwrap();
        let id = Uuid::nil();
        assert_eq!(
            ProfileKey::new("crm", &tenant, id).as_str(),
            "crm:acme:profile:00000000-0000-0000-0000-000000000000"
        );
    }
}
