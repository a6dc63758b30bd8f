//! The Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV"): a customer's
//! spend per purchase is Gamma(p, ν) with ν ~ Gamma(q, γ). Fitted by maximum likelihood on
//! customers with at least one repeat purchase, from (frequency, mean repeat spend).

use serde::Serialize;

use super::optimize::nelder_mead;
use super::special::ln_gamma;
use super::transactions::Summary;

/// Fitted Gamma-Gamma parameters (`v` is the paper's γ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaGamma {
    /// Shape of the spend per purchase.
    pub p: f64,
    /// Shape of the spend scale's distribution.
    pub q: f64,
    /// Scale of the spend scale's distribution.
    pub v: f64,
}

/// Log-likelihood of a customer's mean spend `m` over `x` purchases.
fn log_likelihood(g: &GammaGamma, x: f64, m: f64) -> f64 {
    let GammaGamma { p, q, v } = *g;
    ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
        + q * v.ln()
        + (p * x - 1.0) * m.ln()
        + (p * x) * x.ln()
        - (p * x + q) * (x * m + v).ln()
}

/// Whether a customer's history can be used by the model: repeat purchases with a positive
/// mean spend.
fn usable(c: &Summary) -> bool {
    c.frequency > 0.0 && c.monetary > 0.0
}

impl GammaGamma {
    /// The total log-likelihood of the usable customers.
    pub fn log_likelihood(&self, customers: &[Summary]) -> f64 {
        customers
            .iter()
            .filter(|c| usable(c))
            .map(|c| log_likelihood(self, c.frequency, c.monetary))
            .sum()
    }

    /// Maximum-likelihood fit on customers with repeat purchases (Nelder–Mead over
    /// log-parameters, from all ones); `None` when there are none or the fit fails.
    pub fn fit(customers: &[Summary]) -> Option<Self> {
        let repeat: Vec<Summary> = customers.iter().filter(|c| usable(c)).cloned().collect();
        if repeat.is_empty() {
            return None;
        }
        let of = |x: &[f64]| GammaGamma {
            p: x[0].exp(),
            q: x[1].exp(),
            v: x[2].exp(),
        };
        let n = repeat.len() as f64;
        let mut xs: Vec<f64> = repeat.iter().map(|c| c.frequency).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let rows: Vec<(usize, f64, f64)> = repeat
            .iter()
            .map(|c| {
                (
                    xs.partition_point(|v| *v < c.frequency),
                    c.frequency,
                    c.monetary,
                )
            })
            .collect();
        // Terms that depend only on x are computed once per distinct x.
        let total = |g: &GammaGamma| -> f64 {
            let GammaGamma { p, q, v } = *g;
            let (lg_q, q_ln_v) = (ln_gamma(q), q * v.ln());
            let per_x: Vec<f64> = xs
                .iter()
                .map(|x| ln_gamma(p * x + q) - ln_gamma(p * x) - lg_q + q_ln_v + (p * x) * x.ln())
                .collect();
            rows.iter()
                .map(|&(i, x, m)| {
                    per_x[i] + (p * x - 1.0) * m.ln() - (p * x + q) * (x * m + v).ln()
                })
                .sum()
        };
        let min = nelder_mead(|x| -total(&of(x)) / n, &[0.0; 3], 0.5, 1e-10, 20_000);
        let fitted = of(&min.x);
        [fitted.p, fitted.q, fitted.v]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
            .then_some(fitted)
    }

    /// Expected spend per purchase of a customer with `x` repeat purchases of mean `m`; the
    /// population mean `p v / (q − 1)` without repeats (infinite when `q <= 1`).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        if x > 0.0 && m > 0.0 {
            p * (v + x * m) / (p * x + q - 1.0)
        } else {
            p * v / (q - 1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_spend_shrinks_towards_the_population_mean() {
        let g = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let population = g.expected_spend(0.0, 0.0);
        assert!((population - 6.25 * 15.44 / 2.74).abs() < 1e-9);
        // One purchase of 100 pulls less than ten purchases of 100.
        let one = g.expected_spend(1.0, 100.0);
        let ten = g.expected_spend(10.0, 100.0);
        assert!(population < one && one < ten && ten < 100.0, "{one} {ten}");
    }
}
