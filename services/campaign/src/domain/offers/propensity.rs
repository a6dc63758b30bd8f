//! The propensity of a customer to accept an offer, learned per offer and segment from past
//! outcomes: a Beta-Bernoulli model whose posterior after `accepted` of `shown` is
//! Beta(α₀ + accepted, β₀ + shown − accepted). A decision uses the posterior mean, or, where
//! the tenant chooses exploration, one draw from the posterior (Thompson sampling), so a new
//! offer gets shown while its evidence is thin and a poor one fades as evidence accumulates.

use rand::Rng;
use serde::Serialize;

/// A Beta posterior over an offer's acceptance rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Posterior {
    /// α: prior successes plus acceptances.
    pub alpha: f64,
    /// β: prior failures plus impressions not accepted.
    pub beta: f64,
}

impl Posterior {
    /// The uniform prior Beta(1, 1) updated with `accepted` of `shown`.
    pub fn from_outcomes(shown: u64, accepted: u64) -> Self {
        Self::with_prior(1.0, 1.0, shown, accepted)
    }

    /// The prior Beta(`alpha`, `beta`) updated with `accepted` of `shown`.
    pub fn with_prior(alpha: f64, beta: f64, shown: u64, accepted: u64) -> Self {
        let accepted = accepted.min(shown);
        Self {
            alpha: alpha + accepted as f64,
            beta: beta + (shown - accepted) as f64,
        }
    }

    /// The posterior mean, `α / (α + β)`.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// One draw from the posterior (for Thompson sampling).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let x = gamma(rng, self.alpha);
        let y = gamma(rng, self.beta);
        if x + y > 0.0 {
            x / (x + y)
        } else {
            self.mean()
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Gamma(`shape`, 1) draw (Marsaglia and Tsang, 2000; shapes below 1 by boosting).
fn gamma<R: Rng + ?Sized>(rng: &mut R, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_posterior_counts_outcomes_and_its_draws_have_its_mean() {
        let p = Posterior::from_outcomes(100, 30);
        assert_eq!((p.alpha, p.beta), (31.0, 71.0));
        assert!((p.mean() - 31.0 / 102.0).abs() < 1e-12);
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| p.sample(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        // Beta(31, 71): mean 0.3039, sd 0.0453; the mean of 20,000 draws is within 0.002.
        assert!((mean - p.mean()).abs() < 0.002, "{mean}");
        assert!(draws.iter().all(|d| (0.0..=1.0).contains(d)));
        // Small shapes (below 1) draw too.
        let thin = Posterior::with_prior(0.5, 0.5, 0, 0);
        assert!((0..1000).all(|_| (0.0..=1.0).contains(&thin.sample(&mut rng))));
    }

    /// Two offers accepted 4% and 8% of the time; Thompson sampling shows the better one more
    /// and more as outcomes come in, and its posterior means settle near the true rates.
    #[test]
    fn thompson_sampling_moves_toward_the_better_offer_on_simulated_outcomes() {
        let truth = [0.04, 0.08];
        let mut shown = [0u64; 2];
        let mut accepted = [0u64; 2];
        let mut rng = StdRng::seed_from_u64(2026);
        let mut picks_late = [0u64; 2];
        for round in 0..20_000 {
            let draws: Vec<f64> = (0..2)
                .map(|i| Posterior::from_outcomes(shown[i], accepted[i]).sample(&mut rng))
                .collect();
            let pick = usize::from(draws[1] > draws[0]);
            shown[pick] += 1;
            if rng.random::<f64>() < truth[pick] {
                accepted[pick] += 1;
            }
            if round >= 15_000 {
                picks_late[pick] += 1;
            }
        }
        assert!(shown[1] > shown[0] * 3, "{shown:?}");
        assert!(picks_late[1] as f64 / 5_000.0 > 0.9, "{picks_late:?}");
        let better = Posterior::from_outcomes(shown[1], accepted[1]).mean();
        assert!((better - 0.08).abs() < 0.01, "{better}");
    }
}
