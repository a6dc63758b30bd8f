//! What running one node does, as a value: the instance engine (which stores instances and
//! timers, and applies actions once per step key) asks [`step`] and carries out the answer.
//! Branches read the customer as they are when the node runs ([`Facts`]); splits pick an arm by
//! a salted hash of the customer id, so a retried step takes the same arm.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Awaited, Channel, Condition, Journey, Node, Op, Weekday};
use crate::domain::gate::holdout;
use crate::domain::localtime;

/// What a branch can see of the customer when it runs.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Profile traits.
    pub traits: Map<String, Value>,
    /// Segments the customer is in.
    pub segments: BTreeSet<Uuid>,
    /// Lifecycle stage.
    pub stage: Option<String>,
    /// Loyalty tier.
    pub tier: Option<String>,
    /// Predicted customer value.
    pub value: Option<f64>,
    /// (purpose, channel) pairs the customer consented to.
    pub consents: BTreeSet<(String, Channel)>,
    /// Event names seen since the instance entered.
    pub events_seen: BTreeSet<String>,
    /// `send` nodes whose message was opened (by a person).
    pub opened: BTreeSet<String>,
    /// `send` nodes whose message had a click.
    pub clicked: BTreeSet<String>,
}

/// An effect of a node, applied once per (instance, node, occurrence).
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send through the gate.
    Send {
        /// Template key.
        template: String,
        /// Channel.
        channel: Channel,
        /// Exempt from caps and quiet hours.
        transactional: bool,
        /// The message's own quiet-hours choice, if any (else the tenant's).
        quiet: Option<crate::domain::gate::quiet::Policy>,
        /// The placement of the offer the message shows, decided when it is sent.
        offer_placement: Option<String>,
        /// The survey the message links to.
        survey: Option<uuid::Uuid>,
    },
    /// Set a trait.
    SetTrait {
        /// The trait.
        name: String,
        /// Its value.
        value: Value,
    },
    /// Add loyalty points.
    AddPoints {
        /// Points.
        points: u32,
        /// Reason.
        reason: String,
    },
    /// Open a lead.
    OpenLead {
        /// The campaign it is attributed to (absent: the journey's name).
        campaign: Option<String>,
    },
    /// Call a webhook channel.
    Webhook {
        /// The channel's key.
        channel: String,
    },
}

/// What running a node does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Go on to `next` at once, after `effect` if any; `arm` names the split arm taken.
    Go {
        /// The effect to apply first.
        effect: Option<Effect>,
        /// The split arm taken, for the report.
        arm: Option<String>,
        /// The next node.
        next: String,
    },
    /// Sleep until `at`, then go on to `next`.
    Timer {
        /// When.
        at: DateTime<Utc>,
        /// The next node.
        next: String,
    },
    /// Wait for `what` until `deadline`: `next` if it happens, `timeout_next` if not.
    Await {
        /// What is awaited.
        what: Awaited,
        /// The timeout.
        deadline: DateTime<Utc>,
        /// Taken when it happens.
        next: String,
        /// Taken at the timeout.
        timeout_next: String,
    },
    /// The instance ends.
    Exit,
}

