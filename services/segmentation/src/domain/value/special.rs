//! Special functions the value models need: log-gamma and log-beta (`crm_stats`, shared with
//! campaign's experiments) and the Gauss hypergeometric function.

pub use crm_stats::{ln_beta, ln_gamma};

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for `0 <= z < 1`, by its power series
/// (terms until they no longer change the sum; at most 100,000).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..100_000 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() <= sum.abs() * 1e-15 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        for n in 1..20u32 {
            let factorial: f64 = (1..n).map(f64::from).product::<f64>();
            assert!(
                (ln_gamma(f64::from(n)) - factorial.ln()).abs() < 1e-10,
                "n = {n}"
            );
        }
        let sqrt_pi = std::f64::consts::PI.sqrt();
        assert!((ln_gamma(0.5) - sqrt_pi.ln()).abs() < 1e-12);
        assert!((ln_gamma(1.5) - (sqrt_pi / 2.0).ln()).abs() < 1e-12);
        // Γ(0.1) = 9.513507698668732
        assert!((ln_gamma(0.1) - 9.513_507_698_668_732_f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z
        for z in [0.1_f64, 0.5, 0.9] {
            let expected = -(1.0 - z).ln() / z;
            assert!(
                (hyp2f1(1.0, 1.0, 2.0, z) - expected).abs() < 1e-10,
                "z = {z}"
            );
        }
        // ₂F₁(a, b; b; z) = (1 − z)^(−a)
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.3) - 0.7_f64.powf(-2.5)).abs() < 1e-12);
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 0.0), 1.0);
    }
}
