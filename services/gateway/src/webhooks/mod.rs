//! Webhook subscriptions (docs/webhooks.md): per tenant, endpoints and the event types they
//! want; deliveries queued from the output topics, signed per Standard Webhooks (the signing
//! and the SSRF guard are `crm_webhooks`, shared with the journeys' webhook channel), retried
//! on the specification's schedule, with a log of every attempt, replay and secret rotation.
//!
//! - [`domain`]: patterns, URLs, the delivery body (pure);
//! - [`store`]: the tables;
//! - [`consume`]: the output topics' consumer that queues deliveries;
//! - [`deliver`]: the delivery loop;
//! - [`api`]: the routes under `/v1/webhooks`.

pub(crate) mod api;
pub mod consume;
pub(crate) mod deliver;
pub(crate) mod domain;
pub(crate) mod store;

use std::time::Duration;

use crm_config::{ConfigError, Env};
use crm_webhooks::guard::Guard;
use crm_webhooks::signing::RETRY_SCHEDULE;

/// How webhooks are delivered (`CRM_GATEWAY__WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether endpoints may be private or loopback addresses
    /// (`CRM_GATEWAY__WEBHOOK_ALLOW_PRIVATE_TARGETS`, default false; true only for local
    /// receivers, as in the tests).
    pub allow_private_targets: bool,
    /// Timeout of one attempt (`CRM_GATEWAY__WEBHOOK_TIMEOUT_MS`, default 15 000).
    pub timeout: Duration,
    /// Delays before each retry (`CRM_GATEWAY__WEBHOOK_RETRY_SCHEDULE_MS`, comma-separated
    /// milliseconds; default the Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h).
    pub retry_schedule: Vec<Duration>,
    /// An endpoint failing for longer than this is disabled
    /// (`CRM_GATEWAY__WEBHOOK_DISABLE_AFTER_MS`, default 5 days).
    pub disable_after: Duration,
    /// How often the delivery loop looks for due deliveries when nothing woke it
    /// (`CRM_GATEWAY__WEBHOOK_TICK_MS`, default 500).
    pub tick: Duration,
    /// Attempts in flight at once per replica (`CRM_GATEWAY__WEBHOOK_CONCURRENCY`, 1 to 256,
    /// default 16).
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout: Duration::from_secs(15),
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            tick: Duration::from_millis(500),
            concurrency: 16,
        }
    }
}

impl Settings {
    /// Reads `CRM_GATEWAY__WEBHOOK_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let schedule_key = "CRM_GATEWAY__WEBHOOK_RETRY_SCHEDULE_MS";
        let retry_schedule = match env.raw(schedule_key) {
            None => d.retry_schedule,
            Some(raw) => parse_schedule(raw).map_err(|problem| ConfigError {
                key: schedule_key.to_owned(),
                problem,
            })?,
        };
        Ok(Self {
            allow_private_targets: env
                .get_or("CRM_GATEWAY__WEBHOOK_ALLOW_PRIVATE_TARGETS", false)?,
            timeout: env.millis_or("CRM_GATEWAY__WEBHOOK_TIMEOUT_MS", 15_000)?,
            retry_schedule,
            disable_after: env.millis_or("CRM_GATEWAY__WEBHOOK_DISABLE_AFTER_MS", 432_000_000)?,
            tick: env.millis_or("CRM_GATEWAY__WEBHOOK_TICK_MS", 500)?,
            concurrency: env.ranged_or("CRM_GATEWAY__WEBHOOK_CONCURRENCY", 16, 1..=256)?,
        })
    }

    /// The SSRF guard of deliveries.
    pub(crate) fn guard(&self) -> Guard {
        Guard {
            allow_private: self.allow_private_targets,
            timeout: self.timeout,
        }
    }
}

/// `5000,300000,…` as delays; at most 20, each under a day.
fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    let delays = raw
        .split(',')
        .map(|p| p.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "write milliseconds separated by commas, such as 5000,300000".to_owned())?;
    if delays.len() > 20 || delays.iter().any(|d| *d >= 86_400_000) {
        return Err("at most 20 delays, each under a day (86400000 ms)".to_owned());
    }
    Ok(delays.into_iter().map(Duration::from_millis).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_defaults_to_the_specifications_and_can_be_shortened() {
        let env = Env::from_pairs([("X", "1")]);
        assert_eq!(
            Settings::from_env(&env).unwrap().retry_schedule,
            RETRY_SCHEDULE
        );
        let env = Env::from_pairs([("CRM_GATEWAY__WEBHOOK_RETRY_SCHEDULE_MS", "50, 100")]);
        assert_eq!(
            Settings::from_env(&env).unwrap().retry_schedule,
            [Duration::from_millis(50), Duration::from_millis(100)]
        );
        let env = Env::from_pairs([("CRM_GATEWAY__WEBHOOK_RETRY_SCHEDULE_MS", "5s")]);
        let e = Settings::from_env(&env).unwrap_err().to_string();
        assert!(e.contains("CRM_GATEWAY__WEBHOOK_RETRY_SCHEDULE_MS"), "{e}");
    }
}
