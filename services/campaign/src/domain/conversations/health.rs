//! A connector's health, from what its calls left: red when the last call was refused (a bad
//! signature, an unreadable payload), amber while no call has come yet or none for longer
//! than the quiet limit, green otherwise, `off` when disabled; always with the reason.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long a connector may stay quiet before it shows amber.
pub const QUIET_HOURS: i64 = 24;

/// The colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConnectorHealthStatus)]
pub enum Status {
    /// Calls arrive and are taken.
    Green,
    /// No call yet, or none lately.
    Amber,
    /// The last call was refused.
    Red,
    /// Disabled.
    Off,
}

/// A connector's health and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ConnectorHealth)]
pub struct Health {
    /// The colour.
    pub status: Status,
    /// Why, in words.
    pub reason: String,
}

/// What the health is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    /// Whether the connector takes calls.
    pub enabled: bool,
    /// The last call taken.
    pub last_received_at: Option<DateTime<Utc>>,
    /// Calls refused since.
    pub failures_in_row: i32,
    /// Why the last refused call was refused.
    pub last_failure: Option<&'a str>,
}

/// The health at `now`.
pub fn health(c: Calls<'_>, now: DateTime<Utc>) -> Health {
    let (status, reason) = if !c.enabled {
        (Status::Off, "disabled".to_owned())
    } else if c.failures_in_row > 0 {
        (
            Status::Red,
            format!(
                "the last {} call(s) were refused: {}",
                c.failures_in_row,
                c.last_failure.unwrap_or("unknown")
            ),
        )
    } else {
        match c.last_received_at {
            None => (
                Status::Amber,
                "no call yet: register the webhook URL with the network".to_owned(),
            ),
            Some(at) if now - at > Duration::hours(QUIET_HOURS) => (
                Status::Amber,
                format!("no call for {} hours", (now - at).num_hours()),
            ),
            Some(_) => (Status::Green, "calls arrive and are taken".to_owned()),
        }
    };
    Health { status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_on_a_refused_call_amber_when_quiet_green_otherwise() {
        let now = Utc::now();
        let calls = |enabled, last: Option<i64>, failures| Calls {
            enabled,
            last_received_at: last.map(|h| now - Duration::hours(h)),
            failures_in_row: failures,
            last_failure: Some("bad signature"),
        };
        assert_eq!(health(calls(true, Some(1), 0), now).status, Status::Green);
        assert_eq!(health(calls(true, Some(1), 2), now).status, Status::Red);
        assert!(health(calls(true, Some(1), 2), now)
            .reason
            .contains("bad signature"));
        assert_eq!(health(calls(true, None, 0), now).status, Status::Amber);
        assert_eq!(health(calls(true, Some(30), 0), now).status, Status::Amber);
        assert_eq!(health(calls(false, Some(1), 3), now).status, Status::Off);
    }
}
