//! Frequency caps: at most `max` messages per channel and/or message type in a window, rolling
//! (the last N hours) or calendar (today, this week from Monday, this month) in the customer's
//! time zone. Which journey gets the last slot is the caller's choice (by journey priority);
//! transactional messages are never counted against a cap by the gate.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::journeys::Channel;
use crate::domain::localtime;

/// A cap's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The last N hours.
    RollingHours(u32),
    /// Since local midnight.
    CalendarDay,
    /// Since Monday 00:00 local.
    CalendarWeek,
    /// Since the first of the month, 00:00 local.
    CalendarMonth,
}

/// A frequency cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// Only messages of this channel count (`None`: every channel).
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Only messages of this type count (`None`: every type).
    #[serde(default)]
    pub message_type: Option<String>,
    /// Most messages in the window.
    pub max: u32,
    /// The window.
    pub window: Window,
}

/// A message sent to the customer (transactional ones are not recorded here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// When.
    pub at: DateTime<Utc>,
    /// Its channel.
    pub channel: Channel,
    /// Its type.
    pub message_type: String,
}

impl Cap {
    /// Whether the cap counts a message of `channel` and `message_type`.
    fn covers(&self, channel: Channel, message_type: &str) -> bool {
        self.channel.is_none_or(|c| c == channel)
            && self
                .message_type
                .as_deref()
                .is_none_or(|t| t == message_type)
    }

    /// The window's first instant, for `now` in `tz`.
    pub fn since(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&tz).date_naive();
        let day = match self.window {
            Window::RollingHours(h) => return now - Duration::hours(i64::from(h)),
            Window::CalendarDay => today,
            Window::CalendarWeek => {
                today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))
            }
            Window::CalendarMonth => today.with_day(1).unwrap_or(today),
        };
        localtime::instant(tz, day, NaiveTime::MIN)
    }
}

/// The first cap another message of `channel` / `message_type` would pass, if any.
pub fn reached<'a>(
    caps: &'a [Cap],
    history: &[Sent],
    channel: Channel,
    message_type: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<&'a Cap> {
    caps.iter()
        .filter(|c| c.covers(channel, message_type))
        .find(|cap| {
            let since = cap.since(tz, now);
            let n = history
                .iter()
                .filter(|s| s.at >= since && s.at <= now && cap.covers(s.channel, &s.message_type))
                .count();
            n >= cap.max as usize
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sent(at: &str, channel: Channel, t: &str) -> Sent {
        Sent {
            at: utc(at),
            channel,
            message_type: t.into(),
        }
    }

    #[test]
    fn a_calendar_day_is_the_customers_day_not_utcs() {
        let cap = [Cap {
            channel: Some(Channel::Email),
            message_type: None,
            max: 1,
            window: Window::CalendarDay,
        }];
        // One email at 2026-12-03 22:30 UTC.
        let history = [sent("2026-12-03T22:30:00Z", Channel::Email, "marketing")];
        let now = utc("2026-12-04T01:00:00Z");
        // In Tokyo it was already 12-04 07:30, the same local day as now (10:00): capped.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", tokyo, now).is_some());
        // In New York it was 12-03 17:30, yesterday (now is 12-03 20:00… still 12-03): capped;
        // in Madrid it was 23:30 on 12-03 and now is 02:00 on 12-04: a new day, allowed.
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", madrid, now).is_none());
        let ny: Tz = "America/New_York".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", ny, now).is_some());
        // SMS is not covered by an email cap.
        assert!(reached(&cap, &history, Channel::Sms, "marketing", tokyo, now).is_none());
    }

    #[test]
    fn rolling_week_and_type_windows() {
        let tz: Tz = "UTC".parse().unwrap();
        let history = [
            sent("2026-11-30T10:00:00Z", Channel::Email, "newsletter"), // Monday
            sent("2026-12-02T08:00:00Z", Channel::Sms, "marketing"),    // 25 h before now
        ];
        let now = utc("2026-12-03T09:00:00Z");
        let rolling = [Cap {
            channel: None,
            message_type: None,
            max: 1,
            window: Window::RollingHours(24),
        }];
        assert!(reached(&rolling, &history, Channel::Email, "marketing", tz, now).is_none());
        let rolling48 = [Cap {
            window: Window::RollingHours(48),
            ..rolling[0].clone()
        }];
        assert!(reached(&rolling48, &history, Channel::Email, "marketing", tz, now).is_some());
        let week = [Cap {
            channel: None,
            message_type: Some("newsletter".into()),
            max: 1,
            window: Window::CalendarWeek,
        }];
        assert!(reached(&week, &history, Channel::Email, "newsletter", tz, now).is_some());
        assert!(reached(&week, &history, Channel::Email, "marketing", tz, now).is_none());
        let next_monday = utc("2026-12-07T00:00:00Z");
        assert!(reached(
            &week,
            &history,
            Channel::Email,
            "newsletter",
            tz,
            next_monday
        )
        .is_none());
        let month = [Cap {
            channel: None,
            message_type: None,
            max: 2,
            window: Window::CalendarMonth,
        }];
        // Only the December SMS is in December's window.
        assert!(reached(&month, &history, Channel::Email, "x", tz, now).is_none());
    }
}
