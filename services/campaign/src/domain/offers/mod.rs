//! Offers (Personalize): per-customer offers decided in real time. The catalogue and its
//! checks ([`catalogue`]), eligibility in the rule language over the decision profile
//! ([`eligibility`]), the propensity model ([`propensity`], a Beta-Bernoulli posterior per
//! offer and cohort with Thompson sampling for exploration), explained arbitration
//! ([`arbitrate`]: exclusions by caps, budget and suppression, then propensity × value × lever
//! with a deterministic tie-break) and one decision from catalogue to answer ([`decide`]).

pub mod arbitrate;
pub mod catalogue;
pub mod decide;
pub mod eligibility;
pub mod propensity;
