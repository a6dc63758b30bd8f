//! Evaluating one customer after a change: the segments that can change (and those that refer
//! to a segment whose membership changed), the lifecycle stage, the lead score and the next
//! instant time alone may change something. Pure: the stream, the scheduler and a full
//! recompute all call it, so they agree.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::facts::Facts;
use crate::domain::lead::LeadScore;
use crate::domain::lifecycle;
use crate::domain::lifecycle::Stage;
use crate::domain::model::{Change, TenantModel};
use crate::domain::rules::{evaluate, Context};

/// What an evaluation decided for one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The customer.
    pub customer_id: Uuid,
    /// Segments entered.
    pub entered: Vec<Uuid>,
    /// Segments exited.
    pub exited: Vec<Uuid>,
    /// The stage now, and the stored one when different.
    pub stage: Stage,
    /// The stored stage, when the stage changed.
    pub stage_was: Option<Option<Stage>>,
    /// The lead score, when lead scoring is configured.
    pub lead: Option<LeadScore>,
    /// When time alone may change something next.
    pub recheck_at: Option<DateTime<Utc>>,
}

impl Outcome {
    /// Whether anything must be written.
    pub fn changes_anything(&self, facts_stored: &crate::domain::facts::Stored) -> bool {
        !self.entered.is_empty()
            || !self.exited.is_empty()
            || self.stage_was.is_some()
            || self.recheck_at != facts_stored.recheck_at
            || self.lead.as_ref().is_some_and(|l| {
                l.total != facts_stored.lead_score || l.qualified != facts_stored.lead_qualified
            })
    }
}