/// The customer's time zone: their `timezone` trait if it names a zone, else the journey's.
pub fn customer_zone(journey: &Journey, traits: &Map<String, Value>) -> Tz {
    traits
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(|z| z.parse().ok())
        .or_else(|| journey.time_zone.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// Runs node `name` of `journey` for `customer` (instance salt `journey_id`) at `now`.
pub fn step(
    journey: &Journey,
    journey_id: Uuid,
    name: &str,
    customer: Uuid,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Step {
    let Some(node) = journey.nodes.get(name) else {
        return Step::Exit;
    };
    let tz = customer_zone(journey, &facts.traits);
    let go = |effect: Option<Effect>, next: &str| Step::Go {
        effect,
        arm: None,
        next: next.to_owned(),
    };
    match node {
        Node::Wait { minutes, next } => Step::Timer {
            at: now + Duration::minutes(i64::from(*minutes)),
            next: next.clone(),
        },
        Node::WaitUntil { time, days, next } => {
            let Ok(t) = NaiveTime::parse_from_str(time, "%H:%M") else {
                return go(None, next);
            };
            let day_ok = |d: NaiveDate| days.is_empty() || days.contains(&weekday(d.weekday()));
            match localtime::next_local(tz, now, t, day_ok) {
                Some(at) => Step::Timer {
                    at,
                    next: next.clone(),
                },
                None => go(None, next),
            }
        }
        Node::WaitUntilDate {
            name: trait_name,
            offset_days,
            at,
            next,
        } => match date_trait_instant(&facts.traits, trait_name, *offset_days, at, tz, now) {
            Some(at) => Step::Timer {
                at,
                next: next.clone(),
            },
            None => go(None, next),
        },
        Node::WaitFor {
            what,
            timeout_minutes,
            next,
            timeout_next,
        } => Step::Await {
            what: what.clone(),
            deadline: now + Duration::minutes(i64::from(*timeout_minutes)),
            next: next.clone(),
            timeout_next: timeout_next.clone(),
        },
        Node::Branch {
            condition,
            then,
            otherwise,
        } => go(
            None,
            if holds(condition, facts) {
                then
            } else {
                otherwise
            },
        ),
        Node::Split { arms } => {
            let weights: Vec<u32> = arms.iter().map(|a| a.weight).collect();
            let salt = format!("{journey_id}:{name}");
            match holdout::arm(&salt, customer, &weights).and_then(|i| arms.get(i)) {
                Some(a) => Step::Go {
                    effect: None,
                    arm: Some(a.name.clone()),
                    next: a.next.clone(),
                },
                None => Step::Exit,
            }
        }
        Node::Send {
            template,
            channel,
            transactional,
            quiet_hours,
            offer_placement,
            survey,
            next,
        } => go(
            Some(Effect::Send {
                template: template.clone(),
                channel: *channel,
                transactional: *transactional,
                quiet: *quiet_hours,
                offer_placement: offer_placement.clone(),
                survey: *survey,
            }),
            next,
        ),
        Node::SetTrait {
            name: t,
            value,
            next,
        } => go(
            Some(Effect::SetTrait {
                name: t.clone(),
                value: value.clone(),
            }),
            next,
        ),
        Node::AddPoints {
            points,
            reason,
            next,
        } => go(
            Some(Effect::AddPoints {
                points: *points,
                reason: reason.clone(),
            }),
            next,
        ),
        Node::OpenLead { campaign, next } => go(
            Some(Effect::OpenLead {
                campaign: campaign.clone(),
            }),
            next,
        ),
        Node::Webhook { channel, next } => go(
            Some(Effect::Webhook {
                channel: channel.clone(),
            }),
            next,
        ),
        Node::Exit => Step::Exit,
    }
}

fn weekday(d: chrono::Weekday) -> Weekday {
    match d {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    }
}

/// The instant of a date trait (`YYYY-MM-DD`, or `MM-DD` / a birth date read as yearly) plus
/// `offset_days`, at local `at`; `None` when the trait is missing or the instant has passed
/// (a yearly date moves to its next occurrence instead).
pub fn date_trait_instant(
    traits: &Map<String, Value>,
    name: &str,
    offset_days: i32,
    at: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let raw = traits.get(name)?.as_str()?;
    let time = NaiveTime::parse_from_str(at, "%H:%M").ok()?;
    let shift = |d: NaiveDate| d.checked_add_signed(Duration::days(i64::from(offset_days)));
    let yearly = name.contains("birth") || raw.len() == 5;
    let (month, day, year) = match raw.len() {
        5 => {
            let d = NaiveDate::parse_from_str(&format!("2000-{raw}"), "%Y-%m-%d").ok()?;
            (d.month(), d.day(), None)
        }
        _ => {
            let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
            (d.month(), d.day(), Some(d.year()))
        }
    };
    if !yearly {
        let date = NaiveDate::from_ymd_opt(year?, month, day)?;
        let when = localtime::instant(tz, shift(date)?, time);
        return (when >= now).then_some(when);
    }
    let this_year = now.with_timezone(&tz).year();
    (this_year..=this_year + 1).find_map(|y| {
        // 29 February falls on 28 February in other years.
        let date = NaiveDate::from_ymd_opt(y, month, day)
            .or_else(|| NaiveDate::from_ymd_opt(y, month, day.saturating_sub(1)))?;
        let when = localtime::instant(tz, shift(date)?, time);
        (when >= now).then_some(when)
    })
}

/// Whether `c` holds for `f`.
pub fn holds(c: &Condition, f: &Facts) -> bool {
    match c {
        Condition::All(cs) => cs.iter().all(|c| holds(c, f)),
        Condition::Any(cs) => cs.iter().any(|c| holds(c, f)),
        Condition::Not(c) => !holds(c, f),
        Condition::Trait { name, op, value } => compare(*op, f.traits.get(name), value.as_ref()),
        Condition::InSegment { segment } => f.segments.contains(segment),
        Condition::Stage { stages } => f.stage.as_ref().is_some_and(|s| stages.contains(s)),
        Condition::Tier { tiers } => f.tier.as_ref().is_some_and(|t| tiers.contains(t)),
        Condition::Value { op, value } => f
            .value
            .is_some_and(|v| compare(*op, Some(&Value::from(v)), Some(&Value::from(*value)))),
        Condition::Consent { purpose, channel } => {
            f.consents.contains(&(purpose.clone(), *channel))
        }
        Condition::EventSeen { name } => f.events_seen.contains(name),
        Condition::Opened { node } => f.opened.contains(node),
        Condition::Clicked { node } => f.clicked.contains(node),
    }
}

/// `actual op expected`; a missing value satisfies nothing but `ne`.
pub fn compare(op: Op, actual: Option<&Value>, expected: Option<&Value>) -> bool {
    let Some(a) = actual.filter(|a| !a.is_null()) else {
        return matches!(op, Op::Ne) && expected.is_some_and(|e| !e.is_null());
    };
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    match (op, expected) {
        (Op::Exists, _) => true,
        (Op::Eq, Some(e)) => a == e || (num(a).is_some() && num(a) == num(e)),
        (Op::Ne, Some(e)) => !(a == e || (num(a).is_some() && num(a) == num(e))),
        (Op::In, Some(Value::Array(items))) => {
            items.iter().any(|e| compare(Op::Eq, Some(a), Some(e)))
        }
        (Op::Contains, Some(Value::String(e))) => {
            a.as_str().is_some_and(|s| s.contains(e.as_str()))
        }
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(e)) => match (num(a), num(e)) {
            (Some(x), Some(y)) => match op {
                Op::Gt => x > y,
                Op::Gte => x >= y,
                Op::Lt => x < y,
                _ => x <= y,
            },
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::domain::journeys::{parse, Limits};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn journey() -> Journey {
        parse(
            json!({
                "name": "Win-back", "time_zone": "Europe/Madrid",
                "trigger": {"stage_changed": {"to": ["lapsed"]}},
                "start": "gold",
                "nodes": {
                    "gold": {"branch": {"if": {"all": [{"tier": {"in": ["gold"]}},
                                                       {"trait": {"name": "orders", "op": "gte", "value": 3}}]},
                                        "then": "split", "else": "morning"}},
                    "split": {"split": {"arms": [{"name": "A", "weight": 1, "next": "offer"},
                                                 {"name": "B", "weight": 1, "next": "morning"}]}},
                    "morning": {"wait_until": {"time": "09:00", "days": ["mon"], "next": "offer"}},
                    "offer": {"send": {"template": "we-miss-you", "channel": "email", "next": "reply"}},
                    "reply": {"wait_for": {"for": {"event": {"name": "Order Completed"}},
                                           "timeout_minutes": 10080, "next": "done", "timeout_next": "done"}},
                    "done": "exit"
                }
            }),
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn nodes_answer_what_to_do() {
        let j = journey();
        let id = Uuid::from_u128(9);
        let now = utc("2026-12-03T10:00:00Z"); // a Thursday
        let mut f = Facts {
            tier: Some("gold".into()),
            ..Facts::default()
        };
        f.traits.insert("orders".into(), json!("4"));
        assert!(
            matches!(step(&j, id, "gold", Uuid::from_u128(1), &f, now), Step::Go { ref next, .. } if next == "split")
        );
        f.traits.insert("orders".into(), json!(2));
        assert!(
            matches!(step(&j, id, "gold", Uuid::from_u128(1), &f, now), Step::Go { ref next, .. } if next == "morning")
        );
        // Next Monday 09:00 in the customer's zone: their trait, else the journey's.
        assert_eq!(
            step(&j, id, "morning", Uuid::from_u128(1), &f, now),
            Step::Timer {
                at: utc("2026-12-07T08:00:00Z"),
                next: "offer".into()
            }
        );
        f.traits
            .insert("timezone".into(), json!("America/New_York"));
        assert_eq!(
            step(&j, id, "morning", Uuid::from_u128(1), &f, now),
            Step::Timer {
                at: utc("2026-12-07T14:00:00Z"),
                next: "offer".into()
            }
        );
        assert!(matches!(
            step(&j, id, "offer", Uuid::from_u128(1), &f, now),
            Step::Go {
                effect: Some(Effect::Send {
                    channel: Channel::Email,
                    ..
                }),
                ..
            }
        ));
        assert!(matches!(
            step(&j, id, "reply", Uuid::from_u128(1), &f, now),
            Step::Await { deadline, .. } if deadline == now + Duration::days(7)
        ));
        assert_eq!(
            step(&j, id, "done", Uuid::from_u128(1), &f, now),
            Step::Exit
        );
    }

    #[test]
    fn a_split_takes_the_same_arm_every_time_and_both_arms_get_customers() {
        let j = journey();
        let id = Uuid::from_u128(9);
        let now = utc("2026-12-03T10:00:00Z");
        let arm_of =
            |c: u128| match step(&j, id, "split", Uuid::from_u128(c), &Facts::default(), now) {
                Step::Go { arm: Some(a), .. } => a,
                other => panic!("{other:?}"),
            };
        let arms: Vec<String> = (0..1000).map(arm_of).collect();
        assert_eq!(arms, (0..1000).map(arm_of).collect::<Vec<_>>());
        let a = arms.iter().filter(|a| *a == "A").count();
        assert!((420..=580).contains(&a), "{a}");
    }

    #[test]
    fn date_traits_give_the_next_occurrence() {
        let tz: Tz = "Europe/Madrid".parse().unwrap();
        let now = utc("2026-12-03T10:00:00Z");
        let mut t = Map::new();
        t.insert("birth_date".into(), json!("1990-12-01"));
        // Birthday passed this year: next year, 09:00 Madrid.
        assert_eq!(
            date_trait_instant(&t, "birth_date", 0, "09:00", tz, now),
            Some(utc("2027-12-01T08:00:00Z"))
        );
        // Three days before a renewal date.
        t.insert("renewal".into(), json!("2026-12-20"));
        assert_eq!(
            date_trait_instant(&t, "renewal", -3, "10:00", tz, now),
            Some(utc("2026-12-17T09:00:00Z"))
        );
        t.insert("renewal".into(), json!("2026-11-20"));
        assert_eq!(date_trait_instant(&t, "renewal", 0, "10:00", tz, now), None);
        t.insert("anniversary".into(), json!("02-29"));
        assert_eq!(
            date_trait_instant(&t, "anniversary", 0, "10:00", tz, now),
            Some(utc("2027-02-28T09:00:00Z"))
        );
        assert_eq!(date_trait_instant(&t, "missing", 0, "10:00", tz, now), None);
    }

    #[test]
    fn comparisons() {
        assert!(compare(Op::Eq, Some(&json!("3")), Some(&json!(3))));
        assert!(compare(
            Op::In,
            Some(&json!("pro")),
            Some(&json!(["basic", "pro"]))
        ));
        assert!(compare(Op::Ne, None, Some(&json!("x"))));
        assert!(!compare(Op::Eq, None, Some(&json!("x"))));
        assert!(!compare(Op::Gt, Some(&json!("abc")), Some(&json!(1))));
        assert!(compare(
            Op::Contains,
            Some(&json!("hello world")),
            Some(&json!("lo w"))
        ));
        assert!(compare(Op::Exists, Some(&json!(false)), None));
        assert!(!compare(Op::Exists, Some(&Value::Null), None));
    }

    proptest! {
        #[test]
        fn not_negates_and_all_any_agree_with_their_parts(
            seg in any::<bool>(), stage in any::<bool>(), seen in any::<bool>(),
        ) {
            let mut f = Facts::default();
            if seg { f.segments.insert(Uuid::from_u128(1)); }
            if stage { f.stage = Some("lapsed".into()); }
            if seen { f.events_seen.insert("Order Completed".into()); }
            let parts = vec![
                Condition::InSegment { segment: Uuid::from_u128(1) },
                Condition::Stage { stages: vec!["lapsed".into()] },
                Condition::EventSeen { name: "Order Completed".into() },
            ];
            let all = Condition::All(parts.clone());
            let any = Condition::Any(parts.clone());
            prop_assert_eq!(holds(&all, &f), seg && stage && seen);
            prop_assert_eq!(holds(&any, &f), seg || stage || seen);
            prop_assert_eq!(holds(&Condition::Not(Box::new(all.clone())), &f), !holds(&all, &f));
        }
    }
}
