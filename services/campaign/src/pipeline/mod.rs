//! The sales pipeline's use cases (issue 17): leads opened from a qualification or the API,
//! assigned by the tenant's rules with a priority, moved through their statuses and converted
//! into opportunities, which move through a pipeline's stages to won or lost. Every change is
//! announced on `crm.interactions.v1` in its own transaction (the timeline, segment rules), and
//! a won or lost opportunity is a journey trigger (`opportunity.won`, `opportunity.lost`).

pub mod imports;
pub mod leads;
pub mod opportunities;
pub mod report;
pub mod settings_cache;
pub mod tasks;

/// Who the consumer and assignment act as in histories.
pub const SYSTEM: &str = "system";
