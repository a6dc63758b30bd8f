//! Per-tenant settings: lifecycle thresholds, lead scoring, event retention and the value
//! horizon, and their checks. Stored by [`crate::store::settings`].

use serde::{Deserialize, Serialize};

use crate::domain::lead::LeadScoring;
use crate::domain::lifecycle::Thresholds;

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(as = SegmentationSettings)]
pub struct Settings {
    /// Lifecycle stage thresholds.
    pub lifecycle: Thresholds,
    /// Lead scoring rules.
    pub lead_scoring: LeadScoring,
    /// Days events are kept for windowed conditions and lead scoring (default 365, at most 730).
    pub retention_days: u32,
    /// Weeks of expected purchases and lifetime value (default 52).
    pub horizon_weeks: f64,
    /// Minutes a decaying lead score is trusted before it is recomputed (default 60).
    pub lead_recheck_minutes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lifecycle: Thresholds::default(),
            lead_scoring: LeadScoring::default(),
            retention_days: 365,
            horizon_weeks: 52.0,
            lead_recheck_minutes: 60,
        }
    }
}

impl Settings {
    /// What is wrong with these settings, if anything (shown to the API caller).
    pub fn problem(&self) -> Option<String> {
        if let Some(p) = self.lifecycle.problem() {
            return Some(format!("lifecycle: {p}"));
        }
        if let Some(p) = self.lead_scoring.problem() {
            return Some(format!("lead_scoring: {p}"));
        }
        if !(1..=730).contains(&self.retention_days) {
            return Some("retention_days must be 1 to 730".into());
        }
        if !(self.horizon_weeks.is_finite()
            && self.horizon_weeks > 0.0
            && self.horizon_weeks <= 520.0)
        {
            return Some("horizon_weeks must be above 0 and at most 520".into());
        }
        if !(1..=10_080).contains(&self.lead_recheck_minutes) {
            return Some("lead_recheck_minutes must be 1 to 10080".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(Settings::default().problem(), None);
        let mut s = Settings::default();
        s.lifecycle.active_days = 400;
        assert!(s.problem().unwrap().starts_with("lifecycle"));
        let s: Result<Settings, _> = serde_json::from_str(r#"{"retention_days": 30, "colour": 1}"#);
        assert!(s.is_err());
        let s: Settings = serde_json::from_str(r#"{"retention_days": 30}"#).unwrap();
        assert_eq!(s.horizon_weeks, 52.0);
    }
}
