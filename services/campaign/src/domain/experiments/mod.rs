//! Experiments (Personalize): A/B/n tests of offers, messages or journeys. The definition and
//! its checks ([`definition`]), assignment by salted hash with a holdout carved out first
//! ([`assign`]), the statistics ([`analysis`]: relative uplift by Welch's t-test with
//! delta-method variance, the sample-ratio-mismatch check) on the special functions of
//! `crm_stats`, and the results with their minimum sample ([`results`]).

pub mod analysis;
pub mod assign;
pub mod definition;
pub mod results;
