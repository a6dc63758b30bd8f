//! Lead scoring: points for behaviour (events, decaying with their age) and for fit (traits),
//! a threshold that marks qualified leads, and the explanation of every score.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::facts::Facts;
use crate::domain::rules::filter::filter_holds;
use crate::domain::rules::value_matches;
use crate::domain::rules::{MatchOp, PropertyFilter};

/// A tenant's lead scoring rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadScoring {
    /// Points per matching event, halved every `half_life_days` of the event's age.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub behaviour: Vec<BehaviourRule>,
    /// Points when a trait matches (no decay).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub fit: Vec<FitRule>,
    /// Days after which an event's points are halved (default 30).
    #[serde(default = "default_half_life")]
    pub half_life_days: f64,
    /// A score at or above this marks a qualified lead (default 50).
    #[serde(default = "default_qualified")]
    pub qualified_at: f64,
}

fn default_half_life() -> f64 {
    30.0
}

fn default_qualified() -> f64 {
    50.0
}

impl Default for LeadScoring {
    fn default() -> Self {
        Self {
            behaviour: Vec::new(),
            fit: Vec::new(),
            half_life_days: default_half_life(),
            qualified_at: default_qualified(),
        }
    }
}

/// `{"label": "pricing visits", "event": "Page Viewed", "where": [...], "points": 5, "max_events": 10}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourRule {
    /// Shown in explanations.
    pub label: String,
    /// The event name.
    pub event: String,
    /// Property filters, all of which must hold.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<PropertyFilter>,
    /// Points per event when fresh (may be negative, e.g. for unsubscribes).
    pub points: f64,
    /// At most this many of the newest matching events count (default 20).
    #[serde(default = "default_max_events")]
    pub max_events: u32,
}

fn default_max_events() -> u32 {
    20
}

