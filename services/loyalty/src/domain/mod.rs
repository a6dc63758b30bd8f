//! Loyalty's domain: values and rules with no I/O. The double-entry [`ledger`] (accounts,
//! entries, transactions that must balance), the tenant's [`programme`] (earn rate, tiers,
//! caps, bonuses, rewards) and [`earn_rules`] (what an event earns under a programme).

pub mod earn_rules;
pub mod ledger;
pub mod programme;
