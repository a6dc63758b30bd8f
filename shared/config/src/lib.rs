//! Configuration from environment variables. Every part reads its settings through [`Env`], so
//! that a bad value is reported once, at boot, with the name of the key and what it expects,
//! and secrets (database URLs with passwords) are never printed.
//!
//! Keys are `CRM_<SECTION>__<KEY>`: `CRM_KAFKA__BROKERS`, `CRM_IDENTITY__DATABASE_URL`. The
//! defaults are the ones documented in the README's configuration table.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration key {key}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: String,
    /// What is wrong with it and what it expects.
    pub problem: String,
}

/// A snapshot of the variables that configure the suite.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment's `CRM_*` variables, and `HOSTNAME` (the default replica id):
    /// the variable when exported (Kubernetes and Docker set it to the pod or container), else
    /// the kernel's host name (a shell does not export it to the processes it starts).
    pub fn from_process() -> Self {
        let mut vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CRM_") || k == "HOSTNAME")
            .collect();
        if !vars.iter().any(|(k, _)| k == "HOSTNAME") {
            if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                vars.push(("HOSTNAME".to_owned(), name.trim().to_owned()));
            }
        }
        Self::from_pairs(vars)
    }

    /// An environment made of these pairs (for tests and tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of `key`, if set and not empty.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `key` parsed as `T`, or `default` when unset.
    pub fn get_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError {
                key: key.to_owned(),
                problem: format!("cannot parse {raw:?}: {e}"),
            }),
        }
    }

    /// A string setting, or `default`.
    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or(default).to_owned()
    }

    /// A socket address such as `127.0.0.1:8080`.
    pub fn addr_or(&self, key: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.string_or(key, default);
        raw.parse().map_err(|e| ConfigError {
            key: key.to_owned(),
            problem: format!("expected host:port such as 127.0.0.1:8080, got {raw:?}: {e}"),
        })
    }

    /// A duration in milliseconds.
    pub fn millis_or(&self, key: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.get_or(key, default_ms).map(Duration::from_millis)
    }

    /// A URL-like secret (it may carry a password): checked for a scheme, never echoed back.
    pub fn url_or(
        &self,
        key: &str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let raw = self.string_or(key, default);
        if schemes.iter().any(|s| raw.starts_with(&format!("{s}://"))) {
            Ok(raw)
        } else {
            Err(ConfigError {
                key: key.to_owned(),
                problem: format!(
                    "expected a URL starting with {}://",
                    schemes.join(":// or ")
                ),
            })
        }
    }

    /// A number that must lie in `range`.
    pub fn ranged_or<T>(
        &self,
        key: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.get_or(key, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError {
                key: key.to_owned(),
                problem: format!(
                    "{value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            })
        }
    }
}

/// Hides a URL's password for display: `postgres://u:secret@h/db` → `postgres://u:***@h/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let env = Env::from_pairs([("CRM_KAFKA__PARTITIONS", "many")]);
        let err = env.get_or("CRM_KAFKA__PARTITIONS", 3u32).unwrap_err();
        assert_eq!(err.key, "CRM_KAFKA__PARTITIONS");
        assert!(err.to_string().contains("CRM_KAFKA__PARTITIONS"));
        let err = Env::from_pairs([("CRM_X", "70000")])
            .ranged_or("CRM_X", 3u32, 1..=1024)
            .unwrap_err();
        assert!(err.problem.contains("out of range"));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let env = Env::from_pairs([("CRM_A", "")]);
        assert_eq!(env.get_or("CRM_A", 7u16).unwrap(), 7);
        assert_eq!(env.get_or("CRM_B", 8u16).unwrap(), 8);
        assert_eq!(
            env.millis_or("CRM_C", 250).unwrap(),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn url_errors_never_echo_secrets() {
        let env = Env::from_pairs([("CRM_DB", "postgress://u:hunter2@h/db")]);
        let err = env.url_or("CRM_DB", "", &["postgres"]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(
            redact_url("postgres://u:hunter2@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
