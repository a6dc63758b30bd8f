//! Checking a journey when it is saved: it parses into the closed types (unknown fields
//! refused), its graph is whole (every name it follows exists, every node is reachable from
//! `start`, no loop, so every instance ends), and its values are within bounds. An error names
//! the faulty place by JSON pointer (`/nodes/wait/wait/minutes`) and says what would be
//! accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use super::cron::Cron;
use super::{
    Awaited, Condition, Entry, ExitCriterion, Journey, Node, Op, PropertyFilter, Reentry, Trigger,
};

/// Bounds on journeys.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most nodes in one journey.
    pub max_nodes: usize,
    /// Most arms of a split, entries of a list, filters of an event.
    pub max_list: usize,
    /// Deepest nesting of `all` / `any` / `not` in a condition.
    pub max_depth: usize,
    /// Longest name or string.
    pub max_string: usize,
    /// Longest wait, in minutes (one year).
    pub max_wait_minutes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_nodes: 100,
            max_list: 20,
            max_depth: 6,
            max_string: 200,
            max_wait_minutes: 525_600,
        }
    }
}

/// Why a journey was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JourneyError {
    /// JSON pointer of the faulty place (`""` for the whole document).
    pub path: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, JourneyError> {
    Err(JourneyError {
        path: path.into(),
        message: message.into(),
    })
}

