//! Local times in a customer's time zone, as journeys and quiet hours need them: a local time
//! that does not exist (the hour skipped when clocks go forward) moves forward to the first
//! instant that does; one that exists twice (clocks go back) is the earlier.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant of local `date` `time` in `tz` (see the module for gaps and overlaps).
pub fn instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut local: NaiveDateTime = date.and_time(time);
    // A gap is at most a few hours wide (usually one); step forward a minute at a time.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    // Unreachable for real zones; read as UTC rather than fail.
    Utc.from_utc_datetime(&date.and_time(time))
}

/// The first instant at or after `after` whose local time in `tz` is `time` (on a day
/// `day_ok` accepts), looking up to 14 days ahead.
pub fn next_local(
    tz: Tz,
    after: DateTime<Utc>,
    time: NaiveTime,
    day_ok: impl Fn(NaiveDate) -> bool,
) -> Option<DateTime<Utc>> {
    let today = after.with_timezone(&tz).date_naive();
    (0..15)
        .filter_map(|d| today.checked_add_days(chrono::Days::new(d)))
        .filter(|day| day_ok(*day))
        .map(|day| instant(tz, day, time))
        .find(|t| *t >= after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_skipped_local_time_moves_forward_and_a_repeated_one_is_the_earlier() {
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        // 2026-03-29 02:30 does not exist in Madrid (02:00 → 03:00 CEST).
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(instant(madrid, d, hm(2, 30)), utc("2026-03-29T01:00:00Z"));
        // 2026-10-25 02:30 happens twice; the first is 00:30 UTC.
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        assert_eq!(instant(madrid, d, hm(2, 30)), utc("2026-10-25T00:30:00Z"));
        // New York 09:00 on a winter day is 14:00 UTC.
        let ny: Tz = "America/New_York".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(instant(ny, d, hm(9, 0)), utc("2026-12-03T14:00:00Z"));
    }

    #[test]
    fn the_next_local_time_is_today_or_a_later_accepted_day() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        // 2026-12-03 01:00 UTC is 10:00 in Tokyo: today's 09:00 has passed.
        let next = next_local(tokyo, utc("2026-12-03T01:00:00Z"), nine, |_| true);
        assert_eq!(next, Some(utc("2026-12-04T00:00:00Z")));
        // Only Mondays: 2026-12-07.
        let monday = next_local(tokyo, utc("2026-12-03T01:00:00Z"), nine, |d| {
            chrono::Datelike::weekday(&d) == chrono::Weekday::Mon
        });
        assert_eq!(monday, Some(utc("2026-12-07T00:00:00Z")));
    }
}
