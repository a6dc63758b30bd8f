//! Survivorship: which value of a trait wins when two profiles merge, or when an event brings a
//! value for a trait the profile already has. Each stored trait keeps its provenance (source
//! and time), so the rule can be applied again at any later merge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The per-tenant rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Survivorship {
    /// The value set most recently (by the event's `occurred_at`) wins.
    #[default]
    MostRecent,
    /// The value from the most trusted source wins (the tenant's `source_trust` list, unknown
    /// sources last); equal trust falls back to most recent.
    MostTrustedSource,
    /// The most complete value wins (present over null; longer text; more elements); equal
    /// completeness falls back to most recent.
    MostComplete,
}

/// Where a trait value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The event source that set it.
    pub source: String,
    /// When (the event's `occurred_at`).
    pub at: DateTime<Utc>,
}

/// Traits with their provenance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traits {
    /// Values.
    pub values: Map<String, Value>,
    /// Provenance per trait; a trait without one counts as oldest and least trusted.
    pub sources: Map<String, Value>,
}

impl Traits {
    fn provenance(&self, key: &str) -> Option<Provenance> {
        self.sources
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Combines `incoming` into `current` under `rule`; on a tie `current` keeps its value.
/// Returns whether any value changed.
pub fn combine(
    rule: Survivorship,
    trust: &[String],
    current: &mut Traits,
    incoming: &Traits,
) -> bool {
    let mut changed = false;
    for (key, value) in &incoming.values {
        let wins = match current.values.get(key) {
            None => true,
            Some(existing) => prefer_incoming(
                rule,
                trust,
                existing,
                current.provenance(key),
                value,
                incoming.provenance(key),
            ),
        };
        if wins {
            if current.values.get(key) != Some(value) {
                changed = true;
            }
            current.values.insert(key.clone(), value.clone());
            match incoming.sources.get(key) {
                Some(p) => current.sources.insert(key.clone(), p.clone()),
                None => current.sources.remove(key),
            };
        }
    }
    changed
}

fn prefer_incoming(
    rule: Survivorship,
    trust: &[String],
    existing: &Value,
    existing_from: Option<Provenance>,
    incoming: &Value,
    incoming_from: Option<Provenance>,
) -> bool {
    let newer = match (&existing_from, &incoming_from) {
        (Some(e), Some(i)) => i.at > e.at,
        (None, Some(_)) => true,
        _ => false,
    };
    match rule {
        Survivorship::MostRecent => newer,
        Survivorship::MostTrustedSource => {
            let rank = |p: &Option<Provenance>| {
                p.as_ref()
                    .and_then(|p| trust.iter().position(|s| *s == p.source))
                    .unwrap_or(usize::MAX)
            };
            let (e, i) = (rank(&existing_from), rank(&incoming_from));
            i < e || (i == e && newer)
        }
        Survivorship::MostComplete => {
            let (e, i) = (completeness(existing), completeness(incoming));
            i > e || (i == e && newer)
        }
    }
}

/// How complete a value is: null 0, else its size (characters, elements or keys) plus one.
fn completeness(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::String(s) => s.trim().chars().count() + 1,
        Value::Array(a) => a.len() + 1,
        Value::Object(o) => o.len() + 1,
        Value::Bool(_) | Value::Number(_) => 1,
    }
}

/// Traits of an event: each value with the event's source and time.
pub fn from_event(values: &Map<String, Value>, source: &str, at: DateTime<Utc>) -> Traits {
    let provenance = serde_json::json!({ "source": source, "at": at });
    Traits {
        values: values.clone(),
        sources: values
            .keys()
            .map(|k| (k.clone(), provenance.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    fn traits(pairs: &[(&str, Value)], source: &str, day: u32) -> Traits {
        let values: Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        from_event(&values, source, at(day))
    }

    #[test]
    fn most_recent_ignores_late_arrivals() {
        let mut current = traits(&[("city", json!("Porto"))], "web", 10);
        let late = traits(
            &[("city", json!("Lisboa")), ("plan", json!("pro"))],
            "crm",
            5,
        );
        assert!(combine(Survivorship::MostRecent, &[], &mut current, &late));
        assert_eq!(current.values["city"], json!("Porto"));
        assert_eq!(current.values["plan"], json!("pro"));
        let newer = traits(&[("city", json!("Braga"))], "crm", 11);
        combine(Survivorship::MostRecent, &[], &mut current, &newer);
        assert_eq!(current.values["city"], json!("Braga"));
        assert_eq!(current.sources["city"]["source"], json!("crm"));
    }

    #[test]
    fn most_trusted_source_then_most_recent() {
        let trust = vec!["crm".to_owned(), "web".to_owned()];
        let mut current = traits(&[("name", json!("Ana Lima"))], "crm", 1);
        let web = traits(&[("name", json!("ana"))], "web", 9);
        assert!(!combine(
            Survivorship::MostTrustedSource,
            &trust,
            &mut current,
            &web
        ));
        assert_eq!(current.values["name"], json!("Ana Lima"));
        let crm = traits(&[("name", json!("Ana M. Lima"))], "crm", 2);
        combine(Survivorship::MostTrustedSource, &trust, &mut current, &crm);
        assert_eq!(current.values["name"], json!("Ana M. Lima"));
    }

    #[test]
    fn most_complete() {
        let mut current = traits(&[("address", json!("1 Main St, Porto"))], "crm", 1);
        let short = traits(&[("address", json!("Porto"))], "web", 9);
        combine(Survivorship::MostComplete, &[], &mut current, &short);
        assert_eq!(current.values["address"], json!("1 Main St, Porto"));
        let null = traits(&[("address", Value::Null)], "web", 10);
        combine(Survivorship::MostComplete, &[], &mut current, &null);
        assert_eq!(current.values["address"], json!("1 Main St, Porto"));
    }

    proptest! {
        /// Under most-recent, the outcome of combining events does not depend on the order in
        /// which they arrive: each trait ends with the value of its latest event.
        #[test]
        fn most_recent_is_order_independent(days in proptest::collection::vec((1u32..28, 0u8..3), 1..8)) {
            let events: Vec<Traits> = days
                .iter()
                .enumerate()
                .map(|(n, (day, v))| {
                    // Distinct times so "latest" is unique.
                    let mut t = traits(&[("k", json!(v))], "s", *day);
                    t.sources["k"]["at"] = json!(at(*day) + chrono::Duration::seconds(n as i64));
                    t
                })
                .collect();
            let mut forward = Traits::default();
            for e in &events { combine(Survivorship::MostRecent, &[], &mut forward, e); }
            let mut backward = Traits::default();
            for e in events.iter().rev() { combine(Survivorship::MostRecent, &[], &mut backward, e); }
            prop_assert_eq!(&forward.values, &backward.values);
        }
    }
}
