//! What a rule depends on: which changes can alter its answer (so the stream re-evaluates only
//! those segments), and which passing instants can (so time windows are re-evaluated without
//! any event).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{Metric, Rule};
use crate::domain::facts::Facts;
use crate::domain::lifecycle;
use crate::domain::lifecycle::Thresholds;

/// The inputs a rule reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dependencies {
    /// Events of these names change it.
    pub event_names: BTreeSet<String>,
    /// Any event changes it (`events_total`, `days_since_last_seen`, ...).
    pub any_event: bool,
    /// Orders change it (order aggregates, categories, stage).
    pub orders: bool,
    /// Trait changes change it.
    pub traits: bool,
    /// RFM runs change it.
    pub rfm: bool,
    /// Lead scores change it.
    pub lead: bool,
    /// Loyalty tier changes change it.
    pub tier: bool,
    /// Value-model runs change it.
    pub value: bool,
    /// Memberships of these segments change it.
    pub segments: BTreeSet<Uuid>,
    /// The instants at which its answer may change with no new input.
    pub windows: Windows,
}

/// Time-dependent parts of rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows {
    /// Sliding windows: event name → window lengths in days.
    pub sliding: BTreeMap<String, BTreeSet<u32>>,
    /// Fixed instants (`between` bounds).
    pub instants: BTreeSet<DateTime<Utc>>,
    /// `days_since_*` thresholds: (metric, whole days at which the answer may flip).
    pub days_since: BTreeSet<(Anchor, i64)>,
    /// The lifecycle stage is read.
    pub stage: bool,
    /// The (decaying) lead score is read.
    pub lead: bool,
}

/// The instant a `days_since_*` metric counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anchor {
    /// Last order.
    LastOrder,
    /// Last event.
    LastSeen,
    /// First event.
    FirstSeen,
}

impl Dependencies {
    /// The dependencies of `rule`.
    pub fn of(rule: &Rule) -> Self {
        let mut d = Self::default();
        d.add(rule);
        d
    }

    fn add(&mut self, rule: &Rule) {
        match rule {
            Rule::All(rules) | Rule::Any(rules) => rules.iter().for_each(|r| self.add(r)),
            Rule::Not(r) => self.add(r),
            Rule::Trait(_) => self.traits = true,
            Rule::Aggregate(c) => {
                let anchor = match c.metric {
                    Metric::EventsTotal => {
                        self.any_event = true;
                        None
                    }
                    Metric::Orders
                    | Metric::Revenue
                    | Metric::AverageOrderValue
                    | Metric::LastOrderValue => {
                        self.orders = true;
                        None
                    }
                    Metric::DaysSinceLastOrder => {
                        self.orders = true;
                        Some(Anchor::LastOrder)
                    }
                    Metric::DaysSinceLastSeen => {
                        self.any_event = true;
                        Some(Anchor::LastSeen)
                    }
                    Metric::DaysSinceFirstSeen => {
                        self.any_event = true;
                        Some(Anchor::FirstSeen)
                    }
                    Metric::Count | Metric::Sum => {
                        if let Some(e) = &c.event {
                            self.event_names.insert(e.clone());
                        }
                        None
                    }
                };
                if let Some(anchor) = anchor {
                    // whole_days(anchor, now) op value flips when whole days reach floor(value)
                    // or floor(value) + 1.
                    let k = c.value.floor().clamp(-1.0, 1e6) as i64;
                    self.windows.days_since.insert((anchor, k));
                    self.windows.days_since.insert((anchor, k + 1));
                }
            }
            Rule::BoughtCategory(_) => self.orders = true,
            Rule::Event(c) => {
                self.event_names.insert(c.name.clone());
                if let Some(d) = c.within_days {
                    self.windows
                        .sliding
                        .entry(c.name.clone())
                        .or_default()
                        .insert(d);
                }
                if let Some(b) = c.between {
                    self.windows.instants.insert(b.from);
                    self.windows.instants.insert(b.to);
                    // Events dated inside the window start counting when their time comes.
                    self.windows.sliding.entry(c.name.clone()).or_default();
                }
            }
            Rule::Rfm(_) => self.rfm = true,
            Rule::Stage(_) => {
                self.orders = true;
                self.windows.stage = true;
            }
            Rule::LeadScore(_) => {
                self.lead = true;
                self.any_event = true;
                self.traits = true;
                self.windows.lead = true;
            }
            Rule::LoyaltyTier(_) => self.tier = true,
            Rule::Value(_) => self.value = true,
            Rule::Segment(s) => {
                self.segments.insert(s.id);
            }
            // Refused in segments; nothing a segment stores depends on them.
            Rule::Consent(_) | Rule::Context(_) => {}
        }
    }

