//! Checking a rule when it is saved: it parses into the closed types (unknown fields refused),
//! and its depth, size and values are within bounds. Errors name the faulty node by JSON path.

use serde::Serialize;
use serde_json::Value;

use crate::{AggregateCondition, EventCondition, MatchOp, Metric, RfmCondition, Rule};

/// Bounds on rules (per tenant settings may lower the retention).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of `all` / `any` / `not` (the root is depth 1).
    pub max_depth: usize,
    /// Most nodes in one rule.
    pub max_nodes: usize,
    /// Most entries in one list (`in`, `any_of`, combinators).
    pub max_list: usize,
    /// Longest name or string value.
    pub max_string: usize,
    /// Longest event window in days: events are kept this long.
    pub retention_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_nodes: 200,
            max_list: 100,
            max_string: 200,
            retention_days: 365,
        }
    }
}

/// Why a rule was refused, and where (`/all/1/event/within_days`).
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[error("{path}: {message}")]
pub struct RuleError {
    /// JSON path of the faulty node (`""` for the whole rule).
    pub path: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

/// Parses a rule from JSON text and validates it with default limits and `retention_days`.
pub fn parse(json: &str) -> Result<Rule, RuleError> {
    let value: Value = serde_json::from_str(json).map_err(|e| RuleError {
        path: String::new(),
        message: format!("not JSON: {e}"),
    })?;
    from_value(value, &Limits::default())
}

/// Parses and validates a rule already read as JSON.
pub fn from_value(value: Value, limits: &Limits) -> Result<Rule, RuleError> {
    // Refuse oversized documents before deserialising them.
    let (depth, nodes) = shape(&value, 1);
    if depth > limits.max_depth * 3 + 4 || nodes > limits.max_nodes * 20 {
        return Err(RuleError {
            path: String::new(),
            message: format!(
                "rule too large: at most {} nested levels and {} conditions",
                limits.max_depth, limits.max_nodes
            ),
        });
    }
    let rule: Rule = serde_path_to_error::deserialize(value).map_err(|e| RuleError {
        path: pointer(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    validate(&rule, limits)?;
    Ok(rule)
}

/// Depth and node count of a JSON value.
fn shape(v: &Value, depth: usize) -> (usize, usize) {
    let children: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return (depth, 1),
    };
    children.iter().fold((depth, 1), |(d, n), c| {
        let (cd, cn) = shape(c, depth + 1);
        (d.max(cd), n + cn)
    })
}

/// serde_path_to_error's `all[1].event.within_days` as a JSON pointer.
fn pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            let (name, tail) = rest.split_at(open);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            let close = tail.find(']').unwrap_or(tail.len());
            out.push('/');
            out.push_str(tail.get(1..close).unwrap_or(""));
            rest = tail.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Checks bounds and values of a parsed rule.
pub fn validate(rule: &Rule, limits: &Limits) -> Result<(), RuleError> {
    let mut nodes = 0;
    check(rule, "", 1, limits, &mut nodes)
}

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        path: path.into(),
        message: message.into(),
    })
}

