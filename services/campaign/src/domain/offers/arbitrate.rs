//! Explained arbitration among the offers a customer is eligible for: each is scored
//! propensity × value × the tenant's lever, after the exclusions (caps spent, budget spent,
//! suppressed after too many recent impressions or rejections), and ranked by score with a
//! deterministic tie-break (priority, then offer id). Every offer carries the reasons for its
//! place or its exclusion, which the decision API returns as they are.

use rand::Rng;
use serde::Serialize;
use uuid::Uuid;

use super::propensity::Posterior;

/// One eligible offer with what arbitration needs to know about it for this customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The offer.
    pub offer_id: Uuid,
    /// Higher wins a tie.
    pub priority: i32,
    /// Business value of an acceptance (positive).
    pub value: f64,
    /// The tenant's lever for this offer (1 is neutral).
    pub lever: f64,
    /// What past outcomes say of its acceptance (for the customer's segment).
    pub posterior: Posterior,
    /// Impressions to this customer within the suppression window.
    pub recent_impressions: u32,
    /// Rejections by this customer within the suppression window.
    pub recent_rejections: u32,
    /// Impressions this customer may still get (`None`: no cap).
    pub customer_cap_left: Option<u64>,
    /// Impressions every customer together may still get (`None`: no cap).
    pub global_cap_left: Option<u64>,
    /// Budget left against the offer's cost per acceptance (`None`: no budget).
    pub budget_left: Option<f64>,
    /// What one acceptance costs against the budget.
    pub cost: f64,
}

/// The tenant's arbitration settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Arbitration {
    /// Draw propensities from the posterior (Thompson sampling) instead of using its mean.
    pub explore: bool,
    /// Suppress an offer after this many impressions to the customer within `window_days`
    /// (0: never).
    pub max_impressions: u32,
    /// Suppress an offer after this many rejections within `window_days` (0: never).
    pub max_rejections: u32,
    /// The suppression window.
    pub window_days: u32,
}

impl Default for Arbitration {
    fn default() -> Self {
        Self {
            explore: false,
            max_impressions: 0,
            max_rejections: 1,
            window_days: 30,
        }
    }
}

/// Why an eligible offer was not ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// The customer's cap is spent.
    CustomerCap,
    /// The offer's global cap is spent.
    GlobalCap,
    /// The budget cannot pay for one more acceptance.
    Budget,
    /// Shown too often to this customer lately.
    SuppressedImpressions,
    /// Rejected too often by this customer lately.
    SuppressedRejections,
}

/// A ranked offer and why it stands where it does.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Ranked {
    /// The offer.
    pub offer_id: Uuid,
    /// propensity × value × lever.
    pub score: f64,
    /// The acceptance propensity used (the posterior mean, or a draw when exploring).
    pub propensity: f64,
    /// The posterior mean, for comparison.
    pub expected_propensity: f64,
    /// Its value.
    pub value: f64,
    /// Its lever.
    pub lever: f64,
    /// Its priority (the first tie-break).
    pub priority: i32,
}

/// The result of arbitration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Best first, at most the number asked for.
    pub ranked: Vec<Ranked>,
    /// Offers excluded, with the reason.
    pub excluded: Vec<(Uuid, Exclusion)>,
}

fn exclusion(c: &Candidate, a: &Arbitration) -> Option<Exclusion> {
    if c.customer_cap_left == Some(0) {
        return Some(Exclusion::CustomerCap);
    }
    if c.global_cap_left == Some(0) {
        return Some(Exclusion::GlobalCap);
    }
    if c.budget_left.is_some_and(|b| b < c.cost) {
        return Some(Exclusion::Budget);
    }
    if a.max_impressions > 0 && c.recent_impressions >= a.max_impressions {
        return Some(Exclusion::SuppressedImpressions);
    }
    if a.max_rejections > 0 && c.recent_rejections >= a.max_rejections {
        return Some(Exclusion::SuppressedRejections);
    }
    None
}

