//! The hot-profile cache (ARCHITECTURE.md: `{prefix}:{tenant}:profile:{customer_id}`). Redis is
//! a cache, never a source of truth:
//!
//! - every operation has a short timeout, and callers treat an error as a miss;
//! - a circuit breaker: after a failure Redis is taken as down until a short, growing delay has
//!   passed (100 ms doubling to 5 s), so a Redis outage costs callers nothing but the miss,
//!   instead of a timeout per call; the first call after the delay tries again;
//! - the connection is made lazily, by one caller at a time and with no lock held while it
//!   connects; once made, redis-rs's connection manager reconnects in the background;
//! - writes carry the profile's `version` and go through a short Lua script that refuses to
//!   replace a newer cached version (compare-and-set), so an older write or a slow fill never
//!   overwrites a fresher profile;
//! - merges and erasures leave a short tombstone (`…:profile:{id}:gone`) that refuses every
//!   write for the id while it lives, so a fill racing an erasure cannot bring its data back.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crm_config::{ConfigError, Env};
use crm_envelope::TenantId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
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
    /// How long a merged or erased id's tombstone refuses writes,
    /// `CRM_REDIS__TOMBSTONE_TTL_MS`, default 10 minutes.
    pub tombstone_ttl: Duration,
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
            tombstone_ttl: env.millis_or("CRM_REDIS__TOMBSTONE_TTL_MS", 600_000)?,
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
    /// Redis failed recently: taken as down until the breaker's delay has passed.
    #[error("redis is taken as down after a recent failure")]
    Down,
    /// The value written is not a profile with a `version`.
    #[error("not a profile with a version: {0}")]
    NotAProfile(String),
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

    /// The key of this profile's tombstone.
    pub fn tombstone(&self) -> String {
        format!("{}:gone", self.0)
    }
}

/// Writes a profile unless a tombstone lives or a newer version is cached. KEYS: profile,
/// tombstone; ARGV: JSON, version, TTL in ms, `put` (replace an equal version: the owner's
/// write) or `fill` (keep an equal version: a reader's copy). 1 when written.
const WRITE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, decoded = pcall(cjson.decode, cur)
  if ok and type(decoded) == 'table' and tonumber(decoded['version']) then
    local have, new = tonumber(decoded['version']), tonumber(ARGV[2])
    if have > new or (ARGV[4] == 'fill' and have >= new) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"#;

/// One hit of a rate bucket: the count, the window started by the first hit.
const HIT_SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

/// The circuit breaker's state.
#[derive(Debug, Default)]
struct Breaker {
    down_until: Option<Instant>,
    failures: u32,
}

const BREAKER_START: Duration = Duration::from_millis(100);
const BREAKER_MAX: Duration = Duration::from_secs(5);

impl Breaker {
    fn open(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|t| now < t)
    }

    /// Records a failure; `true` when Redis was up until now (the transition is logged once).
    fn trip(&mut self, now: Instant) -> bool {
        let was_up = self.failures == 0;
        let delay = BREAKER_START
            .saturating_mul(1 << self.failures.min(10))
            .min(BREAKER_MAX);
        self.failures = self.failures.saturating_add(1);
        self.down_until = Some(now + delay);
        was_up
    }

    /// Records a success; `true` when Redis was down until now.
    fn reset(&mut self) -> bool {
        let was_down = self.failures > 0;
        *self = Self::default();
        was_down
    }
}

/// The `version` of a profile's JSON.
fn version_of(json: &str) -> Result<i64, CacheError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: i64,
    }
    serde_json::from_str::<Versioned>(json)
        .map(|v| v.version)
        .map_err(|e| CacheError::NotAProfile(e.to_string()))
}

/// Hot customer profiles in Redis, stored as the JSON that identity serves.
pub struct ProfileCache {
    config: CacheConfig,
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    breaker: Mutex<Breaker>,
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
            connecting: AtomicBool::new(false),
            breaker: Mutex::new(Breaker::default()),
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

    /// Stores a profile written by its owner (identity), replacing the cached copy unless that
    /// one has a newer version or the id has a tombstone. `true` when written.
    pub async fn put(&self, key: &ProfileKey, json: &str) -> Result<bool, CacheError> {
        let cmd = self.write_cmd(key, json, version_of(json)?, "put");
        self.run::<i64>(cmd).await.map(|n| n == 1)
    }

    /// Fills a miss with a profile read from its owner, unless the cache meanwhile holds the
    /// same or a newer version, or the id has a tombstone (a slow read never overwrites a
    /// fresher profile nor brings back an erased one). `true` when written.
    pub async fn fill(&self, key: &ProfileKey, json: &str) -> Result<bool, CacheError> {
        let cmd = self.write_cmd(key, json, version_of(json)?, "fill");
        self.run::<i64>(cmd).await.map(|n| n == 1)
    }

    fn write_cmd(&self, key: &ProfileKey, json: &str, version: i64, mode: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(WRITE_SCRIPT)
            .arg(2)
            .arg(key.as_str())
            .arg(key.tombstone())
            .arg(json)
            .arg(version)
            .arg(self.ttl_ms())
            .arg(mode);
        cmd
    }

    /// Removes a profile (a miss follows; the owner's next write fills it again).
    pub async fn evict(&self, key: &ProfileKey) -> Result<(), CacheError> {
        self.evict_many(std::slice::from_ref(key)).await
    }

