//! Experiments (issue 16, Personalize): A/B/n tests of offers, messages or journeys. This
//! holds the pure half: assignment by salted hash with a holdout carved out first
//! ([`assign`]) and the statistics of the results ([`analysis`]: relative uplift by Welch's
//! t-test with delta-method variance, the sample-ratio-mismatch check), on the special
//! functions of `crm_stats`. Storage, the API and the results' minimum sample come with the
//! experiments' store and routes.

pub mod analysis;
pub mod assign;
