//! One decision, from the catalogue to the ranked answer: the offers live for the placement at
//! this time, those the customer is eligible for (with the conditions that held), then either
//! the fallback (a customer in the tenant's control group, or nobody else suits) or explained
//! arbitration over what the store counted for each eligible offer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crm_rules::Rule;

use super::arbitrate::{rank, Arbitration, Candidate, Exclusion, Ranked};
use super::eligibility::{self, explain, DecisionProfile, Reason};
use super::propensity::Posterior;
use crate::domain::gate::holdout;

/// A tenant's decision settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionSettings {
    /// How offers are ranked and when they are suppressed.
    #[serde(default)]
    pub arbitration: Arbitration,
    /// Percent of customers (0-50) in the decisions' control group: they get the fallback
    /// offers, flagged `control`, so uplift can be measured against them.
    #[serde(default)]
    pub control_percent: u8,
    /// How long a decision holds, in seconds (1 to 86,400; default 300): the caller may show
    /// the answer again until then without asking.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u32,
}

fn default_ttl() -> u32 {
    300
}

impl Default for DecisionSettings {
    fn default() -> Self {
        Self {
            arbitration: Arbitration::default(),
            control_percent: 0,
            ttl_seconds: default_ttl(),
        }
    }
}

impl DecisionSettings {
    /// Checks bounds; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.control_percent > 50 {
            return Err(("/control_percent", "0 to 50"));
        }
        if !(1..=86_400).contains(&self.ttl_seconds) {
            return Err(("/ttl_seconds", "1 to 86400"));
        }
        let a = &self.arbitration;
        if !(1..=365).contains(&a.window_days) {
            return Err(("/arbitration/window_days", "1 to 365"));
        }
        if a.max_impressions > 10_000 || a.max_rejections > 10_000 {
            return Err((
                "/arbitration",
                "max_impressions and max_rejections at most 10000",
            ));
        }
        Ok(())
    }
}

/// An offer of the catalogue as decisions read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOffer {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Where it may be shown.
    pub placements: Vec<String>,
    /// What the caller shows.
    pub content: Map<String, Value>,
    /// A template key, for messages.
    pub template: Option<String>,
    /// Validity window.
    pub starts_at: Option<DateTime<Utc>>,
    /// Validity window end, exclusive.
    pub ends_at: Option<DateTime<Utc>>,
    /// Tie-break.
    pub priority: i32,
    /// Value of an acceptance.
    pub value: f64,
    /// The tenant's lever.
    pub lever: f64,
    /// Cost of an acceptance against the budget.
    pub cost: f64,
    /// Impressions per customer allowed.
    pub customer_cap: Option<u32>,
    /// Impressions in all allowed.
    pub global_cap: Option<u64>,
    /// Total cost allowed.
    pub budget: Option<f64>,
    /// A fallback offer.
    pub fallback: bool,
    /// Who may get it (`None`: everyone).
    pub rule: Option<Rule>,
}

/// What the store counted for one eligible offer and this customer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// Impressions in the customer's cohort.
    pub shown: u64,
    /// Acceptances in the customer's cohort.
    pub accepted: u64,
    /// Impressions to this customer, all time (the customer cap).
    pub customer_impressions: u64,
    /// Impressions to this customer within the suppression window.
    pub recent_impressions: u32,
    /// Rejections by this customer within the suppression window.
    pub recent_rejections: u32,
    /// Impressions to every customer (the global cap).
    pub impressions: u64,
    /// Budget spent.
    pub spent: f64,
}

/// An offer of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Offered {
    /// The offer.
    pub offer_id: Uuid,
    /// Its name.
    pub name: String,
    /// What to show.
    pub content: Map<String, Value>,
    /// Its template, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// 1 for the best.
    pub rank: u32,
    /// The eligibility conditions that held (none: the offer has no rule).
    pub eligible_because: Vec<Reason>,
    /// How arbitration scored it; absent for a fallback offer (ranked by priority only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranked_by: Option<Ranked>,
    /// A fallback offer.
    pub fallback: bool,
}