/// Parses and checks a journey.
pub fn parse(value: Value, limits: &Limits) -> Result<Journey, JourneyError> {
    let size = count(&value);
    if size > limits.max_nodes * 60 {
        return fail("", format!("document too large ({size} JSON values)"));
    }
    let journey: Journey = serde_path_to_error::deserialize(value).map_err(|e| JourneyError {
        path: pointer(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    check(&journey, limits)?;
    Ok(journey)
}

/// The number of JSON values in `v`.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// serde_path_to_error's `nodes.wait.wait.minutes` / `arms[1]` as a JSON pointer.
fn pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        let mut rest = segment;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                out.push('/');
                out.push_str(&rest[..open]);
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
            out.push('/');
            out.push_str(rest.get(open + 1..close).unwrap_or(""));
            rest = rest.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Every check beyond the types.
fn check(j: &Journey, l: &Limits) -> Result<(), JourneyError> {
    text(&j.name, "/name", l)?;
    if chrono_tz::Tz::from_str(&j.time_zone).is_err() {
        return fail(
            "/time_zone",
            format!(
                "`{}` is not an IANA time zone such as Europe/Madrid",
                j.time_zone
            ),
        );
    }
    if j.holdout_percent > 50 {
        return fail(
            "/holdout_percent",
            "at most 50 (percent of entrants held out)",
        );
    }
    check_trigger(&j.trigger, l)?;
    check_entry(&j.entry)?;
    if j.exit.len() > l.max_list {
        return fail("/exit", format!("at most {} exit criteria", l.max_list));
    }
    for (i, x) in j.exit.iter().enumerate() {
        let at = format!("/exit/{i}");
        match x {
            ExitCriterion::Event { name, filters } => {
                text(name, &format!("{at}/event/name"), l)?;
                check_filters(filters, &format!("{at}/event/where"), l)?;
            }
            ExitCriterion::LeftSegment { .. } => {}
            ExitCriterion::GoalReached if j.goal.is_none() => {
                return fail(format!("{at}/goal_reached"), "the journey has no `goal`");
            }
            ExitCriterion::GoalReached => {}
        }
    }
    if let Some(g) = &j.goal {
        text(&g.event, "/goal/event", l)?;
        if !(1..=365).contains(&g.within_days) {
            return fail("/goal/within_days", "1 to 365 days");
        }
    }
    check_graph(j, l)?;
    for (name, node) in &j.nodes {
        check_node(j, name, node, l)?;
    }
    Ok(())
}

fn check_trigger(t: &Trigger, l: &Limits) -> Result<(), JourneyError> {
    match t {
        Trigger::Event {
            name,
            filters,
            entry_key,
        } => {
            text(name, "/trigger/event/name", l)?;
            check_filters(filters, "/trigger/event/where", l)?;
            if let Some(k) = entry_key {
                text(k, "/trigger/event/entry_key", l)?;
            }
        }
        Trigger::SegmentEntered { .. } | Trigger::SegmentExited { .. } => {}
        Trigger::Schedule { cron, .. } => {
            Cron::parse(cron).map_err(|m| JourneyError {
                path: "/trigger/schedule/cron".into(),
                message: m,
            })?;
        }
        Trigger::DateTrait {
            name,
            offset_days,
            at,
        } => {
            text(name, "/trigger/date_trait/name", l)?;
            if offset_days.unsigned_abs() > 366 {
                return fail("/trigger/date_trait/offset_days", "-366 to 366 days");
            }
            time_of_day(at, "/trigger/date_trait/at")?;
        }
        Trigger::StageChanged { to } => names(to, "/trigger/stage_changed/to", l)?,
    }
    Ok(())
}

fn check_entry(e: &Entry) -> Result<(), JourneyError> {
    match (e.reentry, e.cooldown_hours) {
        (Reentry::Never, Some(_)) => fail(
            "/entry/cooldown_hours",
            "a cooldown needs `\"reentry\": \"after_exit\"`",
        ),
        (_, Some(h)) if h == 0 || h > 24 * 366 => fail("/entry/cooldown_hours", "1 to 8784 hours"),
        _ => Ok(()),
    }
}

/// Every name followed exists, every node is reachable from `start`, and there is no loop.
fn check_graph(j: &Journey, l: &Limits) -> Result<(), JourneyError> {
    if j.nodes.is_empty() || j.nodes.len() > l.max_nodes {
        return fail("/nodes", format!("1 to {} nodes", l.max_nodes));
    }
    if !j.nodes.contains_key(&j.start) {
        return fail("/start", format!("no node named `{}`", j.start));
    }
    for (name, node) in &j.nodes {
        text(name, &format!("/nodes/{name}"), l)?;
        for (i, (field, next)) in node.successors().into_iter().enumerate() {
            if !j.nodes.contains_key(next) {
                let at = match node {
                    Node::Split { .. } => format!("/nodes/{name}/split/arms/{i}/next"),
                    _ => format!("/nodes/{name}/{}/{field}", node.kind()),
                };
                return fail(at, format!("no node named `{next}`"));
            }
        }
    }
    // Depth-first from start: a node met again on the current path closes a loop.
    let mut state: BTreeMap<&str, bool> = BTreeMap::new(); // false: on the path, true: done
    let mut stack: Vec<(&str, usize)> = vec![(j.start.as_str(), 0)];
    state.insert(&j.start, false);
    while let Some((name, i)) = stack.pop() {
        let succ = j.nodes.get(name).map(Node::successors).unwrap_or_default();
        if let Some((_, next)) = succ.get(i) {
            stack.push((name, i + 1));
            match state.get(next) {
                Some(false) => {
                    return fail(
                        format!("/nodes/{name}"),
                        format!(
                        "leads back to `{next}`: a journey may not loop, every instance must end"
                    ),
                    )
                }
                Some(true) => {}
                None => {
                    state.insert(next, false);
                    stack.push((next, 0));
                }
            }
        } else {
            state.insert(name, true);
        }
    }
    let reached: BTreeSet<&str> = state.keys().copied().collect();
    if let Some(lost) = j.nodes.keys().find(|n| !reached.contains(n.as_str())) {
        return fail(
            format!("/nodes/{lost}"),
            format!("not reachable from `{}`", j.start),
        );
    }
    Ok(())
}

fn check_node(j: &Journey, name: &str, node: &Node, l: &Limits) -> Result<(), JourneyError> {
    let at = format!("/nodes/{name}/{}", node.kind());
    let minutes = |m: u32, field: &str| {
        if m == 0 || m > l.max_wait_minutes {
            fail(
                format!("{at}/{field}"),
                format!("1 to {} minutes", l.max_wait_minutes),
            )
        } else {
            Ok(())
        }
    };
    match node {
        Node::Wait { minutes: m, .. } => minutes(*m, "minutes"),
        Node::WaitUntil { time, days, .. } => {
            time_of_day(time, &format!("{at}/time"))?;
            if days.len() > 7 {
                return fail(format!("{at}/days"), "at most 7 days");
            }
            Ok(())
        }
        Node::WaitUntilDate {
            name: trait_name,
            offset_days,
            at: time,
            ..
        } => {
            text(trait_name, &format!("{at}/name"), l)?;
            if offset_days.unsigned_abs() > 366 {
                return fail(format!("{at}/offset_days"), "-366 to 366 days");
            }
            time_of_day(time, &format!("{at}/at"))
        }
        Node::WaitFor {
            what,
            timeout_minutes,
            ..
        } => {
            if let Awaited::Event { name: e, filters } = what {
                text(e, &format!("{at}/for/event/name"), l)?;
                check_filters(filters, &format!("{at}/for/event/where"), l)?;
            }
            minutes(*timeout_minutes, "timeout_minutes")
        }
        Node::Branch { condition, .. } => check_condition(j, condition, &format!("{at}/if"), 1, l),
        Node::Split { arms } => {
            if arms.len() < 2 || arms.len() > l.max_list {
                return fail(format!("{at}/arms"), format!("2 to {} arms", l.max_list));
            }
            let mut seen = BTreeSet::new();
            for (i, a) in arms.iter().enumerate() {
                text(&a.name, &format!("{at}/arms/{i}/name"), l)?;
                if !seen.insert(a.name.as_str()) {
                    return fail(format!("{at}/arms/{i}/name"), "arm names must differ");
                }
                if !(1..=100).contains(&a.weight) {
                    return fail(format!("{at}/arms/{i}/weight"), "1 to 100");
                }
            }
            Ok(())
        }
        Node::Send {
            template,
            offer_placement,
            ..
        } => {
            text(template, &format!("{at}/template"), l)?;
            match offer_placement {
                Some(p)
                    if p.is_empty()
                        || p.len() > 100
                        || !p.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
                        }) =>
                {
                    fail(
                        format!("{at}/offer_placement"),
                        "a placement: letters, digits, `_`, `-`, `.` and `/`",
                    )
                }
                _ => Ok(()),
            }
        }
        Node::SetTrait { name: t, value, .. } => {
            text(t, &format!("{at}/name"), l)?;
            if count(value) > 50 || value.to_string().len() > 2000 {
                return fail(format!("{at}/value"), "at most 2,000 characters of JSON");
            }
            Ok(())
        }
        Node::AddPoints { points, reason, .. } => {
            if !(1..=100_000).contains(points) {
                return fail(format!("{at}/points"), "1 to 100,000");
            }
            text(reason, &format!("{at}/reason"), l)
        }
        Node::OpenLead { campaign, .. } => match campaign {
            Some(c) if c.chars().count() > 200 => {
                fail(format!("{at}/campaign"), "at most 200 characters")
            }
            Some(c) => text(c, &format!("{at}/campaign"), l),
            None => Ok(()),
        },
        Node::Webhook { channel, .. } => text(channel, &format!("{at}/channel"), l),
        Node::Exit => Ok(()),
    }
}

fn check_condition(
    j: &Journey,
    c: &Condition,
    at: &str,
    depth: usize,
    l: &Limits,
) -> Result<(), JourneyError> {
    if depth > l.max_depth {
        return fail(at, format!("at most {} nested levels", l.max_depth));
    }
    match c {
        Condition::All(cs) | Condition::Any(cs) => {
            let key = if matches!(c, Condition::All(_)) {
                "all"
            } else {
                "any"
            };
            if cs.is_empty() || cs.len() > l.max_list {
                return fail(
                    format!("{at}/{key}"),
                    format!("1 to {} conditions", l.max_list),
                );
            }
            for (i, inner) in cs.iter().enumerate() {
                check_condition(j, inner, &format!("{at}/{key}/{i}"), depth + 1, l)?;
            }
            Ok(())
        }
        Condition::Not(inner) => check_condition(j, inner, &format!("{at}/not"), depth + 1, l),
        Condition::Trait { name, op, value } => {
            text(name, &format!("{at}/trait/name"), l)?;
            operand(*op, value.as_ref(), &format!("{at}/trait"))
        }
        Condition::InSegment { .. } => Ok(()),
        Condition::Stage { stages } => names(stages, &format!("{at}/stage/in"), l),
        Condition::Tier { tiers } => names(tiers, &format!("{at}/tier/in"), l),
        Condition::Value { op, value } => {
            if !matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte) {
                return fail(format!("{at}/value/op"), "one of gt, gte, lt, lte");
            }
            if !value.is_finite() {
                return fail(format!("{at}/value/value"), "a finite number");
            }
            Ok(())
        }
        Condition::Consent { purpose, .. } => text(purpose, &format!("{at}/consent/purpose"), l),
        Condition::EventSeen { name } => text(name, &format!("{at}/event_seen/name"), l),
        Condition::Opened { node } | Condition::Clicked { node } => {
            let key = if matches!(c, Condition::Opened { .. }) {
                "opened"
            } else {
                "clicked"
            };
            match j.nodes.get(node) {
                Some(Node::Send { .. }) => Ok(()),
                _ => fail(
                    format!("{at}/{key}/node"),
                    format!("`{node}` is not a `send` node of this journey"),
                ),
            }
        }
    }
}

