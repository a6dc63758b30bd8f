//! Quiet hours in the customer's time zone: a window of local time (it may cross midnight) in
//! which a message waits until the window ends, or is dropped, per the tenant's policy.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::localtime;

/// What happens to a message in quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = QuietPolicy)]
pub enum Policy {
    /// Sent when the quiet hours end.
    Defer,
    /// Not sent (`message.skipped`, `quiet_hours`).
    Drop,
}

/// Quiet hours: from `start` to `end`, local time; `start == end` is never quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Local time they begin.
    pub start: NaiveTime,
    /// Local time they end.
    pub end: NaiveTime,
    /// What happens to a message during them.
    pub policy: Policy,
}

/// The outcome of quiet hours for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuietOutcome {
    /// Not quiet: send.
    Open,
    /// Quiet: send at this instant.
    DeferUntil(DateTime<Utc>),
    /// Quiet: drop.
    Drop,
}

impl QuietHours {
    /// The outcome at `now` for a customer in `tz`.
    pub fn at(&self, tz: Tz, now: DateTime<Utc>) -> QuietOutcome {
        let local = now.with_timezone(&tz);
        let (date, t) = (local.date_naive(), local.time());
        let ends_on = if self.start < self.end {
            (self.start <= t && t < self.end).then_some(date)
        } else if self.start > self.end {
            if t >= self.start {
                date.succ_opt()
            } else if t < self.end {
                Some(date)
            } else {
                None
            }
        } else {
            None
        };
        match (ends_on, self.policy) {
            (None, _) => QuietOutcome::Open,
            (Some(_), Policy::Drop) => QuietOutcome::Drop,
            (Some(day), Policy::Defer) => {
                QuietOutcome::DeferUntil(localtime::instant(tz, day, self.end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn one_instant_is_quiet_in_one_zone_and_open_in_another() {
        let q = QuietHours {
            start: hm(21, 0),
            end: hm(8, 0),
            policy: Policy::Defer,
        };
        let now = utc("2026-12-03T22:00:00Z");
        let madrid: Tz = "Europe/Madrid".parse().unwrap(); // 23:00: quiet until 08:00 local
        assert_eq!(
            q.at(madrid, now),
            QuietOutcome::DeferUntil(utc("2026-12-04T07:00:00Z"))
        );
        let la: Tz = "America/Los_Angeles".parse().unwrap(); // 14:00: open
        assert_eq!(q.at(la, now), QuietOutcome::Open);
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap(); // 07:00 next day: quiet until 08:00
        assert_eq!(
            q.at(tokyo, now),
            QuietOutcome::DeferUntil(utc("2026-12-03T23:00:00Z"))
        );
        let drop = QuietHours {
            policy: Policy::Drop,
            ..q
        };
        assert_eq!(drop.at(madrid, now), QuietOutcome::Drop);
        // A window within one day, and an empty one.
        let lunch = QuietHours {
            start: hm(12, 0),
            end: hm(14, 0),
            policy: Policy::Defer,
        };
        let utc_tz: Tz = "UTC".parse().unwrap();
        assert_eq!(
            lunch.at(utc_tz, utc("2026-12-03T13:00:00Z")),
            QuietOutcome::DeferUntil(utc("2026-12-03T14:00:00Z"))
        );
        assert_eq!(
            lunch.at(utc_tz, utc("2026-12-03T14:00:00Z")),
            QuietOutcome::Open
        );
        let never = QuietHours {
            start: hm(9, 0),
            end: hm(9, 0),
            policy: Policy::Drop,
        };
        assert_eq!(never.at(utc_tz, now), QuietOutcome::Open);
    }

    #[test]
    fn quiet_hours_ending_in_a_skipped_hour_end_at_the_first_real_instant() {
        // Quiet until 02:30 in Madrid on the night clocks go forward (02:00 → 03:00).
        let q = QuietHours {
            start: hm(22, 0),
            end: hm(2, 30),
            policy: Policy::Defer,
        };
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        let now = utc("2026-03-28T23:30:00Z"); // 00:30 local on 03-29
        assert_eq!(
            q.at(madrid, now),
            QuietOutcome::DeferUntil(utc("2026-03-29T01:00:00Z"))
        );
    }
}