/// An eligible offer arbitration left out, and why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Excluded {
    /// The offer.
    pub offer_id: Uuid,
    /// Why.
    pub reason: Exclusion,
}

/// The answer, before it is stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decided {
    /// Best first.
    pub offers: Vec<Offered>,
    /// Eligible offers left out by caps, budget or suppression.
    pub excluded: Vec<Excluded>,
    /// The customer is in the control group (the answer is the fallback).
    pub control: bool,
    /// Nothing but the fallback suited (or the customer is in the control group).
    pub fallback_used: bool,
}

/// The offers live for `placement` at `now` and eligible for the customer.
pub fn eligible<'a>(
    offers: &'a [LiveOffer],
    placement: &str,
    profile: &DecisionProfile,
    context: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Vec<&'a LiveOffer> {
    offers
        .iter()
        .filter(|o| o.placements.iter().any(|p| p == placement))
        .filter(|o| o.starts_at.is_none_or(|t| t <= now) && o.ends_at.is_none_or(|t| now < t))
        .filter(|o| {
            o.rule
                .as_ref()
                .is_none_or(|rule| eligibility::holds(rule, profile, context))
        })
        .collect()
}

/// The conditions that made an eligible offer eligible (none: it has no rule).
pub fn reasons(
    offer: &LiveOffer,
    profile: &DecisionProfile,
    context: &Map<String, Value>,
) -> Vec<Reason> {
    offer
        .rule
        .as_ref()
        .and_then(|rule| explain(rule, profile, context))
        .unwrap_or_default()
}

/// Whether the customer is in the tenant's decisions control group (a salted hash of the id:
/// the same answer on every call and replica).
pub fn in_control(tenant: &str, customer: Uuid, percent: u8) -> bool {
    percent > 0 && holdout::held_out(&format!("{tenant}/decisions"), customer, percent)
}

/// The random source of one decision: seeded from its id, so the decision can be replayed.
pub fn rng_for(decision: Uuid) -> StdRng {
    let bytes = decision.as_bytes();
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(bytes);
    seed[16..].copy_from_slice(bytes);
    StdRng::from_seed(seed)
}

/// Arbitrates among `eligible` (from [`eligible`]) with `evidence` per offer id; `because`
/// gives the reasons of each offer answered (see [`reasons`]).
pub fn arbitrate(
    eligible: &[&LiveOffer],
    evidence: &HashMap<Uuid, Evidence>,
    settings: &DecisionSettings,
    control: bool,
    limit: usize,
    decision: Uuid,
    because: impl Fn(&LiveOffer) -> Vec<Reason>,
) -> Decided {
    let fallbacks = || {
        let mut f: Vec<&LiveOffer> = eligible.iter().copied().filter(|o| o.fallback).collect();
        f.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        f.into_iter()
            .take(limit)
            .enumerate()
            .map(|(i, o)| offered(o, because(o), i, None))
            .collect::<Vec<_>>()
    };
    if control {
        return Decided {
            offers: fallbacks(),
            excluded: Vec::new(),
            control: true,
            fallback_used: true,
        };
    }
    let candidates: Vec<Candidate> = eligible
        .iter()
        .filter(|o| !o.fallback)
        .map(|o| candidate(o, evidence.get(&o.id).copied().unwrap_or_default()))
        .collect();
    let mut rng = rng_for(decision);
    let outcome = rank(&candidates, &settings.arbitration, limit, &mut rng);
    let excluded = outcome
        .excluded
        .iter()
        .map(|(offer_id, reason)| Excluded {
            offer_id: *offer_id,
            reason: *reason,
        })
        .collect();
    if outcome.ranked.is_empty() {
        return Decided {
            offers: fallbacks(),
            excluded,
            control: false,
            fallback_used: true,
        };
    }
    let by_id: HashMap<Uuid, &LiveOffer> = eligible.iter().map(|o| (o.id, *o)).collect();
    let offers = outcome
        .ranked
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            by_id
                .get(&r.offer_id)
                .map(|o| offered(o, because(o), i, Some(r)))
        })
        .collect();
    Decided {
        offers,
        excluded,
        control: false,
        fallback_used: false,
    }
}