fn check_filters(filters: &[PropertyFilter], at: &str, l: &Limits) -> Result<(), JourneyError> {
    if filters.len() > l.max_list {
        return fail(at, format!("at most {} filters", l.max_list));
    }
    for (i, f) in filters.iter().enumerate() {
        let here = format!("{at}/{i}");
        text(&f.property, &format!("{here}/property"), l)?;
        operand(f.op, f.value.as_ref(), &here)?;
    }
    Ok(())
}

/// The value an operator needs: none for `exists`, a list for `in`, a number for the
/// orderings, a string for `contains`, a scalar for `eq` / `ne`.
fn operand(op: Op, value: Option<&Value>, at: &str) -> Result<(), JourneyError> {
    let here = format!("{at}/value");
    match (op, value) {
        (Op::Exists, None) => Ok(()),
        (Op::Exists, Some(_)) => fail(here, "`exists` takes no value"),
        (_, None) => fail(here, "this operator needs a value"),
        (Op::In, Some(Value::Array(items)))
            if !items.is_empty() && items.len() <= 100 && items.iter().all(scalar) =>
        {
            Ok(())
        }
        (Op::In, Some(_)) => fail(here, "`in` takes a list of 1 to 100 strings or numbers"),
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(Value::Number(_))) => Ok(()),
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(_)) => fail(here, "a number"),
        (Op::Contains, Some(Value::String(_))) => Ok(()),
        (Op::Contains, Some(_)) => fail(here, "a string"),
        (Op::Eq | Op::Ne, Some(v)) if scalar(v) => Ok(()),
        (Op::Eq | Op::Ne, Some(_)) => fail(here, "a string, number, boolean or null"),
    }
}

