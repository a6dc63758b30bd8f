//! Identity's domain: values and rules with no I/O. Standardisation of identifiers and traits
//! ([`standardise`]), the identifiers an event carries (`identifiers`), what it brings to a
//! customer's traits ([`traits`]) and which value wins a merge ([`survivorship`]), consent
//! changes ([`consent`]), the tenant's settings, and the probabilistic matcher ([`matching`]).

pub mod consent;
pub(crate) mod identifiers;
pub mod matching;
pub mod settings;
pub mod standardise;
pub mod survivorship;
pub mod trait_rules;
pub mod traits;
