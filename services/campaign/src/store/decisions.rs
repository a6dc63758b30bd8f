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

use crate::domain::offers::decide::{Excluded, Offered};
use crate::domain::offers::eligibility::DecisionProfile;
use crate::store::offers::{self, CustomerRef, ProfileColumns};

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

/// Every active offer's impressions and acceptances per cohort (the propensity model's
/// evidence), for `offers::cache::Catalogue` to keep.
pub async fn stats(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<HashMap<(Uuid, String), (u64, u64)>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64, i64)> = sqlx::query_as(
        "SELECT s.offer_id, s.cohort, s.shown, s.accepted
         FROM offer_stats s JOIN offers o ON o.tenant_id = s.tenant_id AND o.id = s.offer_id
         WHERE s.tenant_id = $1 AND o.status = 'active'",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    let count = |x: i64| u64::try_from(x).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(offer, cohort, shown, accepted)| ((offer, cohort), (count(shown), count(accepted))))
        .collect())
}

/// What must be counted exactly at each decision: the customer's impressions of each offer
/// (all, and since the window's start) and rejections since then, and every customer's
/// impressions and the spent budget of the offers with a global cap or a budget.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactCounts {
    /// Per offer the customer had outcomes of: impressions, recent impressions, recent
    /// rejections.
    pub mine: HashMap<Uuid, (u64, u32, u32)>,
    /// Per capped or budgeted offer: impressions by everyone, budget spent.
    pub totals: HashMap<Uuid, (u64, f64)>,
}

/// The columns `profile_and_counts` adds to the profile.
#[derive(Debug, sqlx::FromRow)]
struct CountColumns {
    mine_ids: Vec<Uuid>,
    mine_all: Vec<i64>,
    mine_recent: Vec<i64>,
    mine_rejected: Vec<i64>,
    total_ids: Vec<Uuid>,
    total_impressions: Vec<i64>,
    total_spent: Vec<f64>,
}

/// A decision profile with the exact counts.
#[derive(Debug, sqlx::FromRow)]
struct ProfileAndCounts {
    #[sqlx(flatten)]
    profile: ProfileColumns,
    #[sqlx(flatten)]
    counts: CountColumns,
}

/// What a decision reads, in one round trip: the customer's id (the survivor of a merged id,
/// never an erased one), decision profile and the exact counts (`ExactCounts`) for the
/// offers of `capped` (those with a global cap or a budget); `None` when the mirror knows no
/// such customer.
pub async fn profile_and_counts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: &CustomerRef,
    capped: &[Uuid],
    window_start: DateTime<Utc>,
) -> Result<Option<(Uuid, DecisionProfile, ExactCounts)>, sqlx::Error> {
    let more = ", m.mine_ids, m.mine_all, m.mine_recent, m.mine_rejected,
                  t.total_ids, t.total_impressions, t.total_spent";
    let joins = "CROSS JOIN LATERAL (
           SELECT coalesce(array_agg(offer_id), '{}') AS mine_ids,
                  coalesce(array_agg(impressions), '{}') AS mine_all,
                  coalesce(array_agg(recent), '{}') AS mine_recent,
                  coalesce(array_agg(rejected), '{}') AS mine_rejected
           FROM (SELECT offer_id,
                        count(*) FILTER (WHERE kind = 'impression') AS impressions,
                        count(*) FILTER (WHERE kind = 'impression' AND at >= $4) AS recent,
                        count(*) FILTER (WHERE kind = 'reject' AND at >= $4) AS rejected
                 FROM offer_outcomes
                 WHERE tenant_id = $1 AND customer_id = c.customer_id
                 GROUP BY offer_id) g) m
         CROSS JOIN LATERAL (
           SELECT coalesce(array_agg(offer_id), '{}') AS total_ids,
                  coalesce(array_agg(impressions), '{}') AS total_impressions,
                  coalesce(array_agg(spent), '{}') AS total_spent
           FROM offer_totals WHERE tenant_id = $1 AND offer_id = ANY($3)) t";
    let row: Option<ProfileAndCounts> = sqlx::query_as(&offers::contact_sql(customer, more, joins))
        .bind(tenant)
        .bind(customer.key())
        .bind(capped)
        .bind(window_start)
        .fetch_optional(conn)
        .await?;
    let Some(ProfileAndCounts { profile, counts: c }) = row else {
        return Ok(None);
    };
    let (id, profile) = profile.into_profile();
    let count = |v: &[i64], i: usize| u64::try_from(v.get(i).copied().unwrap_or(0)).unwrap_or(0);
    let small = |v: &[i64], i: usize| u32::try_from(count(v, i)).unwrap_or(u32::MAX);
    let mine = (c.mine_ids.iter().enumerate())
        .map(|(i, offer)| {
            let counted = (
                count(&c.mine_all, i),
                small(&c.mine_recent, i),
                small(&c.mine_rejected, i),
            );
            (*offer, counted)
        })
        .collect();
    let totals = (c.total_ids.iter().enumerate())
        .map(|(i, offer)| {
            let spent = c.total_spent.get(i).copied().unwrap_or(0.0);
            (*offer, (count(&c.total_impressions, i), spent))
        })
        .collect();
    Ok(Some((id, profile, ExactCounts { mine, totals })))
}

/// A customer's first exposure to an experiment, stored with the decision that exposed it:
/// the experiment and the arm's index (`None`: the holdout).
pub type Exposure = (Uuid, Option<usize>);

/// Stores a decision, and the customer's exposure to the placement's experiment unless one is
/// on record, in one statement (no transaction round trips), holding the customer's contact
/// row while it runs (`FOR KEY SHARE`, as `offers::hold_contact`): `false`, and nothing
/// stored, when the contact is gone (merged or erased since it was read).
///
/// The commit does not wait for the WAL flush: a decision is a record of an answer already
/// computed, so a crash of PostgreSQL itself may lose the last fraction of a second of them;
/// a crash of this part loses nothing. Outcomes, which spend caps and budgets, keep the
/// synchronous commit (docs/campaign.md).
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    cohort: &str,
    d: &DecisionRecord,
    exposure: Option<Exposure>,
) -> Result<bool, sqlx::Error> {
    let arm = exposure.map(|(_, arm)| arm.map_or(-1, |a| i32::try_from(a).unwrap_or(i32::MAX)));
    let done = sqlx::query(
        "WITH held AS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND customer_id = $3
                       FOR KEY SHARE),
         -- Local to the statement's own transaction, and read at its commit.
         relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
         exposed AS (INSERT INTO experiment_exposures
                         (tenant_id, experiment_id, customer_id, arm, exposed_at)
                     SELECT $1, $11, $3, $12, $9 FROM held WHERE $11::uuid IS NOT NULL
                     ON CONFLICT DO NOTHING)
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
    .bind(exposure.map(|(experiment, _)| experiment))
    .bind(arm)
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
