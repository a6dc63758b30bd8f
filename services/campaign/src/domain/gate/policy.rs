//! A tenant's contact policy, as stored and edited through the API: frequency caps, quiet
//! hours and the global control group. Checked when saved.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use super::caps::{Cap, Window};
use super::quiet::{Policy, QuietHours};

/// Contact pressure rules of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPolicy {
    /// Frequency caps (transactional messages are exempt).
    #[serde(default)]
    pub caps: Vec<Cap>,
    /// Quiet hours in the customer's time zone, if any.
    #[serde(default)]
    pub quiet_hours: Option<Quiet>,
    /// Share of customers (0 to 50 percent) held out of every journey's messages.
    #[serde(default)]
    pub global_holdout_percent: u8,
    /// Seconds (0 to 3600) a capped message waits before it leaves, during which a message of
    /// a higher-priority journey may still take its slot (0: it leaves at once, and priority
    /// decides only among messages waiting anyway, for quiet hours or a retry).
    #[serde(default)]
    pub priority_hold_seconds: u32,
}

/// Quiet hours as written: `HH:MM` local times and what happens to a message in them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quiet {
    /// When they begin (`21:00`).
    pub start: String,
    /// When they end (`08:00`).
    pub end: String,
    /// `defer` (default) or `drop`.
    #[serde(default = "defer")]
    pub policy: Policy,
}

fn defer() -> Policy {
    Policy::Defer
}

impl ContactPolicy {
    /// Checks the policy; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.global_holdout_percent > 50 {
            return Err("global_holdout_percent must be 0 to 50".into());
        }
        if self.priority_hold_seconds > 3600 {
            return Err("priority_hold_seconds must be 0 to 3600".into());
        }
        if self.caps.len() > 20 {
            return Err("caps: at most 20".into());
        }
        for (i, c) in self.caps.iter().enumerate() {
            if c.max == 0 || c.max > 1000 {
                return Err(format!("caps/{i}/max must be 1 to 1000"));
            }
            if matches!(c.window, Window::RollingHours(h) if h == 0 || h > 24 * 90) {
                return Err(format!("caps/{i}/window: rolling_hours must be 1 to 2160"));
            }
        }
        if let Some(q) = &self.quiet_hours {
            for (f, v) in [("start", &q.start), ("end", &q.end)] {
                if NaiveTime::parse_from_str(v, "%H:%M").is_err() {
                    return Err(format!("quiet_hours/{f} must be HH:MM, not {v:?}"));
                }
            }
        }
        Ok(())
    }

    /// The quiet hours the gate uses.
    pub fn quiet(&self) -> Option<QuietHours> {
        let q = self.quiet_hours.as_ref()?;
        Some(QuietHours {
            start: NaiveTime::parse_from_str(&q.start, "%H:%M").ok()?,
            end: NaiveTime::parse_from_str(&q.end, "%H:%M").ok()?,
            policy: q.policy,
        })
    }

    /// The policy for one message that makes its own quiet-hours choice (`None`: the
    /// tenant's).
    pub fn for_message(mut self, quiet: Option<Policy>) -> Self {
        if let (Some(q), Some(choice)) = (self.quiet_hours.as_mut(), quiet) {
            q.policy = choice;
        }
        self
    }

    /// How long a capped message waits for a higher-priority one to take its slot (none when
    /// there are no caps).
    pub fn priority_hold(&self) -> chrono::Duration {
        if self.caps.is_empty() {
            chrono::Duration::zero()
        } else {
            chrono::Duration::seconds(i64::from(self.priority_hold_seconds))
        }
    }

    /// The longest window of any cap, in hours (how much history the gate needs).
    pub fn history_hours(&self) -> i64 {
        self.caps
            .iter()
            .map(|c| match c.window {
                Window::RollingHours(h) => i64::from(h),
                Window::CalendarDay => 48,
                Window::CalendarWeek => 24 * 8,
                Window::CalendarMonth => 24 * 32,
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn policies_are_checked() {
        let p: ContactPolicy = serde_json::from_value(json!({
            "caps": [{"channel": "email", "max": 2, "window": {"rolling_hours": 24}},
                     {"max": 5, "window": "calendar_week"}],
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "global_holdout_percent": 5}))
        .unwrap();
        assert!(p.check().is_ok());
        assert_eq!(p.history_hours(), 192);
        assert_eq!(p.quiet().map(|q| q.policy), Some(Policy::Defer));
        let mut bad = p.clone();
        bad.global_holdout_percent = 60;
        assert!(bad.check().is_err());
        let mut bad = p.clone();
        bad.priority_hold_seconds = 3601;
        assert!(bad.check().unwrap_err().contains("priority_hold_seconds"));
        assert_eq!(p.priority_hold(), chrono::Duration::zero());
        let dropping = p.clone().for_message(Some(Policy::Drop));
        assert_eq!(dropping.quiet().map(|q| q.policy), Some(Policy::Drop));
        assert_eq!(p.clone().for_message(None), p);
        let mut bad = p;
        bad.quiet_hours = Some(Quiet {
            start: "25:00".into(),
            end: "08:00".into(),
            policy: Policy::Drop,
        });
        assert!(bad.check().unwrap_err().contains("quiet_hours/start"));
    }
}
