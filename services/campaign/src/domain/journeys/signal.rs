//! What happens to a customer that journeys react to (a [`Signal`]): an event, a segment
//! entered or left, a lifecycle stage change. This module answers, without I/O, whether a
//! signal starts a journey ([`starts`]), ends an instance early ([`exits`]), is what a
//! `wait_for` node waits for ([`awaited`]), or reaches the goal ([`reaches_goal`]).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::step::compare;
use super::{Awaited, ExitCriterion, Journey, PropertyFilter, Trigger};

/// Something that happened to one customer.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal<'a> {
    /// A resolved event (`crm.events.v1`), with its properties.
    Event {
        /// The event name (`Order Completed`); page and identify calls have none.
        name: &'a str,
        /// Its properties.
        properties: &'a Map<String, Value>,
    },
    /// A segment entered (`true`) or left (`crm.segments.v1`).
    Segment {
        /// The segment.
        segment: Uuid,
        /// Entered, or left.
        entered: bool,
    },
    /// The lifecycle stage changed to `to`.
    Stage {
        /// The new stage.
        to: &'a str,
    },
}

/// Whether `signal` starts `journey`; with the entry key when it does (`customer` unless the
/// trigger names an `entry_key` property, whose value then keys the instance).
pub fn starts(journey: &Journey, signal: &Signal<'_>, customer: Uuid) -> Option<String> {
    let matched = match (&journey.trigger, signal) {
        (
            Trigger::Event {
                name,
                filters,
                entry_key,
            },
            Signal::Event {
                name: n,
                properties,
            },
        ) if name == n && filters_hold(filters, properties) => {
            return Some(match entry_key {
                None => customer.to_string(),
                Some(key) => match lookup(properties, key) {
                    Some(Value::String(s)) => format!("{customer}:{s}"),
                    Some(v) if !v.is_null() => format!("{customer}:{v}"),
                    // An event without its key property cannot be keyed: one per customer.
                    _ => customer.to_string(),
                },
            });
        }
        (
            Trigger::SegmentEntered { segment },
            Signal::Segment {
                segment: s,
                entered,
            },
        ) => *entered && segment == s,
        (
            Trigger::SegmentExited { segment },
            Signal::Segment {
                segment: s,
                entered,
            },
        ) => !*entered && segment == s,
        (Trigger::StageChanged { to }, Signal::Stage { to: t }) => to.iter().any(|s| s == t),
        _ => false,
    };
    matched.then(|| customer.to_string())
}

/// The exit criterion `signal` meets, as the exit reason (`exit_event`, `left_segment`).
pub fn exits(journey: &Journey, signal: &Signal<'_>) -> Option<&'static str> {
    journey.exit.iter().find_map(|c| match (c, signal) {
        (
            ExitCriterion::Event { name, filters },
            Signal::Event {
                name: n,
                properties,
            },
        ) if name == n && filters_hold(filters, properties) => Some("exit_event"),
        (
            ExitCriterion::LeftSegment { segment },
            Signal::Segment {
                segment: s,
                entered: false,
            },
        ) if segment == s => Some("left_segment"),
        _ => None,
    })
}

/// Whether the journey ends an instance once its goal is reached.
pub fn exits_on_goal(journey: &Journey) -> bool {
    journey
        .exit
        .iter()
        .any(|c| matches!(c, ExitCriterion::GoalReached))
}

/// Whether `signal`, at `at`, reaches the goal of an instance that entered at `entered`.
pub fn reaches_goal(
    journey: &Journey,
    signal: &Signal<'_>,
    entered: DateTime<Utc>,
    at: DateTime<Utc>,
) -> bool {
    let (Some(goal), Signal::Event { name, .. }) = (&journey.goal, signal) else {
        return false;
    };
    goal.event == *name
        && at >= entered
        && at <= entered + Duration::days(i64::from(goal.within_days))
}

/// Whether `signal` is what `what` waits for.
pub fn awaited(what: &Awaited, signal: &Signal<'_>) -> bool {
    match (what, signal) {
        (
            Awaited::Event { name, filters },
            Signal::Event {
                name: n,
                properties,
            },
        ) => name == n && filters_hold(filters, properties),
        (
            Awaited::SegmentEntered { segment },
            Signal::Segment {
                segment: s,
                entered,
            },
        ) => *entered && segment == s,
        (
            Awaited::SegmentExited { segment },
            Signal::Segment {
                segment: s,
                entered,
            },
        ) => !*entered && segment == s,
        _ => false,
    }
}

/// Whether every filter holds for `properties`. A dotted property (`items.sku`) reads into
/// objects; through a list, it holds when it holds for any element.
pub fn filters_hold(filters: &[PropertyFilter], properties: &Map<String, Value>) -> bool {
    filters.iter().all(|f| {
        let mut path = f.property.split('.');
        let first = path.next().unwrap_or_default();
        let rest: Vec<&str> = path.collect();
        values_at(properties.get(first), &rest)
            .iter()
            .any(|v| compare(f.op, Some(v), f.value.as_ref()))
            || (values_at(properties.get(first), &rest).is_empty()
                && compare(f.op, None, f.value.as_ref()))
    })
}

fn values_at<'v>(value: Option<&'v Value>, rest: &[&str]) -> Vec<&'v Value> {
    match (value, rest.split_first()) {
        (None, _) => Vec::new(),
        (Some(Value::Array(items)), Some(_)) => items
            .iter()
            .flat_map(|i| values_at(Some(i), rest))
            .collect(),
        (Some(v), None) => vec![v],
        (Some(Value::Object(o)), Some((key, more))) => values_at(o.get(*key), more),
        (Some(_), Some(_)) => Vec::new(),
    }
}

