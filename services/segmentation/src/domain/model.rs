//! A tenant's segments and settings compiled for evaluation: rules parsed, dependencies
//! known, segments in dependency order, and which segments a change can alter. Loaded and
//! cached by `engine::catalog`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use crate::domain::rules::{Dependencies, Rule, Windows};
use crate::domain::settings::Settings;

/// One active segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its id.
    pub id: Uuid,
    /// Its name (published with memberships).
    pub name: String,
    /// Its current version.
    pub version: i32,
    /// Its rule.
    pub rule: Rule,
    /// What the rule reads.
    pub deps: Dependencies,
}

/// What changed for a customer, so that only the segments that can change are evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An event arrived.
    Event {
        /// Its name.
        name: String,
        /// Whether it is an order.
        is_order: bool,
    },
    /// Traits changed.
    Traits,
    /// The loyalty tier changed.
    Tier,
    /// A scoring run changed RFM scores and value predictions.
    Scores,
    /// Time passed (a window may have moved).
    Time,
    /// These segments are recomputed.
    Segments(BTreeSet<Uuid>),
    /// Everything (after a merge).
    All,
    /// Several of the above (a poll brought more than one change for the customer).
    Any(Vec<Change>),
}

impl Change {
    /// `self` and `other` together; equal changes are kept once.
    pub fn and(self, other: Change) -> Change {
        if self == other {
            return self;
        }
        let mut all = match self {
            Change::Any(v) => v,
            one => vec![one],
        };
        match other {
            Change::Any(v) => {
                for c in v {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                }
            }
            one => {
                if !all.contains(&one) {
                    all.push(one);
                }
            }
        }
        Change::Any(all)
    }
}

/// A tenant's compiled model.
#[derive(Debug, Clone)]
pub struct TenantModel {
    /// The generation it was built at.
    pub generation: i64,
    /// The tenant's settings.
    pub settings: Settings,
    /// Active segments, each after the segments it refers to.
    pub segments: Vec<Segment>,
    /// Time-dependent parts of all segments, the stage and the lead score.
    pub windows: Windows,
    /// Event names whose retained events evaluation needs.
    pub event_names: BTreeSet<String>,
}

impl TenantModel {
    /// Compiles `segments` (any order) with `settings`. Segments caught in a reference cycle
    /// (refused when saved, so only from hand-edited data) are left out.
    pub fn build(generation: i64, settings: Settings, segments: Vec<Segment>) -> Self {
        let segments = dependency_order(segments);
        let mut windows = Windows {
            stage: true,
            lead: settings.lead_scoring.is_configured(),
            ..Windows::default()
        };
        let mut event_names = BTreeSet::new();
        for s in &segments {
            windows.extend(&s.deps.windows);
            event_names.extend(s.deps.windows.sliding.keys().cloned());
            event_names.extend(s.deps.event_names.iter().cloned());
        }
        for rule in &settings.lead_scoring.behaviour {
            event_names.insert(rule.event.clone());
            windows.sliding.entry(rule.event.clone()).or_default();
        }
        Self {
            generation,
            settings,
            segments,
            windows,
            event_names,
        }
    }

    /// Whether `segment` must be evaluated for `change`.
    pub fn selects(segment: &Segment, change: &Change) -> bool {
        let d = &segment.deps;
        match change {
            Change::Event { name, is_order } => d.reads_event(name, *is_order),
            Change::Traits => d.traits,
            Change::Tier => d.tier,
            Change::Scores => d.rfm || d.value,
            Change::Time => {
                let w = &d.windows;
                !w.sliding.is_empty()
                    || !w.instants.is_empty()
                    || !w.days_since.is_empty()
                    || w.stage
                    || w.lead
            }
            Change::Segments(ids) => ids.contains(&segment.id),
            Change::All => true,
            Change::Any(changes) => changes.iter().any(|c| Self::selects(segment, c)),
        }
    }
}

