//! Campaign's tables, one file per table group.

pub mod contacts;
pub mod journeys;
