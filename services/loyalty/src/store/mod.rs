//! The part's tables.

pub mod api_writes;
pub mod ledger;
pub mod members;
pub mod messages;
pub mod orders;
pub mod programmes;
pub mod rewards;
pub mod tiers;
