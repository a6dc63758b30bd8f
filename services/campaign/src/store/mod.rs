//! Campaign's tables, one file per table group.

pub mod channels;
pub mod connectors;
pub mod contacts;
pub mod conversations;
pub mod decisions;
pub mod experiments;
pub mod instances;
pub mod journeys;
pub mod leads;
pub mod messages;
pub mod offers;
pub mod opportunities;
pub mod pipelines;
pub mod policies;
pub mod report;
pub mod sales_report;
pub mod suppressions;
pub mod surveys;
pub mod tasks;
pub mod templates;