/// Checks one node and, through [`check`] again, its children.
fn check(
    rule: &Rule,
    path: &str,
    depth: usize,
    l: &Limits,
    nodes: &mut usize,
) -> Result<(), RuleError> {
    *nodes += 1;
    if *nodes > l.max_nodes {
        return fail(
            path,
            format!("rule too large: at most {} conditions", l.max_nodes),
        );
    }
    if depth > l.max_depth {
        return fail(
            path,
            format!("rule too deep: at most {} nested levels", l.max_depth),
        );
    }
    match rule {
        Rule::All(rules) | Rule::Any(rules) => {
            let key = if matches!(rule, Rule::All(_)) {
                "all"
            } else {
                "any"
            };
            let here = format!("{path}/{key}");
            list(rules.len(), &here, l)?;
            for (i, r) in rules.iter().enumerate() {
                check(r, &format!("{here}/{i}"), depth + 1, l, nodes)?;
            }
            Ok(())
        }
        Rule::Not(r) => check(r, &format!("{path}/not"), depth + 1, l, nodes),
        Rule::Trait(c) => {
            let here = format!("{path}/trait");
            name(&c.name, &format!("{here}/name"), l)?;
            operand(c.op, c.value.as_ref(), &here, l)
        }
        Rule::Aggregate(c) => check_aggregate(c, &format!("{path}/aggregate"), l),
        Rule::BoughtCategory(c) => names(&c.any_of, &format!("{path}/bought_category/any_of"), l),
        Rule::Event(c) => check_event(c, &format!("{path}/event"), l),
        Rule::Rfm(c) => check_rfm(c, &format!("{path}/rfm"), l),
        Rule::Stage(c) => list(c.stages.len(), &format!("{path}/stage/in"), l),
        Rule::LeadScore(c) => number(c.value, &format!("{path}/lead_score/value")),
        Rule::LoyaltyTier(c) => names(&c.tiers, &format!("{path}/loyalty_tier/in"), l),
        Rule::Value(c) => number(c.value, &format!("{path}/value/value")),
        Rule::Segment(_) => Ok(()),
        Rule::Consent(c) => {
            let here = format!("{path}/consent");
            name(&c.purpose, &format!("{here}/purpose"), l)?;
            match &c.channel {
                Some(ch) => name(ch, &format!("{here}/channel"), l),
                None => Ok(()),
            }
        }
        Rule::Context(c) => {
            let here = format!("{path}/context");
            name(&c.field, &format!("{here}/field"), l)?;
            operand(c.op, c.value.as_ref(), &here, l)
        }
    }
}

/// A list that is neither empty nor longer than the limit.
fn list(len: usize, at: &str, l: &Limits) -> Result<(), RuleError> {
    if len == 0 {
        return fail(at, "must not be empty");
    }
    if len > l.max_list {
        return fail(at, format!("at most {} entries", l.max_list));
    }
    Ok(())
}

/// A name that is neither blank nor longer than the limit.
fn name(s: &str, at: &str, l: &Limits) -> Result<(), RuleError> {
    if s.trim().is_empty() {
        return fail(at, "must not be empty");
    }
    if s.len() > l.max_string {
        return fail(at, format!("at most {} characters", l.max_string));
    }
    Ok(())
}

/// A list of names, each checked by [`name`].
fn names(items: &[String], at: &str, l: &Limits) -> Result<(), RuleError> {
    list(items.len(), at, l)?;
    for (i, s) in items.iter().enumerate() {
        name(s, &format!("{at}/{i}"), l)?;
    }
    Ok(())
}

/// A finite number.
fn number(x: f64, at: &str) -> Result<(), RuleError> {
    if x.is_finite() {
        Ok(())
    } else {
        fail(at, "must be a finite number")
    }
}

/// `count` and `sum` name their event; the other metrics do not.
fn check_aggregate(c: &AggregateCondition, here: &str, l: &Limits) -> Result<(), RuleError> {
    number(c.value, &format!("{here}/value"))?;
    let needs_event = matches!(c.metric, Metric::Count | Metric::Sum);
    match (&c.event, needs_event) {
        (Some(e), true) => name(e, &format!("{here}/event"), l),
        (None, true) => fail(
            format!("{here}/event"),
            "`count` and `sum` need the event name",
        ),
        (Some(_), false) => fail(
            format!("{here}/event"),
            "only `count` and `sum` take an event name",
        ),
        (None, false) => Ok(()),
    }
}

/// Bounds that make sense, one window within the retention, filters only with a window.
fn check_event(c: &EventCondition, here: &str, l: &Limits) -> Result<(), RuleError> {
    name(&c.name, &format!("{here}/name"), l)?;
    if c.at_least.is_none() && c.at_most.is_none() {
        return fail(here, "give `at_least`, `at_most` or both");
    }
    if let (Some(min), Some(max)) = (c.at_least, c.at_most) {
        if min > max {
            return fail(format!("{here}/at_least"), "must not exceed `at_most`");
        }
    }
    if c.within_days.is_some() && c.between.is_some() {
        return fail(here, "give `within_days` or `between`, not both");
    }
    if let Some(d) = c.within_days {
        if d == 0 || d > l.retention_days {
            return fail(
                format!("{here}/within_days"),
                format!(
                    "must be 1 to {} (events are kept {} days)",
                    l.retention_days, l.retention_days
                ),
            );
        }
    }
    if let Some(b) = c.between {
        if b.from >= b.to {
            return fail(format!("{here}/between"), "`from` must be before `to`");
        }
    }
    if !c.filters.is_empty() && c.within_days.is_none() && c.between.is_none() {
        return fail(
            here,
            "property filters need a window: `within_days` or `between`",
        );
    }
    if c.filters.len() > l.max_list {
        return fail(
            format!("{here}/where"),
            format!("at most {} filters", l.max_list),
        );
    }
    for (i, f) in c.filters.iter().enumerate() {
        let at = format!("{here}/where/{i}");
        name(&f.property, &format!("{at}/property"), l)?;
        if f.property.matches('.').count() > 1 {
            return fail(format!("{at}/property"), "at most one `.`: `list.field`");
        }
        operand(f.op, f.value.as_ref(), &at, l)?;
    }
    Ok(())
}

