//! Evaluating a rule over a customer's facts: a walk over the tree, no code execution.

use chrono::{DateTime, Duration, Utc};

use super::filter::filter_holds;
use super::value_matches;
use super::{
    AggregateCondition, Between, EventCondition, Metric, PropertyFilter, Rule, TraitCondition,
    ValueMetric,
};
use crate::domain::facts::{EventFact, Facts};
use crate::domain::lead::LeadScoring;
use crate::domain::lifecycle;
use crate::domain::lifecycle::Thresholds;

/// What an evaluation needs besides the customer: the instant and the tenant's settings.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The instant rules are evaluated at (windows end here).
    pub now: DateTime<Utc>,
    /// Lifecycle thresholds.
    pub thresholds: &'a Thresholds,
    /// Lead scoring rules.
    pub lead: &'a LeadScoring,
}

/// Whether `rule` holds for `facts` at `ctx.now`. Membership of other segments is read from
/// `facts.segments`, which the caller keeps current in dependency order.
pub fn evaluate(rule: &Rule, facts: &Facts, ctx: &Context<'_>) -> bool {
    match rule {
        Rule::All(rules) => rules.iter().all(|r| evaluate(r, facts, ctx)),
        Rule::Any(rules) => rules.iter().any(|r| evaluate(r, facts, ctx)),
        Rule::Not(rule) => !evaluate(rule, facts, ctx),
        Rule::Trait(c) => trait_holds(c, facts),
        Rule::Aggregate(c) => aggregate_holds(c, facts, ctx.now),
        Rule::BoughtCategory(c) => c
            .any_of
            .iter()
            .any(|cat| facts.categories.contains(&cat.trim().to_lowercase())),
        Rule::Event(c) => event_holds(c, facts, ctx.now),
        Rule::Rfm(c) => facts.rfm.is_some_and(|s| {
            c.r.as_ref().is_none_or(|v| v.contains(&s.r))
                && c.f.as_ref().is_none_or(|v| v.contains(&s.f))
                && c.m.as_ref().is_none_or(|v| v.contains(&s.m))
                && c.group.as_ref().is_none_or(|v| v.contains(&s.group))
        }),
        Rule::Stage(c) => {
            let stage = lifecycle::stage(&facts.order_days, ctx.now.date_naive(), ctx.thresholds);
            c.stages.contains(&stage)
        }
        Rule::LeadScore(c) => c.op.holds(ctx.lead.score(facts, ctx.now).total, c.value),
        Rule::LoyaltyTier(c) => facts
            .loyalty_tier
            .as_deref()
            .is_some_and(|tier| c.tiers.iter().any(|t| t.eq_ignore_ascii_case(tier))),
        Rule::Value(c) => facts.value.is_some_and(|v| {
            let x = match c.metric {
                ValueMetric::ProbabilityAlive => v.probability_alive,
                ValueMetric::ExpectedPurchases => v.expected_purchases,
                ValueMetric::LifetimeValue => v.lifetime_value,
            };
            c.op.holds(x, c.value)
        }),
        Rule::Segment(s) => facts.segments.contains(&s.id),
        // Refused when a segment is saved (`segment_nodes_only`).
        Rule::Consent(_) | Rule::Context(_) => false,
    }
}

fn trait_holds(c: &TraitCondition, facts: &Facts) -> bool {
    value_matches(facts.traits.get(&c.name), c.op, c.value.as_ref())
}

fn whole_days(from: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - from).num_days() as f64
}

