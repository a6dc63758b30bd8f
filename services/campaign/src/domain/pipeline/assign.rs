//! Assignment: the tenant's rules in order (the first whose condition holds for the
//! customer's profile takes the lead), then round robin within that rule's team, skipping
//! owners at capacity. A lead no owner has room for stays `new`, with the reason.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::offers::eligibility::{self, DecisionProfile};
use crm_rules::Rule;

/// Most rules per tenant.
pub const MAX_RULES: usize = 50;
/// Most owners per team.
pub const MAX_TEAM: usize = 200;

/// One assignment rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRule {
    /// What people call it (unique), which the lead's history names.
    pub name: String,
    /// When it applies, in the rule language offers use (segments, stage, tier, traits such
    /// as a territory, consent); absent: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub when: Option<Value>,
    /// The owners who take turns (ids of the tenant's people, 1 to 200 characters each).
    pub team: Vec<String>,
    /// Open leads one owner may hold at most (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

/// A rule that fails its checks: where (below the rule list) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// JSON pointer.
    pub path: String,
    /// What to fix.
    pub message: String,
}

/// Checks the rules; the parsed conditions, in order, when they pass.
pub fn check(rules: &[AssignmentRule]) -> Result<Vec<Option<Rule>>, RuleProblem> {
    let problem = |path: String, message: String| RuleProblem { path, message };
    if rules.len() > MAX_RULES {
        return Err(problem(String::new(), format!("at most {MAX_RULES} rules")));
    }
    let mut parsed = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let at = |field: &str| format!("/{i}/{field}");
        if r.name.trim().is_empty() || r.name.chars().count() > 100 || r.name.contains('\0') {
            return Err(problem(at("name"), "1 to 100 characters, not blank".into()));
        }
        if rules[..i].iter().any(|o| o.name == r.name) {
            return Err(problem(at("name"), "the name of an earlier rule".into()));
        }
        if r.team.is_empty() || r.team.len() > MAX_TEAM {
            return Err(problem(at("team"), format!("1 to {MAX_TEAM} owners")));
        }
        for (j, owner) in r.team.iter().enumerate() {
            if !is_owner(owner) {
                return Err(problem(
                    format!("/{i}/team/{j}"),
                    "1 to 200 characters, not blank, without NUL".into(),
                ));
            }
            if r.team[..j].contains(owner) {
                return Err(problem(format!("/{i}/team/{j}"), "listed twice".into()));
            }
        }
        if r.capacity == Some(0) {
            return Err(problem(
                at("capacity"),
                "at least 1 (absent: no limit)".into(),
            ));
        }
        let rule = match &r.when {
            None => None,
            Some(v) => Some(eligibility::parse(v.clone()).map_err(|e| {
                let below = e.path.strip_prefix("/eligibility").unwrap_or(&e.path);
                problem(format!("/{i}/when{below}"), e.message)
            })?),
        };
        parsed.push(rule);
    }
    Ok(parsed)
}

/// Whether `owner` is an owner id: 1 to 200 characters, not blank, without NUL.
pub fn is_owner(owner: &str) -> bool {
    !owner.trim().is_empty() && owner.chars().count() <= 200 && !owner.contains('\0')
}

/// Where a lead goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// To this owner, by this rule.
    Owner {
        /// The rule's index.
        rule: usize,
        /// The owner.
        owner: String,
    },
    /// A rule applied, but its whole team is at capacity.
    TeamFull {
        /// The rule's index.
        rule: usize,
    },
    /// No rule applies.
    NoRule,
}

/// The rule that applies to the customer: the first whose condition holds.
pub fn rule_for(conditions: &[Option<Rule>], profile: &DecisionProfile) -> Option<usize> {
    let context = serde_json::Map::new();
    conditions.iter().position(|c| match c {
        None => true,
        Some(rule) => eligibility::explain(rule, profile, &context).is_some(),
    })
}