/// At least one of the scores or groups, scores 1 to 5.
fn check_rfm(c: &RfmCondition, here: &str, l: &Limits) -> Result<(), RuleError> {
    if c.r.is_none() && c.f.is_none() && c.m.is_none() && c.group.is_none() {
        return fail(here, "give at least one of `r`, `f`, `m`, `group`");
    }
    for (key, scores) in [("r", &c.r), ("f", &c.f), ("m", &c.m)] {
        if let Some(scores) = scores {
            list(scores.len(), &format!("{here}/{key}"), l)?;
            if let Some(i) = scores.iter().position(|s| !(1..=5).contains(s)) {
                return fail(format!("{here}/{key}/{i}"), "scores are 1 to 5");
            }
        }
    }
    if let Some(g) = &c.group {
        list(g.len(), &format!("{here}/group"), l)?;
    }
    Ok(())
}

/// The value an operator needs: none for `exists`/`missing`, a list of scalars for `in`, a
/// scalar otherwise.
fn operand(op: MatchOp, value: Option<&Value>, at: &str, l: &Limits) -> Result<(), RuleError> {
    let here = format!("{at}/value");
    let scalar = |v: &Value, at: &str| -> Result<(), RuleError> {
        match v {
            Value::String(s) if s.len() > l.max_string => {
                fail(at, format!("at most {} characters", l.max_string))
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
            _ => fail(at, "must be a string, number or boolean"),
        }
    };
    match (op, value) {
        (MatchOp::Exists | MatchOp::Missing, None) => Ok(()),
        (MatchOp::Exists | MatchOp::Missing, Some(_)) => {
            fail(here, "`exists` and `missing` take no value")
        }
        (_, None) => fail(here, "this operator needs a value"),
        (MatchOp::In, Some(Value::Array(items))) => {
            if items.is_empty() || items.len() > l.max_list {
                return fail(here, format!("`in` takes 1 to {} values", l.max_list));
            }
            for (i, v) in items.iter().enumerate() {
                scalar(v, &format!("{here}/{i}"))?;
            }
            Ok(())
        }
        (MatchOp::In, Some(_)) => fail(here, "`in` takes a list"),
        (MatchOp::Gt | MatchOp::Gte | MatchOp::Lt | MatchOp::Lte, Some(v))
            if !(v.is_number() || v.is_string()) =>
        {
            fail(
                here,
                "order comparisons take a number or a string (ISO dates)",
            )
        }
        (MatchOp::StartsWith, Some(v)) if !v.is_string() => {
            fail(here, "`starts_with` takes a string")
        }
        (_, Some(v)) => scalar(v, &here),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> RuleError {
        from_value(v, &Limits::default()).unwrap_err()
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused_with_their_path() {
        let e = err(
            json!({"all": [{"trait": {"name": "a", "op": "eq", "value": 1}},
                                   {"trait": {"name": "a", "op": "eq", "value": 1, "script": "x"}}]}),
        );
        assert_eq!(e.path, "/all/1/trait/script");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = err(json!({"all": [{"javascript": "1"}]}));
        assert_eq!(e.path, "/all/0");
        assert!(e.message.contains("javascript"), "{e}");
        let e = err(json!({"any": [{"event": {"name": "x", "at_least": -1}}]}));
        assert_eq!(e.path, "/any/0/event/at_least");
        let e = err(json!({"trait": {"name": "a", "op": "matches_regex", "value": ".*"}}));
        assert_eq!(e.path, "/trait/op");
    }

    #[test]
    fn consent_and_context_nodes_are_checked_and_leaves_carry_their_paths() {
        let e = err(json!({"consent": {"purpose": " "}}));
        assert_eq!(e.path, "/consent/purpose");
        let e = err(json!({"context": {"field": "page", "op": "in", "value": "home"}}));
        assert_eq!(e.path, "/context/value");
        let e = err(json!({"context": {"field": "page", "op": "eq", "value": "x", "js": 1}}));
        assert_eq!(e.path, "/context/js");
        let rule = from_value(
            json!({"all": [{"consent": {"purpose": "marketing", "channel": "email"}},
                           {"not": {"any": [{"stage": {"in": ["lapsed"]}},
                                            {"context": {"field": "channel", "op": "eq", "value": "web"}}]}}]}),
            &Limits::default(),
        )
        .unwrap();
        let leaves: Vec<(String, &str)> = rule
            .leaves()
            .into_iter()
            .map(|(p, r)| (p, r.kind()))
            .collect();
        assert_eq!(
            leaves,
            vec![
                ("/all/0".to_owned(), "consent"),
                ("/all/1/not/any/0".to_owned(), "stage"),
                ("/all/1/not/any/1".to_owned(), "context"),
            ]
        );
        let root = from_value(
            json!({"segment": {"id": uuid::Uuid::nil()}}),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(root.leaves()[0].0, "");
    }

    #[test]
    fn values_and_bounds_are_checked() {
        let e = err(
            json!({"all": [{"event": {"name": "Order Completed", "at_least": 1, "within_days": 9999}}]}),
        );
        assert_eq!(e.path, "/all/0/event/within_days");
        let e = err(json!({"event": {"name": "x", "within_days": 3}}));
        assert_eq!(e.path, "/event");
        let e = err(json!({"event": {"name": "x", "at_least": 3, "at_most": 1}}));
        assert_eq!(e.path, "/event/at_least");
        let e = err(
            json!({"event": {"name": "x", "at_least": 1, "where": [{"property": "p", "op": "eq", "value": 1}]}}),
        );
        assert!(e.message.contains("window"), "{e}");
        let e = err(json!({"trait": {"name": "a", "op": "in", "value": "x"}}));
        assert_eq!(e.path, "/trait/value");
        let e = err(json!({"trait": {"name": "a", "op": "exists", "value": 1}}));
        assert_eq!(e.path, "/trait/value");
        let e = err(json!({"rfm": {"r": [4, 6]}}));
        assert_eq!(e.path, "/rfm/r/1");
        let e = err(json!({"any": []}));
        assert_eq!(e.path, "/any");
        let e = err(json!({"aggregate": {"metric": "count", "op": "gte", "value": 1}}));
        assert_eq!(e.path, "/aggregate/event");
        let e = err(json!({"trait": {"name": "a", "op": "eq", "value": {"$where": "1"}}}));
        assert_eq!(e.path, "/trait/value");
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut deep = json!({"trait": {"name": "a", "op": "exists"}});
        for _ in 0..10 {
            deep = json!({"not": deep});
        }
        let e = err(deep);
        assert!(e.message.contains("deep"), "{e}");
        let wide: Vec<Value> = (0..150)
            .map(|_| json!({"trait": {"name": "a", "op": "exists"}}))
            .collect();
        let e = err(json!({"any": [{"any": wide.clone()}, {"any": wide}]}));
        assert!(
            e.message.contains("large") || e.message.contains("entries"),
            "{e}"
        );
        let huge = "[".repeat(10_000);
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn valid_rules_round_trip() {
        let v = json!({"all": [
            {"event": {"name": "Order Completed", "where": [{"property": "products.category", "op": "in", "value": ["shoes"]}], "at_least": 2, "within_days": 90}},
            {"not": {"stage": {"in": ["lapsed"]}}},
            {"value": {"metric": "probability_alive", "op": "lt", "value": 0.3}},
            {"segment": {"id": "0194a3b0-0000-7000-8000-000000000000"}}
        ]});
        let rule = from_value(v.clone(), &Limits::default()).unwrap();
        assert_eq!(serde_json::to_value(&rule).unwrap(), v);
    }

    #[test]
    fn pointers_from_serde_paths() {
        assert_eq!(
            pointer("all[1].event.within_days"),
            "/all/1/event/within_days"
        );
        assert_eq!(pointer("."), "");
        assert_eq!(pointer("any[0]"), "/any/0");
    }
}