/// `{"label": "director", "trait": "job_title", "op": "contains", "value": "director", "points": 15}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRule {
    /// Shown in explanations.
    pub label: String,
    /// The trait's name.
    #[serde(rename = "trait")]
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value (absent for `exists` / `missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Points when it matches.
    pub points: f64,
}

/// A score and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeadScore {
    /// The score, rounded to 2 decimals.
    pub total: f64,
    /// Whether it reaches the qualification threshold.
    pub qualified: bool,
    /// One line per rule that gave points.
    pub explanation: Vec<Contribution>,
}

/// What one rule gave.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    /// The rule's label.
    pub label: String,
    /// `behaviour` or `fit`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Matching events counted (behaviour rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u32>,
    /// Points given now, after decay, rounded to 2 decimals.
    pub points: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl LeadScoring {
    /// What is wrong with these rules, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(self.half_life_days.is_finite() && self.half_life_days > 0.0) {
            return Some("half_life_days must be a positive number".into());
        }
        if !self.qualified_at.is_finite() {
            return Some("qualified_at must be a number".into());
        }
        if self.behaviour.len() + self.fit.len() > 100 {
            return Some("at most 100 rules".into());
        }
        for (i, r) in self.behaviour.iter().enumerate() {
            if r.label.trim().is_empty() || r.event.trim().is_empty() || !r.points.is_finite() {
                return Some(format!(
                    "behaviour/{i}: label, event and a finite points are required"
                ));
            }
            if r.filters.len() > 20 || r.max_events == 0 || r.max_events > 1000 {
                return Some(format!(
                    "behaviour/{i}: at most 20 filters and max_events 1 to 1000"
                ));
            }
        }
        for (i, r) in self.fit.iter().enumerate() {
            if r.label.trim().is_empty() || r.name.trim().is_empty() || !r.points.is_finite() {
                return Some(format!(
                    "fit/{i}: label, trait and a finite points are required"
                ));
            }
            let needs_value = !matches!(r.op, MatchOp::Exists | MatchOp::Missing);
            if needs_value != r.value.is_some() {
                return Some(format!(
                    "fit/{i}: `value` is required except for exists / missing"
                ));
            }
        }
        None
    }

    /// Whether any rule is configured.
    pub fn is_configured(&self) -> bool {
        !self.behaviour.is_empty() || !self.fit.is_empty()
    }

    /// The score of `facts` at `now` with its explanation. An event's points are
    /// `points × 0.5^(age_days / half_life_days)`; events dated after `now` do not count yet.
    pub fn score(&self, facts: &Facts, now: DateTime<Utc>) -> LeadScore {
        let mut explanation = Vec::new();
        let mut total = 0.0;
        for rule in &self.behaviour {
            let mut matching: Vec<_> = facts
                .events
                .iter()
                .filter(|e| e.name == rule.event && e.at <= now)
                .filter(|e| rule.filters.iter().all(|f| filter_holds(f, e)))
                .collect();
            matching.sort_by_key(|e| std::cmp::Reverse(e.at));
            matching.truncate(rule.max_events as usize);
            if matching.is_empty() {
                continue;
            }
            let points: f64 = matching
                .iter()
                .map(|e| {
                    let age_days = (now - e.at).num_seconds() as f64 / 86_400.0;
                    rule.points * 0.5f64.powf(age_days / self.half_life_days)
                })
                .sum();
            total += points;
            explanation.push(Contribution {
                label: rule.label.clone(),
                kind: "behaviour",
                events: Some(matching.len() as u32),
                points: round2(points),
            });
        }
        for rule in &self.fit {
            if value_matches(facts.traits.get(&rule.name), rule.op, rule.value.as_ref()) {
                total += rule.points;
                explanation.push(Contribution {
                    label: rule.label.clone(),
                    kind: "fit",
                    events: None,
                    points: round2(rule.points),
                });
            }
        }
        let total = round2(total);
        LeadScore {
            total,
            qualified: self.is_configured() && total >= self.qualified_at,
            explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::EventFact;
    use chrono::Duration;
    use serde_json::json;

    fn config() -> LeadScoring {
        serde_json::from_value(json!({
            "behaviour": [
                {"label": "pricing page", "event": "Page Viewed", "where": [{"property": "path", "op": "eq", "value": "/pricing"}], "points": 10},
                {"label": "demo request", "event": "Demo Requested", "points": 40}
            ],
            "fit": [{"label": "director", "trait": "title", "op": "contains", "value": "director", "points": 15}],
            "half_life_days": 10,
            "qualified_at": 50
        }))
        .unwrap()
    }

    #[test]
    fn scores_decay_and_explain_themselves() {
        let now = Utc::now();
        let ev = |name: &str, path: &str, days: i64| EventFact {
            name: name.into(),
            at: now - Duration::days(days),
            properties: json!({"path": path}).as_object().cloned().unwrap(),
        };
        let mut f = Facts {
            events: vec![
                ev("Page Viewed", "/pricing", 0),
                ev("Page Viewed", "/pricing", 10),
                ev("Page Viewed", "/blog", 0),
                ev("Demo Requested", "", 20),
            ],
            ..Facts::default()
        };
        f.traits.insert("title".into(), json!("Marketing Director"));
        let s = config().score(&f, now);
        // 10 + 5 (one half-life) + 40 / 4 (two half-lives) + 15
        assert_eq!(s.total, 40.0);
        assert!(!s.qualified);
        assert_eq!(s.explanation.len(), 3);
        assert_eq!(s.explanation[0].points, 15.0);
        assert_eq!(s.explanation[0].events, Some(2));
        assert_eq!(s.explanation[1].points, 10.0);
        assert_eq!(s.explanation[2].kind, "fit");
        // Ten days later everything behavioural has halved again.
        let later = config().score(&f, now + Duration::days(10));
        assert_eq!(later.total, 7.5 + 5.0 + 15.0);
        f.events.push(ev("Demo Requested", "", 0));
        assert!(config().score(&f, now).qualified);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = config();
        assert_eq!(c.problem(), None);
        c.half_life_days = 0.0;
        assert!(c.problem().is_some());
        let unknown =
            serde_json::from_value::<LeadScoring>(json!({"behaviour": [], "formula": "x*2"}));
        assert!(unknown.is_err());
    }
}
