//! When a scheduled or a date-trait journey is due, given when it was last looked at: the
//! scheduler asks this after each pause, so a run missed while every replica was down is made
//! up once (not once per missed tick).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::cron::Cron;
use super::step::date_trait_instant;
use crate::domain::localtime;

/// The firing of `cron` (in `tz`) due in `(last, now]`, if any (the latest such firing is
/// not needed: one run covers them all).
pub fn cron_due(
    cron: &Cron,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let local = last.with_timezone(&tz).naive_local();
    let next = cron.next_after(local)?;
    let at = localtime::instant(tz, next.date(), next.time());
    (at > last && at <= now).then_some(at)
}

/// The occurrence of a date trait due in `(last, now]`, if any, with the entry key that
/// makes each occurrence (each year's birthday) its own entry: `customer:YYYY-MM-DD`.
pub fn date_due(
    traits: &Map<String, Value>,
    name: &str,
    offset_days: i32,
    at: &str,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, String)> {
    let when = date_trait_instant(traits, name, offset_days, at, tz, last)?;
    (when > last && when <= now).then(|| (when, when.with_timezone(&tz).date_naive().to_string()))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_cron_fires_once_for_its_window_in_the_journeys_zone() {
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        let nine = Cron::parse("0 9 * * 1").unwrap();
        // Monday 7 December 2026, 09:00 in Madrid is 08:00 UTC.
        let fire = utc("2026-12-07T08:00:00Z");
        assert_eq!(
            cron_due(&nine, madrid, fire - Duration::minutes(1), fire),
            Some(fire)
        );
        assert_eq!(
            cron_due(&nine, madrid, fire, fire + Duration::minutes(5)),
            None
        );
        // Down for a week: made up once.
        let later = fire + Duration::days(8);
        assert_eq!(
            cron_due(&nine, madrid, fire - Duration::days(1), later),
            Some(fire)
        );
    }

    #[test]
    fn birthdays_are_due_once_a_year_with_their_own_key() {
        let utc_tz: Tz = "UTC".parse().unwrap();
        let traits = json!({"birthday": "1990-12-07"})
            .as_object()
            .cloned()
            .unwrap();
        let at = utc("2026-12-07T10:00:00Z");
        let due = date_due(
            &traits,
            "birthday",
            0,
            "10:00",
            utc_tz,
            at - Duration::minutes(1),
            at,
        );
        assert_eq!(due, Some((at, "2026-12-07".to_owned())));
        assert_eq!(
            date_due(
                &traits,
                "birthday",
                0,
                "10:00",
                utc_tz,
                at,
                at + Duration::hours(1)
            ),
            None
        );
        let renewal = json!({"renews_on": "2027-01-10"})
            .as_object()
            .cloned()
            .unwrap();
        // A week before the renewal date.
        let week_before = utc("2027-01-03T09:00:00Z");
        let due = date_due(
            &renewal,
            "renews_on",
            -7,
            "09:00",
            utc_tz,
            week_before - Duration::minutes(1),
            week_before,
        );
        assert_eq!(due.map(|d| d.0), Some(week_before));
    }
}
