//! Five-field cron (`minute hour day-of-month month day-of-week`) for scheduled journeys, read
//! in the journey's time zone: numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists
//! `a,b`; day of week 0–7 (0 and 7 are Sunday). As in Vixie cron, when both day fields are
//! restricted a day matches either. Nothing else (no names, no `L`, `W` or `#`).

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl Cron {
    /// Parses `expr`, or says which field is wrong and why.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "a cron has 5 fields (minute hour day-of-month month day-of-week), this one has {}",
                fields.len()
            ));
        };
        let mut weekdays = field(dow, 0, 7, "day of week")?;
        for d in &mut weekdays {
            if *d == 7 {
                *d = 0;
            }
        }
        weekdays.sort_unstable();
        weekdays.dedup();
        Ok(Self {
            minutes: field(m, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day of month")?,
            months: field(mon, 1, 12, "month")?,
            weekdays,
            days_restricted: *dom != "*",
            weekdays_restricted: *dow != "*",
        })
    }

    /// Whether the schedule fires on `day` (any time of it).
    fn day_matches(&self, day: NaiveDate) -> bool {
        if !self.months.contains(&day.month()) {
            return false;
        }
        let dom = self.days.contains(&day.day());
        let dow = self
            .weekdays
            .contains(&day.weekday().num_days_from_sunday());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first firing strictly after `after` (local time, to the minute), within five years;
    /// `None` for a schedule that never fires (such as `0 0 31 2 *`).
    pub fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start_day = after.date();
        for offset in 0..(366 * 5) {
            let day = start_day.checked_add_days(Days::new(offset))?;
            if !self.day_matches(day) {
                continue;
            }
            for &h in &self.hours {
                for &m in &self.minutes {
                    let at = day.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
                    if at > after {
                        return Some(at);
                    }
                }
            }
        }
        None
    }

    /// Whether the schedule fires at `at` (to the minute).
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        self.day_matches(at.date())
            && self.hours.contains(&at.hour())
            && self.minutes.contains(&at.minute())
    }
}

/// The sorted values of one field.
fn field(text: &str, min: u32, max: u32, name: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step `{s}` is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, min, max, name)?, number(b, min, max, name)?)
        } else {
            let n = number(range, min, max, name)?;
            (n, if part.contains('/') { max } else { n })
        };
        if lo > hi {
            return Err(format!("{name}: range `{range}` goes backwards"));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn number(text: &str, min: u32, max: u32, name: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{name}: `{text}` is not a number from {min} to {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn fields_ranges_steps_and_lists() {
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // Friday 2026-12-04 17:50 → Monday 09:00.
        assert_eq!(
            c.next_after(at("2026-12-04 17:50")),
            Some(at("2026-12-07 09:00"))
        );
        assert_eq!(
            c.next_after(at("2026-12-07 09:00")),
            Some(at("2026-12-07 09:15"))
        );
        let sunday = Cron::parse("0 10 * * 7").unwrap();
        assert_eq!(
            sunday.next_after(at("2026-12-03 00:00")),
            Some(at("2026-12-06 10:00"))
        );
        // Both day fields restricted: either matches.
        let either = Cron::parse("0 0 1 * 1").unwrap();
        assert_eq!(
            either.next_after(at("2026-12-03 00:00")),
            Some(at("2026-12-07 00:00"))
        );
        assert!(either.matches(at("2027-01-01 00:00")));
        assert_eq!(
            Cron::parse("0 0 31 2 *")
                .unwrap()
                .next_after(at("2026-01-01 00:00")),
            None
        );
    }

    #[test]
    fn bad_fields_are_named() {
        for (expr, says) in [
            ("* * * *", "5 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("MON * * * *", "minute"),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }

    proptest! {
        #[test]
        fn the_next_firing_is_later_and_matches(
            m in 0u32..60, h in 0u32..24, step in 1u32..30, dow in 0u32..8,
            day in 0u64..2000, minute in 0u32..1440,
        ) {
            let expr = format!("{m}/{step} {h} * * {dow}");
            let c = Cron::parse(&expr).unwrap();
            let after = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                .checked_add_days(Days::new(day)).unwrap()
                .and_hms_opt(minute / 60, minute % 60, 0).unwrap();
            let next = c.next_after(after).unwrap();
            prop_assert!(next > after);
            prop_assert!(c.matches(next));
            prop_assert!(next - after <= chrono::Duration::days(8));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(s in "\\PC{0,40}") {
            let _ = Cron::parse(&s);
        }
    }
}
