//! `decisions`, `offer_outcomes`, `offer_totals` and `offer_stats`: every decision answered,
//! the outcomes reported for its offers (once per kind), and what arbitration counts from them:
//! caps, spent budgets, recent impressions and rejections, and the propensity model's evidence
//! per offer and cohort.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::offers::decide::{Evidence, Excluded, Offered};

/// A decision as answered and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    /// Quote it when reporting outcomes.
    pub decision_id: Uuid,
    /// The customer (the survivor, when the caller named a merged id).
    pub customer_id: Uuid,
    /// Where the offers are shown.
    pub placement: String,
    /// The context the decision was asked in.
    pub context: Map<String, Value>,
    /// Best first.
    pub offers: Vec<Offered>,
    /// Eligible offers arbitration left out, and why.
    pub excluded: Vec<Excluded>,
    /// The customer is in the control group: the answer is the fallback.
    pub control: bool,
    /// Nothing but the fallback suited (or the customer is in the control group).
    pub fallback_used: bool,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// The answer holds until then.
    pub expires_at: DateTime<Utc>,
    /// The experiment running on the placement and the customer's place in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentPlace>,
}

/// A customer's place in the experiment of a decision's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentPlace {
    /// The experiment.
    pub experiment_id: Uuid,
    /// The arm's key, absent in the holdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// In the holdout: the answer is the fallback.
    pub holdout: bool,
}

/// An offer, its cohort's impressions and acceptances, the customer's impressions (all,
/// recent) and recent rejections, everyone's impressions, the budget spent.
type EvidenceRow = (Uuid, i64, i64, i64, i64, i64, i64, f64);

/// Counts for each of `offers` and this customer, as arbitration needs them.
pub async fn evidence(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    cohort: &str,
    offers: &[Uuid],
    window_start: DateTime<Utc>,
) -> Result<HashMap<Uuid, Evidence>, sqlx::Error> {
    if offers.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<EvidenceRow> = sqlx::query_as(
        "WITH mine AS (
             SELECT offer_id,
                    count(*) FILTER (WHERE kind = 'impression') AS impressions,
                    count(*) FILTER (WHERE kind = 'impression' AND at >= $5) AS recent_impressions,
                    count(*) FILTER (WHERE kind = 'reject' AND at >= $5) AS recent_rejections
             FROM offer_outcomes WHERE tenant_id = $1 AND customer_id = $3
             GROUP BY offer_id),
         stats AS (SELECT offer_id, shown, accepted FROM offer_stats
                   WHERE tenant_id = $1 AND cohort = $4 AND offer_id = ANY($2)),
         totals AS (SELECT offer_id, impressions, spent FROM offer_totals
                    WHERE tenant_id = $1 AND offer_id = ANY($2))
         SELECT o.id,
             coalesce(s.shown, 0), coalesce(s.accepted, 0),
             coalesce(m.impressions, 0), coalesce(m.recent_impressions, 0),
             coalesce(m.recent_rejections, 0),
             coalesce(t.impressions, 0), coalesce(t.spent, 0)
         FROM unnest($2::uuid[]) AS o(id)
         LEFT JOIN stats s ON s.offer_id = o.id
         LEFT JOIN totals t ON t.offer_id = o.id
         LEFT JOIN mine m ON m.offer_id = o.id",
    )
    .bind(tenant)
    .bind(offers)
    .bind(customer)
    .bind(cohort)
    .bind(window_start)
    .fetch_all(conn)
    .await?;
    let count = |x: i64| u64::try_from(x).unwrap_or(0);
    let small = |x: i64| u32::try_from(x).unwrap_or(u32::MAX);
    Ok(rows
        .into_iter()
        .map(
            |(id, shown, accepted, mine, recent, rejected, all, spent)| {
                (
                    id,
                    Evidence {
                        shown: count(shown),
                        accepted: count(accepted),
                        customer_impressions: count(mine),
                        recent_impressions: small(recent),
                        recent_rejections: small(rejected),
                        impressions: count(all),
                        spent,
                    },
                )
            },
        )
        .collect())
}

