//! Offers' eligibility: a rule of the suite's language (crm-rules, as segments write them)
//! restricted to what is known at the moment of a decision, answered over the customer's
//! decision profile and the decision's context, with the conditions that made it hold.
//!
//! Accepted nodes: `all`, `any`, `not`, `trait`, `stage`, `loyalty_tier`, `lead_score`, `rfm`,
//! `segment`, `consent`, `context`. Refused, with the path of the node: `event`, `aggregate`,
//! `bought_category` and `value`, which need the event history or the value models that only
//! segmentation holds; a segment with that condition, referenced by `segment`, says the same
//! thing and is kept current by segmentation.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crm_rules::{value_matches, Limits, RfmGroup, Rule, RuleError, Stage};

/// What a decision knows of the customer, mirrored by the consumer from the topics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionProfile {
    /// Profile traits.
    pub traits: Map<String, Value>,
    /// Segments the customer is in.
    pub segments: Vec<Uuid>,
    /// Lifecycle stage, as segmentation last published it.
    pub stage: Option<String>,
    /// Loyalty tier.
    pub tier: Option<String>,
    /// `purpose:channel` pairs granted (`any` covers every channel).
    pub consents: Vec<String>,
    /// Lead score, as last published.
    pub lead_score: Option<f64>,
    /// RFM scores and group, as last published.
    pub rfm: Option<Rfm>,
}

/// RFM scores (1-5) and the named group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rfm {
    /// Recency.
    pub r: u8,
    /// Frequency.
    pub f: u8,
    /// Monetary.
    pub m: u8,
    /// The group.
    pub group: RfmGroup,
}

impl DecisionProfile {
    /// The cohort the propensity model learns in: the lifecycle stage, `none` without one.
    pub fn cohort(&self) -> &str {
        self.stage.as_deref().unwrap_or("none")
    }
}

/// A condition that held, by the JSON pointer of its node in the offer's rule.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// Where the condition is in `eligibility` (`""`: the whole rule).
    pub path: String,
    /// The condition as written.
    pub condition: Value,
}

/// Parses and checks an eligibility rule: the language's checks, then the decision-time
/// restriction. Errors name the node under `/eligibility`.
pub fn parse(value: Value) -> Result<Rule, RuleError> {
    let under = |e: RuleError| RuleError {
        path: format!("/eligibility{}", e.path),
        message: e.message,
    };
    let rule = crm_rules::from_value(value, &Limits::default()).map_err(under)?;
    for (path, leaf) in rule.leaves() {
        if let Rule::Event(_) | Rule::Aggregate(_) | Rule::BoughtCategory(_) | Rule::Value(_) = leaf
        {
            return Err(RuleError {
                path: format!("/eligibility{path}/{}", leaf.kind()),
                message: format!(
                    "`{}` needs what only segmentation computes (event history, value models); \
                     define a segment with it and test {{\"segment\": {{\"id\": \"…\"}}}} here",
                    leaf.kind()
                ),
            });
        }
    }
    Ok(rule)
}

/// The conditions that make `rule` hold for `profile` in `context`, or `None` if it does
/// not hold. `not` gives its own node as the reason.
pub fn explain(
    rule: &Rule,
    profile: &DecisionProfile,
    context: &Map<String, Value>,
) -> Option<Vec<Reason>> {
    let mut reasons = Vec::new();
    walk(rule, "", profile, context, &mut reasons).then_some(reasons)
}

/// Whether `rule` holds for `profile` in `context`: [`explain`] without the reasons, and
/// without allocating, for testing every offer of a placement; the reasons are built for the
/// offers answered only.
pub fn holds(rule: &Rule, profile: &DecisionProfile, context: &Map<String, Value>) -> bool {
    match rule {
        Rule::All(rules) => rules.iter().all(|r| holds(r, profile, context)),
        Rule::Any(rules) => rules.iter().any(|r| holds(r, profile, context)),
        Rule::Not(inner) => !holds(inner, profile, context),
        leaf => leaf_holds(leaf, profile, context),
    }
}

fn walk(
    rule: &Rule,
    path: &str,
    p: &DecisionProfile,
    ctx: &Map<String, Value>,
    out: &mut Vec<Reason>,
) -> bool {
    match rule {
        Rule::All(rules) => rules
            .iter()
            .enumerate()
            .all(|(i, r)| walk(r, &format!("{path}/all/{i}"), p, ctx, out)),
        Rule::Any(rules) => rules.iter().enumerate().any(|(i, r)| {
            let mut mine = Vec::new();
            let held = walk(r, &format!("{path}/any/{i}"), p, ctx, &mut mine);
            if held {
                out.extend(mine);
            }
            held
        }),
        Rule::Not(inner) => {
            let held = !walk(inner, &format!("{path}/not"), p, ctx, &mut Vec::new());
            if held {
                out.push(reason(path, rule));
            }
            held
        }
        leaf => {
            let held = leaf_holds(leaf, p, ctx);
            if held {
                out.push(reason(path, leaf));
            }
            held
        }
    }
}

fn reason(path: &str, rule: &Rule) -> Reason {
    Reason {
        path: path.to_owned(),
        condition: serde_json::to_value(rule).unwrap_or(Value::Null),
    }
}

