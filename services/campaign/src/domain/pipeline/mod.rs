//! The sales pipeline's pure half (issue 17): pipelines as data with ordered stages
//! ([`pipelines`]), leads and the moves their status may make ([`leads`]), the priority a
//! tenant configures and its explanation ([`priority`]), and assignment by rule, round robin
//! and capacity ([`assign`]), the tenant's lead settings ([`settings`]), and closed results
//! per owner from the report's histogram ([`results`]).

pub mod assign;
pub mod leads;
pub mod pipelines;
pub mod priority;
pub mod results;
pub mod settings;