/// The next owner of `team` after `last` (the rule's last pick; the first owner when none)
/// who holds fewer than `capacity` open leads (`open`: owner's count, absent is 0).
pub fn round_robin<'a>(
    team: &'a [String],
    last: Option<&str>,
    open: &HashMap<String, u32>,
    capacity: Option<u32>,
) -> Option<&'a str> {
    let start = last
        .and_then(|l| team.iter().position(|o| o == l))
        .map_or(0, |i| i + 1);
    (0..team.len())
        .map(|k| &team[(start + k) % team.len()])
        .find(|o| capacity.is_none_or(|c| open.get(*o).copied().unwrap_or(0) < c))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn team(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("owner{i}")).collect()
    }

    #[test]
    fn the_first_rule_that_holds_takes_the_lead() {
        let rules: Vec<AssignmentRule> = serde_json::from_value(json!([
            {"name": "Iberia", "when": {"trait": {"name": "country", "op": "in", "value": ["ES", "PT"]}},
             "team": ["ana", "joao"]},
            {"name": "Everyone else", "team": ["bo"], "capacity": 2}
        ]))
        .unwrap();
        let conditions = check(&rules).unwrap();
        let mut p = DecisionProfile::default();
        p.traits.insert("country".into(), json!("PT"));
        assert_eq!(rule_for(&conditions, &p), Some(0));
        p.traits.insert("country".into(), json!("FR"));
        assert_eq!(rule_for(&conditions, &p), Some(1));
    }

    #[test]
    fn bad_rules_are_named_by_pointer() {
        let bad = |v: Value| {
            check(&serde_json::from_value::<Vec<AssignmentRule>>(v).unwrap())
                .unwrap_err()
                .path
        };
        assert_eq!(bad(json!([{"name": "", "team": ["a"]}])), "/0/name");
        assert_eq!(bad(json!([{"name": "x", "team": []}])), "/0/team");
        assert_eq!(bad(json!([{"name": "x", "team": ["a", "a"]}])), "/0/team/1");
        assert_eq!(
            bad(json!([{"name": "x", "team": ["a"], "capacity": 0}])),
            "/0/capacity"
        );
        assert_eq!(
            bad(json!([{"name": "x", "team": ["a"]}, {"name": "x", "team": ["b"]}])),
            "/1/name"
        );
        assert!(bad(json!([{"name": "x", "team": ["a"],
            "when": {"event": {"name": "Order", "within_days": 3}}}]))
        .starts_with("/0/when"));
    }

    #[test]
    fn round_robin_skips_owners_at_capacity_and_gives_up_when_all_are() {
        let t = team(3);
        let mut open = HashMap::new();
        assert_eq!(round_robin(&t, None, &open, Some(1)), Some("owner0"));
        assert_eq!(
            round_robin(&t, Some("owner0"), &open, Some(1)),
            Some("owner1")
        );
        assert_eq!(
            round_robin(&t, Some("owner2"), &open, Some(1)),
            Some("owner0")
        );
        open.insert("owner1".to_string(), 1);
        assert_eq!(
            round_robin(&t, Some("owner0"), &open, Some(1)),
            Some("owner2")
        );
        open.insert("owner0".to_string(), 1);
        open.insert("owner2".to_string(), 1);
        assert_eq!(round_robin(&t, Some("owner0"), &open, Some(1)), None);
        assert_eq!(round_robin(&t, Some("owner0"), &open, None), Some("owner1"));
        // An owner no longer in the team: start from the first.
        assert_eq!(
            round_robin(&t, Some("gone"), &HashMap::new(), None),
            Some("owner0")
        );
    }

    proptest! {
        /// Assigning one lead after another spreads them evenly (counts differ by at most one)
        /// and never past capacity; once everyone is full, nobody gets one.
        #[test]
        fn turns_spread_evenly_within_capacity(size in 1usize..12, leads in 0usize..300,
                                               capacity in proptest::option::of(1u32..40)) {
            let t = team(size);
            let mut open: HashMap<String, u32> = HashMap::new();
            let mut last: Option<String> = None;
            let mut unassigned = 0usize;
            for _ in 0..leads {
                match round_robin(&t, last.as_deref(), &open, capacity) {
                    Some(o) => {
                        *open.entry(o.to_string()).or_default() += 1;
                        last = Some(o.to_string());
                    }
                    None => unassigned += 1,
                }
            }
            let counts: Vec<u32> = t.iter().map(|o| open.get(o).copied().unwrap_or(0)).collect();
            let (lo, hi) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "{counts:?}");
            if let Some(c) = capacity {
                prop_assert!(hi <= c);
                let room = size * c as usize;
                prop_assert_eq!(unassigned, leads.saturating_sub(room));
            } else {
                prop_assert_eq!(unassigned, 0);
            }
        }
    }
}