/// Stores a decision, holding the customer's contact row until the transaction ends (`FOR KEY
/// SHARE`, as `offers::hold_contact`); `false`, and nothing stored, when the contact is gone
/// (merged or erased since it was read).
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    cohort: &str,
    d: &DecisionRecord,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "WITH held AS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND customer_id = $3
                       FOR KEY SHARE),
         -- The transaction's commit need not wait for the WAL flush (see `offers::decide`);
         -- set here rather than by one more round trip.
         relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
         INSERT INTO decisions (tenant_id, id, customer_id, placement, context, cohort, control,
             offers, created_at, expires_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM held, relaxed",
    )
    .bind(tenant)
    .bind(d.decision_id)
    .bind(d.customer_id)
    .bind(&d.placement)
    .bind(Json(&d.context))
    .bind(cohort)
    .bind(d.control)
    .bind(Json(d))
    .bind(d.decided_at)
    .bind(d.expires_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stored decision with its cohort.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<(DecisionRecord, String)>, sqlx::Error> {
    let row: Option<(Json<DecisionRecord>, String)> =
        sqlx::query_as("SELECT offers, cohort FROM decisions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(d, c)| (d.0, c)))
}

/// An outcome as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeRow {
    /// The decision.
    pub decision_id: Uuid,
    /// The offer.
    pub offer_id: Uuid,
    /// `impression`, `click`, `accept` or `reject`.
    pub kind: String,
    /// `api`, `event` (a tracked event) or `implied` (an acceptance implies an impression).
    pub source: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The customer's latest decisions (newest first) and the outcomes of each.
pub async fn for_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    limit: i64,
) -> Result<(Vec<DecisionRecord>, Vec<OutcomeRow>), sqlx::Error> {
    let decisions: Vec<(Json<DecisionRecord>,)> = sqlx::query_as(
        "SELECT offers FROM decisions WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY created_at DESC, id LIMIT $3",
    )
    .bind(tenant)
    .bind(customer)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = decisions.iter().map(|(d,)| d.0.decision_id).collect();
    let outcomes: Vec<(Uuid, Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT decision_id, offer_id, kind, source, at FROM offer_outcomes
         WHERE tenant_id = $1 AND decision_id = ANY($2) ORDER BY at, kind",
    )
    .bind(tenant)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok((
        decisions.into_iter().map(|(d,)| d.0).collect(),
        outcomes
            .into_iter()
            .map(|(decision_id, offer_id, kind, source, at)| OutcomeRow {
                decision_id,
                offer_id,
                kind,
                source,
                at,
            })
            .collect(),
    ))
}

/// What an outcome is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The offer was shown.
    Impression,
    /// The customer clicked it.
    Click,
    /// The customer took it.
    Accept,
    /// The customer turned it down.
    Reject,
}

impl OutcomeKind {
    /// As stored and published (`offer.<kind>`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Impression => "impression",
            OutcomeKind::Click => "click",
            OutcomeKind::Accept => "accept",
            OutcomeKind::Reject => "reject",
        }
    }
}

/// Records one outcome of a decision's offer, once: `false` if it was recorded already.
/// A new impression counts toward the caps and the propensity model (in the decision's
/// cohort); a new acceptance toward the model and the budget (`cost`). The caller runs this in
/// the transaction that publishes the outcome.
#[allow(clippy::too_many_arguments)]
pub async fn record_outcome(
    conn: &mut PgConnection,
    tenant: &TenantId,
    decision: Uuid,
    customer: Uuid,
    cohort: &str,
    offer: Uuid,
    kind: OutcomeKind,
    cost: f64,
    source: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let fresh = sqlx::query(
        "INSERT INTO offer_outcomes (tenant_id, decision_id, offer_id, kind, customer_id, source, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(decision)
    .bind(offer)
    .bind(kind.as_str())
    .bind(customer)
    .bind(source)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    let (shown, accepted, spent) = match kind {
        OutcomeKind::Impression => (1i64, 0i64, 0.0),
        OutcomeKind::Accept => (0, 1, cost),
        OutcomeKind::Click | OutcomeKind::Reject => return Ok(true),
    };
    sqlx::query(
        "INSERT INTO offer_totals AS t (tenant_id, offer_id, impressions, accepts, spent)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, offer_id) DO UPDATE SET impressions = t.impressions + $3,
             accepts = t.accepts + $4, spent = t.spent + $5",
    )
    .bind(tenant)
    .bind(offer)
    .bind(shown)
    .bind(accepted)
    .bind(spent)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO offer_stats AS s (tenant_id, offer_id, cohort, shown, accepted)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, offer_id, cohort) DO UPDATE SET shown = s.shown + $4,
             accepted = s.accepted + $5",
    )
    .bind(tenant)
    .bind(offer)
    .bind(cohort)
    .bind(shown)
    .bind(accepted)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Follows a merge: the merged customer's decisions and outcomes move to the survivor, so caps
/// and suppression count them together.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    for set in [
        "decisions SET customer_id = $3, offers = jsonb_set(offers, '{customer_id}', to_jsonb($3::text))",
        "offer_outcomes SET customer_id = $3",
    ] {
        sqlx::query(&format!(
            "UPDATE {set} WHERE tenant_id = $1 AND customer_id = $2"
        ))
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Follows an erasure: the customer's decisions (with their context) and outcomes go; the
/// counts they fed stay, as they hold nothing personal.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    for table in ["decisions", "offer_outcomes"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND customer_id = ANY($2)"
        ))
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