fn lookup<'v>(properties: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    let mut path = key.split('.');
    let mut at = properties.get(path.next()?)?;
    for k in path {
        at = at.get(k)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::journeys::{parse, Limits};

    fn journey(trigger: Value, exit: Value) -> Journey {
        parse(
            json!({"name": "j", "time_zone": "UTC", "trigger": trigger, "exit": exit,
                   "goal": {"event": "Order Completed", "within_days": 7},
                   "start": "done", "nodes": {"done": "exit"}}),
            &Limits::default(),
        )
        .unwrap()
    }

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn event_triggers_filter_and_key_their_instances() {
        let j = journey(
            json!({"event": {"name": "Order Completed", "entry_key": "order_id",
                   "where": [{"property": "items.sku", "op": "eq", "value": "A1"}]}}),
            json!([]),
        );
        let c = Uuid::from_u128(5);
        let p = props(json!({"order_id": "o-1", "items": [{"sku": "B"}, {"sku": "A1"}]}));
        let signal = Signal::Event {
            name: "Order Completed",
            properties: &p,
        };
        assert_eq!(starts(&j, &signal, c), Some(format!("{c}:o-1")));
        let p = props(json!({"order_id": "o-1", "items": [{"sku": "B"}]}));
        let other = Signal::Event {
            name: "Order Completed",
            properties: &p,
        };
        assert_eq!(starts(&j, &other, c), None);
        let wrong = Signal::Event {
            name: "Signed Up",
            properties: &p,
        };
        assert_eq!(starts(&j, &wrong, c), None);
    }

    #[test]
    fn segment_and_stage_triggers() {
        let s = Uuid::from_u128(9);
        let c = Uuid::from_u128(5);
        let j = journey(json!({"segment_entered": {"segment": s}}), json!([]));
        let entered = Signal::Segment {
            segment: s,
            entered: true,
        };
        let left = Signal::Segment {
            segment: s,
            entered: false,
        };
        assert_eq!(starts(&j, &entered, c), Some(c.to_string()));
        assert_eq!(starts(&j, &left, c), None);
        let j = journey(json!({"stage_changed": {"to": ["lapsed"]}}), json!([]));
        assert!(starts(&j, &Signal::Stage { to: "lapsed" }, c).is_some());
        assert!(starts(&j, &Signal::Stage { to: "active" }, c).is_none());
    }

    #[test]
    fn exits_goals_and_awaited_signals() {
        let s = Uuid::from_u128(9);
        let j = journey(
            json!({"event": {"name": "Signed Up"}}),
            json!([{"event": {"name": "Unsubscribed"}}, {"left_segment": {"segment": s}},
                   "goal_reached"]),
        );
        let none = Map::new();
        let unsub = Signal::Event {
            name: "Unsubscribed",
            properties: &none,
        };
        assert_eq!(exits(&j, &unsub), Some("exit_event"));
        let left = Signal::Segment {
            segment: s,
            entered: false,
        };
        assert_eq!(exits(&j, &left), Some("left_segment"));
        assert!(exits_on_goal(&j));
        let order = Signal::Event {
            name: "Order Completed",
            properties: &none,
        };
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(reaches_goal(&j, &order, t0, t0 + Duration::days(7)));
        assert!(!reaches_goal(&j, &order, t0, t0 + Duration::days(8)));
        assert!(!reaches_goal(&j, &unsub, t0, t0));
        let what = Awaited::Event {
            name: "Order Completed".into(),
            filters: vec![],
        };
        assert!(awaited(&what, &order));
        assert!(!awaited(&what, &unsub));
    }
}