    /// Removes a profile and leaves its tombstone (merge, erasure): no write for the id is
    /// taken while the tombstone lives.
    pub async fn tombstone(&self, key: &ProfileKey) -> Result<(), CacheError> {
        self.tombstone_many(std::slice::from_ref(key)).await
    }

    /// Writes several profiles (key, JSON, the profile's version: the owner knows it, so the
    /// JSON is not parsed again) in one round trip, a pipeline of the compare-and-set script.
    pub async fn put_many(&self, entries: &[(ProfileKey, String, i64)]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, json, version) in entries {
            pipe.add_command(self.write_cmd(key, json, *version, "put"))
                .ignore();
        }
        self.run_pipe(pipe).await
    }

    /// Removes several profiles and leaves their tombstones, in one round trip.
    pub async fn tombstone_many(&self, keys: &[ProfileKey]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut del = redis::cmd("DEL");
        for key in keys {
            del.arg(key.as_str());
            pipe.cmd("SET")
                .arg(key.tombstone())
                .arg(1)
                .arg("PX")
                .arg(u64::try_from(self.config.tombstone_ttl.as_millis()).unwrap_or(u64::MAX))
                .ignore();
        }
        pipe.add_command(del).ignore();
        self.run_pipe(pipe).await
    }

    /// Removes several profiles in one command (no tombstones).
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

    /// Removes a profile's tombstone: the id is a customer of its own again (an unmerge).
    pub async fn revive(&self, key: &ProfileKey) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key.tombstone());
        self.run::<i64>(cmd).await.map(|_| ())
    }

    /// Counts one hit of `bucket` in a fixed window of `window` (the first hit starts it) and
    /// answers the window's count so far; shared by every replica, for rate limits.
    pub async fn hit(&self, bucket: &str, window: Duration) -> Result<i64, CacheError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(HIT_SCRIPT)
            .arg(1)
            .arg(format!("{}rate:{bucket}", self.config.prefix))
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run(cmd).await
    }

    /// Whether Redis is taken as down (the breaker is open).
    pub fn is_down(&self) -> bool {
        self.breaker
            .lock()
            .map(|b| b.open(Instant::now()))
            .unwrap_or(false)
    }

    /// Whether Redis answers `PING`.
    pub async fn ping(&self) -> bool {
        self.run::<String>(redis::cmd("PING")).await.is_ok()
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection: made by one caller at a time, with no lock held while connecting
    /// (callers meanwhile get [`CacheError::Down`], a miss); refused while the breaker is open.
    async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        if self.is_down() {
            return Err(CacheError::Down);
        }
        if let Some(conn) = self.conn.lock().ok().and_then(|c| c.clone()) {
            return Ok(conn);
        }
        if self.connecting.swap(true, Ordering::AcqRel) {
            return Err(CacheError::Down);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.timeout)
            .set_response_timeout(self.config.timeout)
            .set_number_of_retries(1);
        let made = tokio::time::timeout(
            self.config.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        self.connecting.store(false, Ordering::Release);
        let conn = match made {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(self.failed(e.into())),
            Err(_) => return Err(self.failed(CacheError::Timeout)),
        };
        if let Ok(mut guard) = self.conn.lock() {
            *guard = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Trips the breaker for `err` (logged when Redis was up until now) and returns it.
    fn failed(&self, err: CacheError) -> CacheError {
        let tripped = self
            .breaker
            .lock()
            .map(|mut b| b.trip(Instant::now()))
            .unwrap_or(false);
        if tripped {
            tracing::warn!(error = %err, "redis failed; serving without the cache until it answers again");
        }
        err
    }

    fn succeeded(&self) {
        let recovered = self.breaker.lock().map(|mut b| b.reset()).unwrap_or(false);
        if recovered {
            tracing::info!("redis answers again; the cache is back");
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.config.timeout, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => Err(self.failed(e.into())),
            Err(_) => Err(self.failed(CacheError::Timeout)),
        }
    }

    async fn run_pipe(&self, pipe: redis::Pipeline) -> Result<(), CacheError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.config.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                self.succeeded();
                Ok(())
            }
            Ok(Err(e)) => Err(self.failed(e.into())),
            Err(_) => Err(self.failed(CacheError::Timeout)),
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

    #[test]
    fn the_breaker_opens_for_a_growing_delay_and_closes_on_success() {
        let mut b = Breaker::default();
        let t0 = Instant::now();
        assert!(!b.open(t0));
        assert!(b.trip(t0), "the first failure is the transition");
        assert!(b.open(t0 + Duration::from_millis(99)));
        assert!(!b.open(t0 + Duration::from_millis(100)));
        assert!(!b.trip(t0), "later failures are not logged again");
        assert!(b.open(t0 + Duration::from_millis(199)));
        for _ in 0..20 {
            b.trip(t0);
        }
        assert!(!b.open(t0 + BREAKER_MAX), "the delay is capped");
        assert!(b.reset());
        assert!(!b.open(t0));
        assert!(!b.reset());
    }

    #[test]
    fn a_profile_write_needs_its_version() {
        assert_eq!(version_of(r#"{"id": "x", "version": 7}"#).unwrap(), 7);
        assert!(matches!(
            version_of(r#"{"id": "x"}"#),
            Err(CacheError::NotAProfile(_))
        ));
    }
}