/// Evaluates `facts` after `change` at `now`; `facts.segments` ends up as the new memberships.
/// A customer whose recheck time has passed gets every time-dependent segment evaluated too.
pub fn evaluate_customer(
    model: &TenantModel,
    facts: &mut Facts,
    change: &Change,
    now: DateTime<Utc>,
) -> Outcome {
    let settings = &model.settings;
    let ctx = Context {
        now,
        thresholds: &settings.lifecycle,
        lead: &settings.lead_scoring,
    };
    let due = facts.stored.recheck_at.is_some_and(|t| t <= now);
    let mut changed: Vec<Uuid> = Vec::new();
    let mut entered = Vec::new();
    let mut exited = Vec::new();
    for segment in &model.segments {
        let selected = TenantModel::selects(segment, change)
            || (due && TenantModel::selects(segment, &Change::Time))
            || segment.deps.segments.iter().any(|s| changed.contains(s));
        if !selected {
            continue;
        }
        let member = evaluate(&segment.rule, facts, &ctx);
        let was = facts.segments.contains(&segment.id);
        if member != was {
            changed.push(segment.id);
            if member {
                facts.segments.insert(segment.id);
                entered.push(segment.id);
            } else {
                facts.segments.remove(&segment.id);
                exited.push(segment.id);
            }
        }
    }
    let stage = lifecycle::stage(&facts.order_days, now.date_naive(), &settings.lifecycle);
    let stage_was = (facts.stored.stage != Some(stage)).then_some(facts.stored.stage);
    let lead = settings
        .lead_scoring
        .is_configured()
        .then(|| settings.lead_scoring.score(facts, now));
    let lead_recheck = Duration::minutes(i64::from(settings.lead_recheck_minutes));
    let recheck_at = model
        .windows
        .next_change(facts, now, &settings.lifecycle, lead_recheck);
    Outcome {
        customer_id: facts.customer_id,
        entered,
        exited,
        stage,
        stage_was,
        lead,
        recheck_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::{EventFact, NameTotals, ORDER_COMPLETED};
    use crate::domain::model::Segment;
    use crate::domain::rules::{parse, Dependencies};
    use crate::domain::settings::Settings;

    fn seg(id: u128, rule: &str) -> Segment {
        let rule = parse(rule).unwrap();
        Segment {
            id: Uuid::from_u128(id),
            name: format!("s{id}"),
            version: 1,
            deps: Dependencies::of(&rule),
            rule,
        }
    }

    #[test]
    fn an_order_moves_memberships_and_the_stage_and_referring_segments_follow() {
        let buyers = seg(
            1,
            r#"{"aggregate": {"metric": "orders", "op": "gte", "value": 1}}"#,
        );
        let vip = seg(
            2,
            &format!(
                r#"{{"all": [{{"segment": {{"id": "{}"}}}}, {{"trait": {{"name": "vip", "op": "eq", "value": true}}}}]}}"#,
                Uuid::from_u128(1)
            ),
        );
        let model = TenantModel::build(1, Settings::default(), vec![vip, buyers]);
        let now = Utc::now();
        let mut f = Facts {
            customer_id: Uuid::from_u128(9),
            ..Facts::default()
        };
        f.traits.insert("vip".into(), serde_json::json!(true));
        let first = evaluate_customer(&model, &mut f, &Change::All, now);
        assert!(first.entered.is_empty());
        assert_eq!(first.stage, Stage::Prospect);
        assert_eq!(first.stage_was, Some(None));
        f.stored.stage = Some(first.stage);

        f.totals.insert(
            ORDER_COMPLETED.into(),
            NameTotals {
                count: 1,
                sum: 10.0,
            },
        );
        f.order_days.push(now.date_naive());
        f.last_order_at = Some(now);
        f.events.push(EventFact {
            name: ORDER_COMPLETED.into(),
            at: now,
            properties: Default::default(),
        });
        let order = Change::Event {
            name: ORDER_COMPLETED.into(),
            is_order: true,
        };
        let o = evaluate_customer(&model, &mut f, &order, now);
        assert_eq!(o.entered, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(o.stage, Stage::New);
        assert_eq!(o.stage_was, Some(Some(Stage::Prospect)));
        // New → active after 30 days: the recheck is announced.
        assert!(o
            .recheck_at
            .is_some_and(|t| t > now && t <= now + Duration::days(32)));

        // A page view changes neither segment: none is evaluated, nothing changes.
        let view = Change::Event {
            name: "Page Viewed".into(),
            is_order: false,
        };
        let o = evaluate_customer(&model, &mut f, &view, now);
        assert!(o.entered.is_empty() && o.exited.is_empty());
    }

    mod streaming_equals_recompute {
        use super::*;
        use crate::domain::facts::NameTotals;
        use proptest::prelude::*;
        use serde_json::json;

        const NAMES: [&str; 3] = [ORDER_COMPLETED, "Page Viewed", "Email Opened"];

        fn pool() -> Vec<Segment> {
            let r = |id: u128| Uuid::from_u128(id);
            vec![
                seg(
                    1,
                    r#"{"aggregate": {"metric": "orders", "op": "gte", "value": 2}}"#,
                ),
                seg(
                    2,
                    r#"{"event": {"name": "Page Viewed", "at_least": 2, "within_days": 30}}"#,
                ),
                seg(
                    3,
                    r#"{"event": {"name": "Order Completed", "where": [{"property": "products.category", "op": "eq", "value": "shoes"}], "at_least": 1, "within_days": 90}}"#,
                ),
                seg(
                    4,
                    r#"{"trait": {"name": "plan", "op": "eq", "value": "gold"}}"#,
                ),
                seg(
                    5,
                    &format!(
                        r#"{{"all": [{{"segment": {{"id": "{}"}}}}, {{"not": {{"segment": {{"id": "{}"}}}}}}]}}"#,
                        r(1),
                        r(2)
                    ),
                ),
                seg(6, r#"{"stage": {"in": ["new", "active"]}}"#),
                seg(
                    7,
                    &format!(
                        r#"{{"any": [{{"segment": {{"id": "{}"}}}}, {{"aggregate": {{"metric": "count", "event": "Email Opened", "op": "gte", "value": 3}}}}]}}"#,
                        r(4)
                    ),
                ),
                seg(
                    8,
                    r#"{"aggregate": {"metric": "days_since_last_seen", "op": "lte", "value": 10}}"#,
                ),
                seg(9, r#"{"bought_category": {"any_of": ["bags"]}}"#),
            ]
        }

        #[derive(Debug, Clone)]
        enum Step {
            Event {
                name: usize,
                days_ago: i64,
                category: bool,
            },
            Plan(bool),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0usize..3, 0i64..200, any::<bool>()).prop_map(|(name, days_ago, category)| {
                    Step::Event {
                        name,
                        days_ago,
                        category,
                    }
                }),
                any::<bool>().prop_map(Step::Plan),
            ]
        }

        proptest! {
            /// Re-evaluating only the segments a change can affect, after every change, ends
            /// with exactly the memberships a full evaluation of everything gives.
            #[test]
            fn selective_streaming_matches_full_evaluation(
                chosen in proptest::sample::subsequence((0..9usize).collect::<Vec<_>>(), 1..=9),
                steps in proptest::collection::vec(step(), 1..25),
            ) {
                let all = pool();
                let segments: Vec<Segment> = chosen.iter().map(|i| all[*i].clone()).collect();
                let model = TenantModel::build(1, Settings::default(), segments);
                let now = Utc::now();
                let mut f = Facts { customer_id: Uuid::from_u128(42), ..Facts::default() };
                evaluate_customer(&model, &mut f, &Change::All, now);
                for s in &steps {
                    let change = match s {
                        Step::Event { name, days_ago, category } => {
                            let name = NAMES[*name];
                            let at = now - Duration::days(*days_ago);
                            let cat = if *category { "shoes" } else { "bags" };
                            f.events.push(EventFact { name: name.into(), at, properties: json!({"products": [{"category": cat}]}).as_object().cloned().unwrap() });
                            let t: &mut NameTotals = f.totals.entry(name.into()).or_default();
                            t.count += 1;
                            f.first_seen_at = Some(f.first_seen_at.map_or(at, |x| x.min(at)));
                            f.last_seen_at = Some(f.last_seen_at.map_or(at, |x| x.max(at)));
                            if name == ORDER_COMPLETED {
                                f.categories.insert(cat.into());
                                let day = at.date_naive();
                                if !f.order_days.contains(&day) {
                                    f.order_days.push(day);
                                    f.order_days.sort_unstable();
                                }
                                f.last_order_at = Some(f.last_order_at.map_or(at, |x| x.max(at)));
                            }
                            Change::Event { name: name.into(), is_order: name == ORDER_COMPLETED }
                        }
                        Step::Plan(gold) => {
                            f.traits.insert("plan".into(), json!(if *gold { "gold" } else { "free" }));
                            Change::Traits
                        }
                    };
                    let before = f.stored;
                    let o = evaluate_customer(&model, &mut f, &change, now);
                    f.stored = crate::domain::facts::Stored { stage: Some(o.stage), recheck_at: o.recheck_at, ..before };
                }
                let mut fresh = f.clone();
                fresh.segments.clear();
                evaluate_customer(&model, &mut fresh, &Change::All, now);
                prop_assert_eq!(&f.segments, &fresh.segments);
            }
        }
    }
}
