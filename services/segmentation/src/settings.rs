//! Per-tenant settings: lifecycle thresholds, lead scoring, event retention and the value
//! horizon. Stored as one JSON document; every change bumps the tenant's generation so that
//! evaluators reload.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::lead::LeadScoring;
use crate::lifecycle::Thresholds;

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
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

/// The tenant's settings (defaults when none were saved).
pub async fn load(conn: &mut PgConnection, tenant: &str) -> Result<Settings, sqlx::Error> {
    let row: Option<(sqlx::types::Json<Settings>,)> =
        sqlx::query_as("SELECT settings FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(s,)| s.0).unwrap_or_default())
}

/// Saves the tenant's settings (already checked) and bumps its generation.
pub async fn save(
    conn: &mut PgConnection,
    tenant: &str,
    settings: &Settings,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, settings, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE
         SET settings = EXCLUDED.settings, updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(tenant)
    .bind(sqlx::types::Json(settings))
    .bind(by)
    .execute(&mut *conn)
    .await?;
    bump_generation(conn, tenant).await
}

/// The advisory lock that orders evaluations against changes of the tenant's model: every
/// evaluating transaction holds it shared ([`hold_generation`]), a change takes it exclusive
/// ([`bump_generation`]).
const GENERATION_LOCK: &str = "hashtextextended('crm.segmentation.generation:' || $1, 0)";

/// Holds the tenant's generation steady until the caller's transaction ends: a change of
/// segments or settings waits for this transaction, and this one waits for a change in
/// progress. A transaction that evaluated with the old model has therefore committed before
/// the change does, so the recompute that follows the change sees every customer it touched.
/// Without it, a customer created by an evaluation of the old model while the recompute was
/// already past its id never got the new segment.
pub async fn hold_generation(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "SELECT pg_advisory_xact_lock_shared({GENERATION_LOCK})"
    ))
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the tenant's segments or settings as changed (see [`hold_generation`]).
pub async fn bump_generation(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({GENERATION_LOCK})"))
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO tenant_generations (tenant_id, generation) VALUES ($1, 1)
         ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_generations.generation + 1",
    )
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's current generation (0 before any change).
pub async fn generation(conn: &mut PgConnection, tenant: &str) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT generation FROM tenant_generations WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map_or(0, |(g,)| g))
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