fn candidate(o: &LiveOffer, e: Evidence) -> Candidate {
    Candidate {
        offer_id: o.id,
        priority: o.priority,
        value: o.value,
        lever: o.lever,
        posterior: Posterior::from_outcomes(e.shown, e.accepted),
        recent_impressions: e.recent_impressions,
        recent_rejections: e.recent_rejections,
        customer_cap_left: o
            .customer_cap
            .map(|c| u64::from(c).saturating_sub(e.customer_impressions)),
        global_cap_left: o.global_cap.map(|c| c.saturating_sub(e.impressions)),
        budget_left: o.budget.map(|b| b - e.spent),
        cost: o.cost,
    }
}

fn offered(o: &LiveOffer, reasons: Vec<Reason>, index: usize, ranked: Option<Ranked>) -> Offered {
    Offered {
        offer_id: o.id,
        name: o.name.clone(),
        content: o.content.clone(),
        template: o.template.clone(),
        rank: u32::try_from(index + 1).unwrap_or(u32::MAX),
        eligible_because: reasons,
        ranked_by: ranked,
        fallback: o.fallback,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::offers::eligibility;

    fn offer(n: u128, value: f64) -> LiveOffer {
        LiveOffer {
            id: Uuid::from_u128(n),
            name: format!("offer {n}"),
            placements: vec!["home".into()],
            content: Map::new(),
            template: None,
            starts_at: None,
            ends_at: None,
            priority: 0,
            value,
            lever: 1.0,
            cost: 0.0,
            customer_cap: None,
            global_cap: None,
            budget: None,
            fallback: false,
            rule: None,
        }
    }

    fn decide(
        offers: &[LiveOffer],
        profile: &DecisionProfile,
        evidence: &HashMap<Uuid, Evidence>,
        settings: &DecisionSettings,
        control: bool,
    ) -> Decided {
        let now = Utc::now();
        let e = eligible(offers, "home", profile, &Map::new(), now);
        let because = |o: &LiveOffer| reasons(o, profile, &Map::new());
        arbitrate(
            &e,
            evidence,
            settings,
            control,
            3,
            Uuid::from_u128(99),
            because,
        )
    }

    #[test]
    fn placement_window_and_eligibility_filter_the_catalogue() {
        let now = Utc::now();
        let mut elsewhere = offer(1, 10.0);
        elsewhere.placements = vec!["cart".into()];
        let mut expired = offer(2, 10.0);
        expired.ends_at = Some(now - chrono::Duration::hours(1));
        let mut future = offer(3, 10.0);
        future.starts_at = Some(now + chrono::Duration::hours(1));
        let mut gold = offer(4, 10.0);
        gold.rule = Some(eligibility::parse(json!({"loyalty_tier": {"in": ["gold"]}})).unwrap());
        let open = offer(5, 10.0);
        let catalogue = [elsewhere, expired, future, gold, open];
        let silver = DecisionProfile {
            tier: Some("silver".into()),
            ..DecisionProfile::default()
        };
        let ids = |p: &DecisionProfile| -> Vec<u128> {
            eligible(&catalogue, "home", p, &Map::new(), now)
                .iter()
                .map(|o| o.id.as_u128())
                .collect()
        };
        assert_eq!(ids(&silver), [5]);
        let gold_member = DecisionProfile {
            tier: Some("GOLD".into()),
            ..DecisionProfile::default()
        };
        assert_eq!(ids(&gold_member), [4, 5]);
    }

    #[test]
    fn the_control_group_gets_the_fallback_and_is_flagged() {
        let mut fb = offer(9, 1.0);
        fb.fallback = true;
        let catalogue = [offer(1, 50.0), fb];
        let p = DecisionProfile::default();
        let s = DecisionSettings::default();
        let d = decide(&catalogue, &p, &HashMap::new(), &s, true);
        assert!(d.control && d.fallback_used);
        assert_eq!(d.offers.len(), 1);
        assert_eq!(d.offers[0].offer_id.as_u128(), 9);
        assert!(d.offers[0].ranked_by.is_none());
        let d = decide(&catalogue, &p, &HashMap::new(), &s, false);
        assert!(!d.control && !d.fallback_used);
        assert_eq!(d.offers[0].offer_id.as_u128(), 1);
    }

    #[test]
    fn caps_and_suppression_exclude_and_the_fallback_fills_in() {
        let mut capped = offer(1, 50.0);
        capped.customer_cap = Some(2);
        let mut budgeted = offer(2, 40.0);
        budgeted.budget = Some(100.0);
        budgeted.cost = 10.0;
        let mut fb = offer(9, 1.0);
        fb.fallback = true;
        let catalogue = [capped, budgeted, fb];
        let mut ev = HashMap::new();
        let p = DecisionProfile::default();
        let s = DecisionSettings::default();
        ev.insert(
            Uuid::from_u128(1),
            Evidence {
                customer_impressions: 1,
                ..Evidence::default()
            },
        );
        ev.insert(
            Uuid::from_u128(2),
            Evidence {
                spent: 95.0,
                ..Evidence::default()
            },
        );
        let d = decide(&catalogue, &p, &ev, &s, false);
        assert_eq!(d.offers.len(), 1, "{d:?}");
        assert_eq!(d.offers[0].offer_id.as_u128(), 1);
        assert_eq!(d.excluded[0].reason, Exclusion::Budget);
        ev.get_mut(&Uuid::from_u128(1))
            .unwrap()
            .customer_impressions = 2;
        let d = decide(&catalogue, &p, &ev, &s, false);
        assert!(d.fallback_used && !d.control);
        assert_eq!(d.offers[0].offer_id.as_u128(), 9);
        let reasons: Vec<Exclusion> = d.excluded.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, [Exclusion::CustomerCap, Exclusion::Budget]);
        // One rejection (the default) suppresses the offer for this customer.
        ev.get_mut(&Uuid::from_u128(1))
            .unwrap()
            .customer_impressions = 0;
        ev.get_mut(&Uuid::from_u128(1)).unwrap().recent_rejections = 1;
        let d = decide(&catalogue, &p, &ev, &s, false);
        assert_eq!(d.excluded[0].reason, Exclusion::SuppressedRejections);
    }

    #[test]
    fn control_membership_is_stable_and_near_the_percent() {
        let ids: Vec<Uuid> = (0..20_000u128)
            .map(|n| Uuid::from_u128(n * 104_729 + 1))
            .collect();
        let first: Vec<bool> = ids.iter().map(|c| in_control("t1", *c, 10)).collect();
        for _ in 0..3 {
            let again: Vec<bool> = ids.iter().map(|c| in_control("t1", *c, 10)).collect();
            assert_eq!(first, again);
        }
        let share = first.iter().filter(|x| **x).count() as f64 / ids.len() as f64;
        assert!((share - 0.10).abs() < 0.01, "{share}");
        assert!(!ids.iter().any(|c| in_control("t1", *c, 0)));
        let other: Vec<bool> = ids.iter().map(|c| in_control("t2", *c, 10)).collect();
        assert_ne!(first, other, "tenants' groups are independent");
    }

    #[test]
    fn settings_are_bounded() {
        let mut s = DecisionSettings::default();
        assert!(s.check().is_ok());
        s.control_percent = 60;
        assert_eq!(s.check().unwrap_err().0, "/control_percent");
        s.control_percent = 10;
        s.ttl_seconds = 0;
        assert_eq!(s.check().unwrap_err().0, "/ttl_seconds");
    }
}