/// Orders segments so that each comes after those it refers to (Kahn's algorithm); segments
/// in a cycle are dropped with a warning.
fn dependency_order(segments: Vec<Segment>) -> Vec<Segment> {
    let ids: BTreeSet<Uuid> = segments.iter().map(|s| s.id).collect();
    let mut waiting: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut dependents: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for s in &segments {
        let refs: Vec<Uuid> = s
            .deps
            .segments
            .iter()
            .copied()
            .filter(|r| ids.contains(r))
            .collect();
        waiting.insert(s.id, refs.len());
        for r in refs {
            dependents.entry(r).or_default().push(s.id);
        }
    }
    let mut by_id: HashMap<Uuid, Segment> = segments.into_iter().map(|s| (s.id, s)).collect();
    let mut ready: Vec<Uuid> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut out = Vec::with_capacity(by_id.len());
    while let Some(id) = ready.pop() {
        if let Some(s) = by_id.remove(&id) {
            out.push(s);
        }
        for d in dependents.get(&id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.push(*d);
                }
            }
        }
    }
    for id in by_id.keys() {
        tracing::warn!(segment = %id, "segment left out: it is part of a reference cycle");
    }
    out
}

/// The segment ids `rule` would reach through references, given the other segments' rules:
/// `Err(path)` when saving it as `id` would close a cycle.
pub fn find_cycle(
    id: Uuid,
    rule: &Rule,
    others: &HashMap<Uuid, BTreeSet<Uuid>>,
) -> Result<(), Vec<Uuid>> {
    let mut stack: Vec<(Uuid, Vec<Uuid>)> = Dependencies::of(rule)
        .segments
        .into_iter()
        .map(|r| (r, vec![id, r]))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        if at == id {
            return Err(path);
        }
        if !seen.insert(at) {
            continue;
        }
        for next in others.get(&at).into_iter().flatten() {
            let mut p = path.clone();
            p.push(*next);
            stack.push((*next, p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::parse;

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

    fn refers(id: u128) -> String {
        format!(r#"{{"segment": {{"id": "{}"}}}}"#, Uuid::from_u128(id))
    }

    #[test]
    fn segments_come_after_those_they_refer_to_and_cycles_are_found() {
        let model = TenantModel::build(
            1,
            Settings::default(),
            vec![
                seg(1, &refers(2)),
                seg(2, &refers(3)),
                seg(3, r#"{"trait": {"name": "a", "op": "exists"}}"#),
            ],
        );
        let order: Vec<u128> = model.segments.iter().map(|s| s.id.as_u128()).collect();
        assert_eq!(order, vec![3, 2, 1]);

        let mut others = HashMap::new();
        others.insert(Uuid::from_u128(1), BTreeSet::from([Uuid::from_u128(2)]));
        others.insert(Uuid::from_u128(2), BTreeSet::from([Uuid::from_u128(3)]));
        let cycle =
            find_cycle(Uuid::from_u128(3), &parse(&refers(1)).unwrap(), &others).unwrap_err();
        assert_eq!(cycle.first(), Some(&Uuid::from_u128(3)));
        assert_eq!(cycle.last(), Some(&Uuid::from_u128(3)));
        assert!(find_cycle(Uuid::from_u128(4), &parse(&refers(1)).unwrap(), &others).is_ok());
        assert!(find_cycle(Uuid::from_u128(5), &parse(&refers(5)).unwrap(), &others).is_err());
    }

    #[test]
    fn only_segments_that_can_change_are_selected() {
        let email = seg(
            1,
            r#"{"event": {"name": "Email Opened", "at_least": 1, "within_days": 7}}"#,
        );
        let plan = seg(
            2,
            r#"{"trait": {"name": "plan", "op": "eq", "value": "pro"}}"#,
        );
        let opened = Change::Event {
            name: "Email Opened".into(),
            is_order: false,
        };
        assert!(TenantModel::selects(&email, &opened));
        assert!(!TenantModel::selects(&plan, &opened));
        assert!(TenantModel::selects(&plan, &Change::Traits));
        assert!(TenantModel::selects(&email, &Change::Time));
        assert!(!TenantModel::selects(&plan, &Change::Time));
    }
}