fn leaf_holds(rule: &Rule, p: &DecisionProfile, ctx: &Map<String, Value>) -> bool {
    match rule {
        Rule::Trait(c) => value_matches(p.traits.get(&c.name), c.op, c.value.as_ref()),
        Rule::Context(c) => value_matches(ctx.get(&c.field), c.op, c.value.as_ref()),
        Rule::Stage(c) => p
            .stage
            .as_deref()
            .and_then(Stage::parse)
            .is_some_and(|s| c.stages.contains(&s)),
        Rule::LoyaltyTier(c) => p
            .tier
            .as_deref()
            .is_some_and(|tier| c.tiers.iter().any(|t| t.eq_ignore_ascii_case(tier))),
        Rule::LeadScore(c) => p.lead_score.is_some_and(|s| c.op.holds(s, c.value)),
        Rule::Rfm(c) => p.rfm.is_some_and(|s| {
            c.r.as_ref().is_none_or(|v| v.contains(&s.r))
                && c.f.as_ref().is_none_or(|v| v.contains(&s.f))
                && c.m.as_ref().is_none_or(|v| v.contains(&s.m))
                && c.group.as_ref().is_none_or(|v| v.contains(&s.group))
        }),
        Rule::Segment(s) => p.segments.contains(&s.id),
        Rule::Consent(c) => p.consents.iter().any(|pair| {
            pair.split_once(':').is_some_and(|(purpose, channel)| {
                purpose == c.purpose
                    && c.channel
                        .as_deref()
                        .is_none_or(|want| channel == want || channel == "any")
            })
        }),
        // Refused by `parse`; a stored rule never holds them.
        Rule::Event(_) | Rule::Aggregate(_) | Rule::BoughtCategory(_) | Rule::Value(_) => false,
        Rule::All(_) | Rule::Any(_) | Rule::Not(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> Rule {
        parse(v).unwrap()
    }

    fn gold_member(segment: Uuid) -> DecisionProfile {
        DecisionProfile {
            segments: vec![segment],
            tier: Some("Gold".into()),
            stage: Some("active".into()),
            consents: vec!["marketing:email".into()],
            ..DecisionProfile::default()
        }
    }

    #[test]
    fn eligibility_by_segment_tier_and_consent_names_what_held() {
        let seg = Uuid::from_u128(7);
        let r = rule(json!({"all": [
            {"segment": {"id": seg}},
            {"loyalty_tier": {"in": ["gold"]}},
            {"consent": {"purpose": "marketing", "channel": "email"}}
        ]}));
        let ctx = Map::new();
        let reasons = explain(&r, &gold_member(seg), &ctx).unwrap();
        let paths: Vec<&str> = reasons.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/all/0", "/all/1", "/all/2"]);
        assert_eq!(
            reasons[1].condition,
            json!({"loyalty_tier": {"in": ["gold"]}})
        );

        let mut silver = gold_member(seg);
        silver.tier = Some("silver".into());
        assert!(explain(&r, &silver, &ctx).is_none());
        let mut outsider = gold_member(seg);
        outsider.segments.clear();
        assert!(explain(&r, &outsider, &ctx).is_none());
        let mut withdrawn = gold_member(seg);
        withdrawn.consents = vec!["marketing:sms".into()];
        assert!(explain(&r, &withdrawn, &ctx).is_none());
        withdrawn.consents = vec!["marketing:any".into()];
        assert!(explain(&r, &withdrawn, &ctx).is_some());
    }

    #[test]
    fn context_any_and_not_explain_the_branch_that_held() {
        let r = rule(json!({"any": [
            {"context": {"field": "channel", "op": "eq", "value": "email"}},
            {"all": [{"context": {"field": "page", "op": "in", "value": ["home", "cart"]}},
                     {"not": {"stage": {"in": ["lapsed"]}}}]}
        ]}));
        let p = gold_member(Uuid::nil());
        let ctx: Map<String, Value> = json!({"channel": "web", "page": "cart"})
            .as_object()
            .cloned()
            .unwrap();
        let reasons = explain(&r, &p, &ctx).unwrap();
        let paths: Vec<&str> = reasons.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/any/1/all/0", "/any/1/all/1"]);
        assert_eq!(
            reasons[1].condition,
            json!({"not": {"stage": {"in": ["lapsed"]}}})
        );
        let home: Map<String, Value> = json!({"channel": "web", "page": "search"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(explain(&r, &p, &home).is_none());
    }

    #[test]
    fn lead_score_and_rfm_read_what_was_published() {
        let r = rule(json!({"all": [{"lead_score": {"op": "gte", "value": 50}},
                                    {"rfm": {"group": ["champions"]}}]}));
        let mut p = DecisionProfile::default();
        assert!(
            explain(&r, &p, &Map::new()).is_none(),
            "nothing published yet"
        );
        p.lead_score = Some(72.0);
        p.rfm = Some(Rfm {
            r: 5,
            f: 5,
            m: 4,
            group: RfmGroup::Champions,
        });
        assert!(explain(&r, &p, &Map::new()).is_some());
    }

    #[test]
    fn history_nodes_are_refused_by_path() {
        let e = parse(json!({"all": [{"stage": {"in": ["active"]}},
                                     {"event": {"name": "Order Completed", "at_least": 1}}]}))
        .unwrap_err();
        assert_eq!(e.path, "/eligibility/all/1/event");
        assert!(e.message.contains("segment"), "{e}");
        let e = parse(json!({"value": {"metric": "lifetime_value", "op": "gt", "value": 100}}))
            .unwrap_err();
        assert_eq!(e.path, "/eligibility/value");
        let e = parse(json!({"trait": {"name": "a", "op": "eq"}})).unwrap_err();
        assert_eq!(e.path, "/eligibility/trait/value");
    }
}