fn aggregate_holds(c: &AggregateCondition, facts: &Facts, now: DateTime<Utc>) -> bool {
    let name_total = || {
        c.event
            .as_deref()
            .and_then(|e| facts.totals.get(e))
            .copied()
            .unwrap_or_default()
    };
    let x = match c.metric {
        Metric::EventsTotal => facts.events_total() as f64,
        Metric::Orders => facts.orders() as f64,
        Metric::Revenue => facts.revenue(),
        Metric::AverageOrderValue => facts.average_order_value(),
        Metric::LastOrderValue => facts.last_order_value,
        Metric::DaysSinceLastOrder => match facts.last_order_at {
            Some(t) => whole_days(t, now),
            None => return false,
        },
        Metric::DaysSinceLastSeen => match facts.last_seen_at {
            Some(t) => whole_days(t, now),
            None => return false,
        },
        Metric::DaysSinceFirstSeen => match facts.first_seen_at {
            Some(t) => whole_days(t, now),
            None => return false,
        },
        Metric::Count => name_total().count as f64,
        Metric::Sum => name_total().sum,
    };
    c.op.holds(x, c.value)
}

/// The instants an event condition counts: the last D days `(now - D, now]`, or
/// `[from, to)` capped at `now`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    /// `(start, end]`.
    Sliding(DateTime<Utc>, DateTime<Utc>),
    /// `[from, min(to, now + 1ns))`.
    Between(DateTime<Utc>, DateTime<Utc>),
}

impl Window {
    pub(crate) fn of(
        within_days: Option<u32>,
        between: Option<Between>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        match (within_days, between) {
            (Some(d), _) => Some(Window::Sliding(now - Duration::days(i64::from(d)), now)),
            (None, Some(b)) => Some(Window::Between(b.from, b.to)),
            (None, None) => None,
        }
    }

    fn contains(self, t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self {
            Window::Sliding(from, to) => t > from && t <= to,
            Window::Between(from, to) => t >= from && t < to && t <= now,
        }
    }
}

/// How many of `events` match `name` and `filters` inside the window (all retained events up
/// to `now` without one).
pub(crate) fn count_matching(
    events: &[EventFact],
    name: &str,
    filters: &[PropertyFilter],
    window: Option<Window>,
    now: DateTime<Utc>,
) -> u64 {
    events
        .iter()
        .filter(|e| e.name == name)
        .filter(|e| match window {
            Some(w) => w.contains(e.at, now),
            None => e.at <= now,
        })
        .filter(|e| filters.iter().all(|f| filter_holds(f, e)))
        .count() as u64
}