    /// Whether an event named `name` (an order or not) can change the rule's answer.
    pub fn reads_event(&self, name: &str, is_order: bool) -> bool {
        self.any_event
            || (is_order && self.orders)
            || self.event_names.contains(name)
            || self.windows.lead
    }
}

impl Windows {
    /// Adds `other`'s windows to these.
    pub fn extend(&mut self, other: &Windows) {
        for (name, days) in &other.sliding {
            self.sliding.entry(name.clone()).or_default().extend(days);
        }
        self.instants.extend(&other.instants);
        self.days_since.extend(&other.days_since);
        self.stage |= other.stage;
        self.lead |= other.lead;
    }

    /// The first instant after `now` at which a rule with these windows may change its answer
    /// for `facts` without new input; `lead_recheck` bounds how long a decaying lead score is
    /// trusted. `None` when nothing can change.
    pub fn next_change(
        &self,
        facts: &Facts,
        now: DateTime<Utc>,
        thresholds: &Thresholds,
        lead_recheck: Duration,
    ) -> Option<DateTime<Utc>> {
        let mut candidates: Vec<DateTime<Utc>> = Vec::new();
        for e in &facts.events {
            if let Some(days) = self.sliding.get(&e.name) {
                // Future-dated events start counting at their time.
                candidates.push(e.at);
                candidates.extend(days.iter().map(|d| e.at + Duration::days(i64::from(*d))));
            }
        }
        candidates.extend(self.instants.iter().copied());
        for (anchor, k) in &self.days_since {
            let at = match anchor {
                Anchor::LastOrder => facts.last_order_at,
                Anchor::LastSeen => facts.last_seen_at,
                Anchor::FirstSeen => facts.first_seen_at,
            };
            if let Some(at) = at {
                candidates.push(at + Duration::days(*k));
            }
        }
        if self.stage {
            candidates.extend(lifecycle::next_change(&facts.order_days, now, thresholds));
        }
        if self.lead && !facts.events.is_empty() {
            candidates.push(now + lead_recheck);
        }
        candidates.into_iter().filter(|t| *t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::{EventFact, ORDER_COMPLETED};
    use crate::domain::lead::LeadScoring;
    use crate::domain::rules::{evaluate, parse, Context};
    use serde_json::json;

    #[test]
    fn dependencies_name_what_can_change_a_rule() {
        let rule = parse(
            &json!({"all": [
                {"event": {"name": "Email Opened", "at_least": 1, "within_days": 7}},
                {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
                {"segment": {"id": "0194a3b0-0000-7000-8000-000000000000"}}
            ]})
            .to_string(),
        )
        .unwrap();
        let d = Dependencies::of(&rule);
        assert!(d.reads_event("Email Opened", false));
        assert!(!d.reads_event("Page Viewed", false));
        assert!(!d.reads_event(ORDER_COMPLETED, true));
        assert!(d.traits && !d.rfm && !d.orders);
        assert_eq!(d.segments.len(), 1);
        assert_eq!(
            d.windows.sliding["Email Opened"]
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![7]
        );
    }

    /// Between `now` and the next change, a rule's answer does not move; sampled hourly.
    #[test]
    fn answers_hold_until_the_next_change() {
        let now = Utc::now();
        let rule = parse(
            &json!({"any": [
                {"event": {"name": ORDER_COMPLETED, "at_most": 0, "within_days": 3}},
                {"aggregate": {"metric": "days_since_last_seen", "op": "gte", "value": 5}}
            ]})
            .to_string(),
        )
        .unwrap();
        let d = Dependencies::of(&rule);
        let mut f = Facts::default();
        f.events.push(EventFact {
            name: ORDER_COMPLETED.into(),
            at: now - Duration::hours(30),
            properties: Default::default(),
        });
        f.last_seen_at = Some(now - Duration::hours(30));
        let t = Thresholds::default();
        let lead = LeadScoring::default();
        let at = |when| {
            evaluate(
                &rule,
                &f,
                &Context {
                    now: when,
                    thresholds: &t,
                    lead: &lead,
                },
            )
        };
        let mut when = now;
        let mut flips = 0;
        for _ in 0..(24 * 8) {
            let next = d
                .windows
                .next_change(&f, when, &t, Duration::hours(1))
                .unwrap_or(when + Duration::days(365));
            let answer = at(when);
            let mut probe = when + Duration::hours(1);
            while probe < next && probe < now + Duration::days(8) {
                assert_eq!(at(probe), answer, "changed before the announced instant");
                probe += Duration::hours(1);
            }
            if at(next) != answer {
                flips += 1;
            }
            when = next;
            if when > now + Duration::days(8) {
                break;
            }
        }
        assert!(flips >= 1, "the window must expire at an announced instant");
    }
}
