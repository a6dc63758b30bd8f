//! Campaign's tables, one file per table group.

pub mod channels;
pub mod contacts;
pub mod decisions;
pub mod experiments;
pub mod instances;
pub mod journeys;
pub mod messages;
pub mod offers;
pub mod policies;
pub mod report;
pub mod suppressions;
pub mod templates;
