//! Offers (issue 16, Personalize): per-customer offers decided in real time. This holds the
//! pure half so far: the propensity model ([`propensity`], a Beta-Bernoulli posterior per offer
//! and segment with Thompson sampling for exploration) and explained arbitration
//! ([`arbitrate`]: exclusions by caps, budget and suppression, then propensity × value × lever
//! with a deterministic tie-break).

pub mod arbitrate;
pub mod propensity;
