//! Standardising the traits an event brings: person names to their display form, dates of
//! birth to ISO 8601. An invalid value stays as received (and is flagged by the caller).

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{birth_date, name_display, Checked};

/// Traits holding a person's name.
pub const NAME_TRAITS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "given_name",
    "surname",
    "middle_name",
];

/// Traits holding a date of birth.
pub const BIRTH_DATE_TRAITS: &[&str] = &["date_of_birth", "birthday", "birth_date", "dob"];

/// Standardises the known traits of `traits` in place and returns, per standardised trait,
/// its name, the value as received and the result.
pub fn standardise_traits(
    traits: &mut Map<String, Value>,
    today: NaiveDate,
) -> Vec<(String, String, Checked)> {
    let mut checks = Vec::new();
    for (key, value) in traits.iter_mut() {
        let Value::String(raw) = value else {
            continue;
        };
        let checked = if NAME_TRAITS.contains(&key.as_str()) {
            name_display(raw)
        } else if BIRTH_DATE_TRAITS.contains(&key.as_str()) {
            birth_date(raw, today)
        } else {
            continue;
        };
        let received = raw.clone();
        if checked.is_valid() {
            *raw = checked.value.clone();
        }
        checks.push((key.clone(), received, checked));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::standardise::Quality;
    use serde_json::json;

    #[test]
    fn names_and_dates_are_standardised_invalid_kept() {
        let mut traits = json!({
            "first_name": "  ANA ", "last_name": "Lima", "birthday": "19860810",
            "dob": "31/31/1990", "plan": "PRO", "name": 42
        })
        .as_object()
        .cloned()
        .unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let mut checks = standardise_traits(&mut traits, today);
        checks.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(traits["first_name"], "Ana");
        assert_eq!(traits["birthday"], "1986-08-10");
        assert_eq!(traits["dob"], "31/31/1990");
        assert_eq!(traits["plan"], "PRO");
        assert_eq!(traits["name"], 42);
        let summary: Vec<(&str, Quality)> = checks
            .iter()
            .map(|(k, _, c)| (k.as_str(), c.quality))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("birthday", Quality::Standardised),
                ("dob", Quality::Invalid),
                ("first_name", Quality::Standardised),
                ("last_name", Quality::Valid),
            ]
        );
    }
}
