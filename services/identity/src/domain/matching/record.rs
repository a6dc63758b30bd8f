//! A record as the matcher sees it: one standardised value per schema field.

use super::compare::Value;

/// A record ready for matching: one optional value per schema field.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Values in schema field order; `None` when missing.
    pub values: Vec<Option<Value>>,
}
