//! The part's tables: customers' activity and facts, segments.

pub mod activity;
pub mod bulk;
pub mod copy;
pub mod facts;
pub mod segments;
pub mod settings;
