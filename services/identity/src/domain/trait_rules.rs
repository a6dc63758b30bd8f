//! Per-trait write rules an event may carry (a survey answer's mapped fields, issue 18):
//! `context.trait_rules` names, per trait, `overwrite`, `if_empty` or `append`, and
//! `context.verified: false` marks the event's values as unverified (an anonymous answer: who
//! typed that email is not known). Traits the rules do not name go through the tenant's
//! survivorship rule as before.
//!
//! A value written by an unverified event keeps `"verified": false` in its provenance. An
//! unverified event never replaces a verified value: its `overwrite` acts as `if_empty` on
//! such a trait. `append` adds without removing anything, so it is allowed.

use serde_json::{Map, Value};

use crate::domain::survivorship::Traits;

/// One trait's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Replace the value.
    Overwrite,
    /// Write only when the trait has no value.
    IfEmpty,
    /// Add to the trait's list (a single value becomes a list), without repeats.
    Append,
}

impl Rule {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "overwrite" => Some(Self::Overwrite),
            "if_empty" => Some(Self::IfEmpty),
            "append" => Some(Self::Append),
            _ => None,
        }
    }
}

/// The rules an event's context carries (unknown rule names are left to survivorship).
pub fn rules_of(context: &Map<String, Value>) -> Vec<(String, Rule)> {
    context
        .get("trait_rules")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Rule::parse(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the event's values are verified (all are, unless `context.verified` is `false`).
pub fn verified(context: &Map<String, Value>) -> bool {
    context.get("verified") != Some(&Value::Bool(false))
}

fn empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn is_verified(current: &Traits, key: &str) -> bool {
    current.sources.get(key).and_then(|p| p.get("verified")) != Some(&Value::Bool(false))
}

/// Applies the ruled traits of `incoming` to `current` and takes them out of `incoming` (what
/// is left goes to survivorship). `unverified` marks the written values' provenance. Whether
/// any value changed.
pub fn apply(
    rules: &[(String, Rule)],
    event_verified: bool,
    current: &mut Traits,
    incoming: &mut Traits,
) -> bool {
    let mut changed = false;
    for (key, rule) in rules {
        let Some(value) = incoming.values.remove(key) else {
            continue;
        };
        let mut provenance = incoming.sources.remove(key).unwrap_or(Value::Null);
        if !event_verified {
            if let Value::Object(p) = &mut provenance {
                p.insert("verified".into(), Value::Bool(false));
            }
        }
        let existing = current.values.get(key);
        let was_empty = empty(existing);
        let protected = !event_verified && !was_empty && is_verified(current, key);
        let next = match rule {
            Rule::Overwrite if !protected => Some(value),
            Rule::Overwrite | Rule::IfEmpty => empty(existing).then_some(value),
            Rule::Append => {
                let mut list: Vec<Value> = match existing {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a.clone(),
                    Some(v) => vec![v.clone()],
                };
                let added: Vec<Value> = match value {
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    v => vec![v],
                };
                for v in added {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                Some(Value::Array(list))
            }
        };
        let Some(next) = next else { continue };
        if current.values.get(key) == Some(&next) {
            continue;
        }
        changed = true;
        current.values.insert(key.clone(), next);
        // An append onto a verified list keeps its verified provenance: nothing was replaced.
        if !(matches!(rule, Rule::Append) && is_verified(current, key) && !was_empty) {
            current.sources.insert(key.clone(), provenance);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::survivorship::from_event;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn traits(v: Value, day: u32) -> Traits {
        let values = v.as_object().cloned().unwrap_or_default();
        from_event(
            &values,
            "api",
            Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
        )
    }

    fn rules(v: Value) -> Vec<(String, Rule)> {
        let mut context = Map::new();
        context.insert("trait_rules".into(), v);
        rules_of(&context)
    }

    #[test]
    fn each_rule_writes_as_named() {
        let mut current = traits(json!({"colour": "red", "size": "m", "sports": "run"}), 1);
        let mut incoming = traits(
            json!({"colour": "blue", "size": "l", "sports": ["swim", "run"], "city": "Lima",
                   "plan": "pro"}),
            2,
        );
        let r = rules(
            json!({"colour": "overwrite", "size": "if_empty", "sports": "append",
                             "city": "if_empty", "plan": "nonsense"}),
        );
        assert!(apply(&r, true, &mut current, &mut incoming));
        assert_eq!(current.values["colour"], "blue");
        assert_eq!(current.values["size"], "m");
        assert_eq!(current.values["sports"], json!(["run", "swim"]));
        assert_eq!(current.values["city"], "Lima");
        // `plan` has no known rule: left for survivorship.
        assert_eq!(incoming.values.keys().collect::<Vec<_>>(), ["plan"]);
    }

    #[test]
    fn an_unverified_answer_never_replaces_a_verified_value() {
        let mut current = traits(json!({"colour": "red", "sports": ["run"]}), 1);
        let mut anonymous = traits(json!({"colour": "blue", "sports": "ride", "size": "s"}), 2);
        let r = rules(json!({"colour": "overwrite", "sports": "append", "size": "overwrite"}));
        let mut context = Map::new();
        context.insert("verified".into(), json!(false));
        assert!(!verified(&context));
        apply(&r, false, &mut current, &mut anonymous);
        assert_eq!(current.values["colour"], "red");
        assert_eq!(current.values["sports"], json!(["run", "ride"]));
        assert_ne!(current.sources["sports"]["verified"], json!(false));
        assert_eq!(current.values["size"], "s");
        assert_eq!(current.sources["size"]["verified"], json!(false));
        // An unverified value may be replaced by a later unverified answer, and by a verified one.
        let mut again = traits(json!({"size": "l"}), 3);
        apply(&r, false, &mut current, &mut again);
        assert_eq!(current.values["size"], "l");
        let mut verified_answer = traits(json!({"colour": "green", "size": "xl"}), 4);
        apply(&r, true, &mut current, &mut verified_answer);
        assert_eq!(current.values["colour"], "green");
        assert_eq!(current.values["size"], "xl");
        assert_eq!(current.sources["size"].get("verified"), None);
    }
}
