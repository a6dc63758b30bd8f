//! Consent as the domain sees it: a change for one purpose on one channel, and how an
//! identify event's `consent` trait reads as such changes. No I/O: recording and reading
//! consent is [`crate::privacy`]'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A consent given or withdrawn, for one purpose on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentChange {
    /// What the data is used for: `marketing`, `analytics`, `profiling`, ...
    pub purpose: String,
    /// Where: `email`, `sms`, `phone`, `push`, `post`, or `any`.
    pub channel: String,
    /// Given (true) or withdrawn (false).
    pub granted: bool,
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl ConsentChange {
    /// Checks purpose and channel: 1 to 64 of `a-z 0-9 _ -`.
    pub fn validate(&self) -> Result<(), String> {
        for (what, value) in [("purpose", &self.purpose), ("channel", &self.channel)] {
            if !valid_name(value) {
                return Err(format!(
                    "consent {what} {value:?} must be 1 to 64 of a-z, 0-9, '_' and '-'"
                ));
            }
        }
        Ok(())
    }
}

/// Reads the `consent` trait of an identify event: one change or a list of them.
pub fn parse_consent(value: &Value) -> Result<Vec<ConsentChange>, String> {
    let changes: Vec<ConsentChange> = match value {
        Value::Array(_) => serde_json::from_value(value.clone()),
        _ => serde_json::from_value(value.clone()).map(|c| vec![c]),
    }
    .map_err(|e| format!("consent: {e}"))?;
    for change in &changes {
        change.validate()?;
    }
    Ok(changes)
}