fn event_holds(c: &EventCondition, facts: &Facts, now: DateTime<Utc>) -> bool {
    let n = match Window::of(c.within_days, c.between, now) {
        None if c.filters.is_empty() => {
            facts.totals.get(&c.name).map_or(0, |t| t.count).max(0) as u64
        }
        w => count_matching(&facts.events, &c.name, &c.filters, w, now),
    };
    c.at_least.is_none_or(|min| n >= u64::from(min))
        && c.at_most.is_none_or(|max| n <= u64::from(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::{NameTotals, ORDER_COMPLETED};
    use crate::domain::rules::parse;
    use serde_json::json;

    fn at(days_ago: i64, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(days_ago)
    }

    fn customer(now: DateTime<Utc>) -> Facts {
        let mut f = Facts {
            traits: json!({"country": "FR", "plan": "pro", "age": 41, "tags": ["vip"]})
                .as_object()
                .cloned()
                .unwrap(),
            ..Facts::default()
        };
        let order = |days: i64, category: &str, revenue: f64| EventFact {
            name: ORDER_COMPLETED.into(),
            at: at(days, now),
            properties: json!({"revenue": revenue, "products": [{"category": category}]})
                .as_object()
                .cloned()
                .unwrap(),
        };
        f.events = vec![
            order(120, "bags", 80.0),
            order(40, "shoes", 20.0),
            order(10, "shoes", 50.0),
        ];
        f.totals.insert(
            ORDER_COMPLETED.into(),
            NameTotals {
                count: 3,
                sum: 150.0,
            },
        );
        f.last_order_at = Some(at(10, now));
        f.first_seen_at = Some(at(120, now));
        f.last_seen_at = Some(at(10, now));
        f.categories = ["bags".to_string(), "shoes".to_string()].into();
        f.order_days = f.events.iter().map(|e| e.at.date_naive()).collect();
        f
    }

    fn holds(rule: serde_json::Value, f: &Facts, now: DateTime<Utc>) -> bool {
        let rule = parse(&rule.to_string()).unwrap();
        let lead = LeadScoring::default();
        let t = Thresholds::default();
        evaluate(
            &rule,
            f,
            &Context {
                now,
                thresholds: &t,
                lead: &lead,
            },
        )
    }

    #[test]
    fn conditions_evaluate_over_the_facts() {
        let now = Utc::now();
        let f = customer(now);
        assert!(holds(
            json!({"trait": {"name": "country", "op": "eq", "value": "FR"}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"trait": {"name": "age", "op": "gte", "value": 41.0}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"trait": {"name": "tags", "op": "contains", "value": "vip"}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"trait": {"name": "email", "op": "missing"}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"trait": {"name": "email", "op": "ne", "value": "x"}}),
            &f,
            now
        ));
        assert!(!holds(
            json!({"trait": {"name": "plan", "op": "in", "value": ["free", "team"]}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"aggregate": {"metric": "average_order_value", "op": "eq", "value": 50}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"aggregate": {"metric": "days_since_last_order", "op": "lt", "value": 11}}),
            &f,
            now
        ));
        assert!(holds(
            json!({"bought_category": {"any_of": ["SHOES"]}}),
            &f,
            now
        ));
        let shoes_90 = json!({"event": {"name": "Order Completed", "where": [{"property": "products.category", "op": "eq", "value": "shoes"}], "at_least": 2, "within_days": 90}});
        assert!(holds(shoes_90.clone(), &f, now));
        let shoes_30 = json!({"event": {"name": "Order Completed", "where": [{"property": "products.category", "op": "eq", "value": "shoes"}], "at_least": 2, "within_days": 30}});
        assert!(!holds(shoes_30, &f, now));
        let none_in_5 =
            json!({"event": {"name": "Order Completed", "at_most": 0, "within_days": 5}});
        assert!(holds(none_in_5, &f, now));
        let combined =
            json!({"all": [shoes_90, {"not": {"stage": {"in": ["lapsed", "prospect"]}}}]});
        assert!(holds(combined, &f, now));
        assert!(holds(json!({"stage": {"in": ["active"]}}), &f, now));
        assert!(!holds(json!({"rfm": {"group": ["champions"]}}), &f, now)); // no RFM yet
        assert!(!holds(
            json!({"value": {"metric": "probability_alive", "op": "lt", "value": 0.3}}),
            &f,
            now
        ));
    }

    #[test]
    fn windows_slide_with_time() {
        let now = Utc::now();
        let f = customer(now);
        let lapsed = json!({"all": [
            {"aggregate": {"metric": "orders", "op": "gte", "value": 1}},
            {"event": {"name": "Order Completed", "at_most": 0, "within_days": 90}}
        ]});
        assert!(!holds(lapsed.clone(), &f, now));
        assert!(holds(lapsed, &f, now + Duration::days(81)));
    }

    #[test]
    fn between_counts_from_inclusive_to_exclusive_and_not_the_future() {
        let now = Utc::now();
        let f = customer(now);
        let between = |from: i64, to: i64, n: u32| {
            json!({"event": {"name": "Order Completed", "at_least": n, "at_most": n,
                "between": {"from": at(from, now).to_rfc3339(), "to": at(to, now).to_rfc3339()}}})
        };
        assert!(holds(between(120, 10, 2), &f, now)); // 120 days ago counts, 10 days ago does not
        assert!(holds(between(121, 9, 3), &f, now));
        assert!(holds(between(11, -30, 1), &f, now)); // a window reaching into the future
        assert!(holds(between(9, -30, 0), &f, now));
    }
}
