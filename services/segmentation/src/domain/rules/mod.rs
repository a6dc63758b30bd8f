//! The segment rule language: the grammar and its checks are `crm_rules` (shared with
//! offers' eligibility in campaign); here is what segmentation adds: evaluation over a
//! customer's [`crate::domain::facts::Facts`] ([`eval`]), the facts a rule depends on
//! ([`Dependencies`], [`Windows`]) and property filters on events ([`filter`]).
//! docs/segmentation.md lists every node with an example.

mod deps;
pub(crate) mod eval;
pub mod filter;

pub use crm_rules::*;
pub use deps::{Dependencies, Windows};
pub use eval::{evaluate, Context};