fn scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn text(s: &str, at: &str, l: &Limits) -> Result<(), JourneyError> {
    if s.trim().is_empty() {
        return fail(at, "must not be empty");
    }
    if s.len() > l.max_string {
        return fail(at, format!("at most {} characters", l.max_string));
    }
    Ok(())
}

fn names(items: &[String], at: &str, l: &Limits) -> Result<(), JourneyError> {
    if items.is_empty() || items.len() > l.max_list {
        return fail(at, format!("1 to {} entries", l.max_list));
    }
    for (i, s) in items.iter().enumerate() {
        text(s, &format!("{at}/{i}"), l)?;
    }
    Ok(())
}

/// `HH:MM`, 00:00 to 23:59.
fn time_of_day(s: &str, at: &str) -> Result<(), JourneyError> {
    match chrono::NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(_) if s.len() == 5 => Ok(()),
        _ => fail(
            at,
            format!("`{s}` is not a time of day `HH:MM` (00:00 to 23:59)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn welcome() -> Value {
        json!({
            "name": "Welcome", "time_zone": "Europe/Madrid",
            "trigger": {"event": {"name": "Signed Up"}},
            "exit": [{"event": {"name": "Unsubscribed"}}, "goal_reached"],
            "goal": {"event": "Order Completed", "within_days": 14},
            "holdout_percent": 10,
            "start": "hello",
            "nodes": {
                "hello": {"send": {"template": "welcome", "channel": "email", "next": "wait"}},
                "wait": {"wait": {"minutes": 1440, "next": "bought"}},
                "bought": {"branch": {
                    "if": {"any": [{"event_seen": {"name": "Order Completed"}},
                                   {"opened": {"node": "hello"}}]},
                    "then": "done", "else": "split"}},
                "split": {"split": {"arms": [
                    {"name": "A", "weight": 50, "next": "nudge"},
                    {"name": "B", "weight": 50, "next": "morning"}]}},
                "morning": {"wait_until": {"time": "09:30", "days": ["mon", "tue"], "next": "nudge"}},
                "nudge": {"send": {"template": "first-order", "channel": "email", "next": "done"}},
                "done": "exit"
            }
        })
    }

    fn refused(mut doc: Value, pointer: &str, value: Value) -> JourneyError {
        match doc.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => panic!("no {pointer} in the sample"),
        }
        parse(doc, &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_whole_journey_parses() {
        let j = parse(welcome(), &Limits::default()).unwrap();
        assert_eq!(j.nodes.len(), 7);
        assert_eq!(j.entry.reentry, Reentry::Never);
        assert!(matches!(j.nodes["done"], Node::Exit));
    }

    #[test]
    fn errors_name_the_place_and_what_is_accepted() {
        let cases = [
            (
                "/nodes/wait/wait/next",
                json!("nowhere"),
                "/nodes/wait/wait/next",
                "no node named `nowhere`",
            ),
            (
                "/nodes/wait/wait/minutes",
                json!(0),
                "/nodes/wait/wait/minutes",
                "1 to 525600",
            ),
            (
                "/nodes/nudge/send/next",
                json!("hello"),
                "/nodes/nudge",
                "may not loop",
            ),
            ("/start", json!("wait"), "/nodes/hello", "not reachable"),
            ("/time_zone", json!("Mars/Olympus"), "/time_zone", "IANA"),
            (
                "/nodes/morning/wait_until/time",
                json!("25:00"),
                "/nodes/morning/wait_until/time",
                "HH:MM",
            ),
            (
                "/nodes/split/split/arms/1/weight",
                json!(0),
                "/nodes/split/split/arms/1/weight",
                "1 to 100",
            ),
            (
                "/nodes/split/split/arms/1/name",
                json!("A"),
                "/nodes/split/split/arms/1/name",
                "differ",
            ),
            (
                "/nodes/bought/branch/if/any/1/opened/node",
                json!("wait"),
                "/nodes/bought/branch/if/any/1/opened/node",
                "not a `send` node",
            ),
            (
                "/holdout_percent",
                json!(80),
                "/holdout_percent",
                "at most 50",
            ),
            (
                "/trigger",
                json!({"schedule": {"cron": "0 25 * * *", "segment": "00000000-0000-0000-0000-000000000001"}}),
                "/trigger/schedule/cron",
                "hour",
            ),
            (
                "/trigger",
                json!({"event": {"name": "X", "where": [{"property": "plan", "op": "in", "value": "pro"}]}}),
                "/trigger/event/where/0/value",
                "list",
            ),
            (
                "/nodes/hello/send/channel",
                json!("fax"),
                "/nodes/hello/send/channel",
                "unknown variant",
            ),
            (
                "/goal/within_days",
                json!(0),
                "/goal/within_days",
                "1 to 365",
            ),
        ];
        for (at, value, path, says) in cases {
            let e = refused(welcome(), at, value);
            assert_eq!(e.path, path, "{at}: {e}");
            assert!(e.message.contains(says), "{at}: {e}");
        }
    }

    #[test]
    fn unknown_fields_and_script_like_input_are_refused() {
        let mut doc = welcome();
        doc["nodes"]["wait"]["wait"]["eval"] = json!("process.exit()");
        let e = parse(doc, &Limits::default()).unwrap_err();
        assert_eq!(e.path, "/nodes/wait/wait/eval");
        let mut doc = welcome();
        doc["entry"] = json!({"reentry": "never", "cooldown_hours": 24});
        let e = parse(doc, &Limits::default()).unwrap_err();
        assert_eq!(e.path, "/entry/cooldown_hours");
        let mut doc = welcome();
        doc["goal"] = Value::Null;
        let e = parse(doc, &Limits::default()).unwrap_err();
        assert_eq!(e.path, "/exit/1/goal_reached");
    }

    #[test]
    fn pointers_from_serde_paths() {
        assert_eq!(
            pointer("nodes.a.split.arms[1].weight"),
            "/nodes/a/split/arms/1/weight"
        );
        assert_eq!(pointer("."), "");
        assert_eq!(pointer("exit[0]"), "/exit/0");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z_]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_is_accepted_or_refused_with_a_pointer_never_a_panic(v in arb_json()) {
            if let Err(e) = parse(v, &Limits::default()) {
                prop_assert!(e.path.is_empty() || e.path.starts_with('/'));
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn a_sample_with_one_value_replaced_never_panics(v in arb_json(), which in 0usize..12) {
            let places = ["/name", "/time_zone", "/start", "/goal", "/exit", "/nodes/wait",
                "/nodes/split/split/arms", "/nodes/bought/branch/if", "/trigger", "/entry",
                "/holdout_percent", "/nodes/hello/send"];
            let mut doc = welcome();
            if let Some(slot) = doc.pointer_mut(places[which]) {
                *slot = v;
            }
            let _ = parse(doc, &Limits::default());
        }
    }
}
