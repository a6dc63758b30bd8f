//! Dates of birth, standardised to ISO 8601 (`YYYY-MM-DD`).

use chrono::{Datelike, NaiveDate};

use super::Checked;

/// Accepts `YYYY-MM-DD`, `YYYYMMDD`, `YYYY/MM/DD` and `DD.MM.YYYY`; day-first and month-first
/// slashed forms are ambiguous and flagged invalid rather than guessed. A date in the future
/// of `today` or more than 130 years before it is invalid.
pub fn birth_date(raw: &str, today: NaiveDate) -> Checked {
    let s = raw.trim();
    let parsed = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d").ok()
    } else {
        ["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y"]
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
    };
    match parsed {
        Some(d) if d <= today && today.year() - d.year() <= 130 => {
            Checked::valid(raw, d.format("%Y-%m-%d").to_string())
        }
        _ => Checked::invalid(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::standardise::Quality;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(birth_date("1986-08-10", today()).quality, Quality::Valid);
        let c = birth_date("19860810", today());
        assert_eq!(
            (c.value.as_str(), c.quality),
            ("1986-08-10", Quality::Standardised)
        );
        assert_eq!(birth_date("10.08.1986", today()).value, "1986-08-10");
        for bad in [
            "19231164",
            "08/10/1986",
            "2030-01-01",
            "1800-01-01",
            "",
            "soon",
        ] {
            let c = birth_date(bad, today());
            assert_eq!(
                (c.value.as_str(), c.quality),
                (bad, Quality::Invalid),
                "{bad}"
            );
        }
    }
}