/// Ranks `candidates` under `arbitration`, keeping the best `limit`. `rng` is used only when
/// exploring; seeded from the decision, the same decision ranks the same way.
pub fn rank<R: Rng + ?Sized>(
    candidates: &[Candidate],
    arbitration: &Arbitration,
    limit: usize,
    rng: &mut R,
) -> Outcome {
    let mut out = Outcome::default();
    // A stable order before any draw, so a seeded decision is reproducible whatever order
    // the candidates came in.
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| c.offer_id);
    for c in sorted {
        if let Some(why) = exclusion(c, arbitration) {
            out.excluded.push((c.offer_id, why));
            continue;
        }
        let expected = c.posterior.mean();
        let propensity = if arbitration.explore {
            c.posterior.sample(rng)
        } else {
            expected
        };
        out.ranked.push(Ranked {
            offer_id: c.offer_id,
            score: propensity * c.value * c.lever,
            propensity,
            expected_propensity: expected,
            value: c.value,
            lever: c.lever,
            priority: c.priority,
        });
    }
    out.ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.priority.cmp(&a.priority))
            .then(a.offer_id.cmp(&b.offer_id))
    });
    out.ranked.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn offer(n: u128, value: f64, shown: u64, accepted: u64) -> Candidate {
        Candidate {
            offer_id: Uuid::from_u128(n),
            priority: 0,
            value,
            lever: 1.0,
            posterior: Posterior::from_outcomes(shown, accepted),
            recent_impressions: 0,
            recent_rejections: 0,
            customer_cap_left: None,
            global_cap_left: None,
            budget_left: None,
            cost: 0.0,
        }
    }

    fn ids(o: &Outcome) -> Vec<u128> {
        o.ranked.iter().map(|r| r.offer_id.as_u128()).collect()
    }

    #[test]
    fn offers_rank_by_propensity_times_value_times_lever() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = offer(1, 10.0, 98, 8); // 0.09 × 10 = 0.9
        let b = offer(2, 50.0, 98, 2); // 0.03 × 50 = 1.5
        let mut c = offer(3, 10.0, 98, 8); // as a, lever 2 → 1.8
        c.lever = 2.0;
        let o = rank(&[a, b, c], &Arbitration::default(), 10, &mut rng);
        assert_eq!(ids(&o), vec![3, 2, 1]);
        assert!((o.ranked[0].score - 0.09 * 10.0 * 2.0).abs() < 1e-12);
        let top_two = rank(
            &[
                offer(1, 1.0, 0, 0),
                offer(2, 2.0, 0, 0),
                offer(3, 3.0, 0, 0),
            ],
            &Arbitration::default(),
            2,
            &mut rng,
        );
        assert_eq!(ids(&top_two), vec![3, 2]);
    }

    #[test]
    fn ties_break_by_priority_then_id_whatever_the_input_order() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut high = offer(9, 1.0, 0, 0);
        high.priority = 5;
        let forward = [offer(4, 1.0, 0, 0), high.clone(), offer(2, 1.0, 0, 0)];
        let backward = [offer(2, 1.0, 0, 0), high, offer(4, 1.0, 0, 0)];
        let a = rank(&forward, &Arbitration::default(), 10, &mut rng);
        let b = rank(&backward, &Arbitration::default(), 10, &mut rng);
        assert_eq!(ids(&a), vec![9, 2, 4]);
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn caps_budgets_and_suppression_exclude_with_their_reason() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut capped = offer(1, 1.0, 0, 0);
        capped.customer_cap_left = Some(0);
        let mut global = offer(2, 1.0, 0, 0);
        global.global_cap_left = Some(0);
        let mut poor = offer(3, 1.0, 0, 0);
        poor.budget_left = Some(4.0);
        poor.cost = 5.0;
        let mut seen = offer(4, 1.0, 0, 0);
        seen.recent_impressions = 3;
        let mut rejected = offer(5, 1.0, 0, 0);
        rejected.recent_rejections = 1;
        let mut fine = offer(6, 1.0, 0, 0);
        fine.customer_cap_left = Some(1);
        fine.budget_left = Some(5.0);
        fine.cost = 5.0;
        let policy = Arbitration {
            max_impressions: 3,
            max_rejections: 1,
            ..Arbitration::default()
        };
        let o = rank(
            &[capped, global, poor, seen, rejected, fine],
            &policy,
            10,
            &mut rng,
        );
        assert_eq!(ids(&o), vec![6]);
        let reasons: Vec<(u128, Exclusion)> = o
            .excluded
            .iter()
            .map(|(id, e)| (id.as_u128(), *e))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (1, Exclusion::CustomerCap),
                (2, Exclusion::GlobalCap),
                (3, Exclusion::Budget),
                (4, Exclusion::SuppressedImpressions),
                (5, Exclusion::SuppressedRejections),
            ]
        );
        // Zero thresholds never suppress.
        let lenient = Arbitration {
            max_impressions: 0,
            max_rejections: 0,
            ..Arbitration::default()
        };
        let mut many = offer(7, 1.0, 0, 0);
        many.recent_impressions = 1_000;
        many.recent_rejections = 1_000;
        assert_eq!(ids(&rank(&[many], &lenient, 10, &mut rng)), vec![7]);
    }

    #[test]
    fn exploration_draws_but_the_same_seed_decides_the_same() {
        let policy = Arbitration {
            explore: true,
            ..Arbitration::default()
        };
        let offers = [
            offer(1, 1.0, 10, 3),
            offer(2, 1.0, 10, 4),
            offer(3, 1.0, 0, 0),
        ];
        let first = rank(&offers, &policy, 3, &mut StdRng::seed_from_u64(42));
        let again = rank(&offers, &policy, 3, &mut StdRng::seed_from_u64(42));
        assert_eq!(first, again);
        assert!(first
            .ranked
            .iter()
            .any(|r| r.propensity != r.expected_propensity));
    }
}
