//! Campaign's tables, one file per table group.

pub mod contacts;
pub mod instances;
pub mod journeys;
pub mod suppressions;
