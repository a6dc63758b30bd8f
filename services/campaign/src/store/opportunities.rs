//! `opportunities` and `opportunity_history`: where each opportunity stands, and every stage
//! it entered with when it left (velocity).

use chrono::{DateTime, NaiveDate, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// An opportunity as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct OpportunityRow {
    /// Its id.
    pub id: Uuid,
    /// Its pipeline.
    pub pipeline_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The customer's account (company), for B2B.
    pub account: Option<String>,
    /// What is being sold.
    pub name: String,
    /// The amount, to the cent.
    pub amount: f64,
    /// ISO 4217.
    pub currency: String,
    /// The stage's key.
    pub stage: String,
    /// Chance to win, 0 to 100 (the stage's default unless set).
    pub probability: i16,
    /// `open`, `won` or `lost`.
    pub status: String,
    /// Why it was lost.
    pub lost_reason: Option<String>,
    /// When it is expected to close.
    pub expected_close: Option<NaiveDate>,
    /// Who owns it.
    pub owner: Option<String>,
    /// The lead it was converted from.
    pub lead_id: Option<Uuid>,
    /// When it entered its stage.
    pub stage_since: DateTime<Utc>,
    /// When it was won or lost.
    pub closed_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, pipeline_id, customer_id, account, name, amount::float8 AS amount,
    currency, stage, probability, status, lost_reason, expected_close, owner, lead_id,
    stage_since, closed_at, created_at, updated_at";

/// An opportunity to open.
#[derive(Debug, Clone)]
pub struct NewOpportunity<'a> {
    /// Its id.
    pub id: Uuid,
    /// Its pipeline.
    pub pipeline: Uuid,
    /// The customer.
    pub customer: Uuid,
    /// The account.
    pub account: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// The amount.
    pub amount: f64,
    /// ISO 4217.
    pub currency: &'a str,
    /// The first stage and its probability.
    pub stage: (&'a str, u8),
    /// Expected close.
    pub expected_close: Option<NaiveDate>,
    /// Owner.
    pub owner: Option<&'a str>,
    /// The lead converted.
    pub lead: Option<Uuid>,
    /// What created it (an Idempotency-Key, a lead's conversion).
    pub origin: Option<&'a str>,
}

/// Opens an opportunity and its first stage in the history: `(row, true)`, or the one with
/// the same origin and `false`.
pub async fn open(
    conn: &mut PgConnection,
    tenant: &TenantId,
    o: &NewOpportunity<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(OpportunityRow, bool), sqlx::Error> {
    let inserted: Option<OpportunityRow> = sqlx::query_as(&format!(
        "INSERT INTO opportunities (tenant_id, id, pipeline_id, customer_id, account, name, amount,
             currency, stage, probability, status, expected_close, owner, lead_id, stage_since,
             origin, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, round($7::numeric, 2), $8, $9, $10, 'open', $11, $12,
             $13, $14, $15, $14, $14)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(o.id)
    .bind(o.pipeline)
    .bind(o.customer)
    .bind(o.account)
    .bind(o.name)
    .bind(o.amount)
    .bind(o.currency)
    .bind(o.stage.0)
    .bind(i16::from(o.stage.1))
    .bind(o.expected_close)
    .bind(o.owner)
    .bind(o.lead)
    .bind(now)
    .bind(o.origin)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        enter(conn, tenant, row.id, 1, &row.stage, actor, now).await?;
        return Ok((row, true));
    }
    let existing: OpportunityRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1 AND origin = $2"
    ))
    .bind(tenant)
    .bind(o.origin)
    .fetch_one(conn)
    .await?;
    Ok((existing, false))
}

async fn enter(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    seq: i32,
    stage: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO opportunity_history (tenant_id, opportunity_id, seq, stage, entered_at, actor)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(id)
    .bind(seq)
    .bind(stage)
    .bind(at)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// The opportunity, locked for a change until the transaction ends.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<OpportunityRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The opportunity.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<OpportunityRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A change to a locked opportunity, as the use case checked it.
#[derive(Debug, Clone)]
pub struct Update<'a> {
    /// The stage after it (a new stage enters the history).
    pub stage: &'a str,
    /// `open`, `won` or `lost`.
    pub status: &'a str,
    /// Chance to win.
    pub probability: u8,
    /// Why lost.
    pub lost_reason: Option<&'a str>,
    /// The amount.
    pub amount: f64,
    /// Expected close.
    pub expected_close: Option<NaiveDate>,
    /// Owner.
    pub owner: Option<&'a str>,
    /// Name.
    pub name: &'a str,
    /// Account.
    pub account: Option<&'a str>,
}

/// Applies a change; a stage change closes the current stage in the history and enters the
/// new one. The opportunity after it.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: &OpportunityRow,
    u: &Update<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<OpportunityRow, sqlx::Error> {
    let moved = u.stage != before.stage;
    if moved {
        let (seq,): (i32,) = sqlx::query_as(
            "UPDATE opportunity_history SET left_at = $3
             WHERE tenant_id = $1 AND opportunity_id = $2 AND left_at IS NULL
             RETURNING seq",
        )
        .bind(tenant)
        .bind(before.id)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        enter(conn, tenant, before.id, seq + 1, u.stage, actor, now).await?;
    }
    sqlx::query_as(&format!(
        "UPDATE opportunities SET stage = $3, status = $4, probability = $5, lost_reason = $6,
             amount = round($7::numeric, 2), expected_close = $8, owner = $9, name = $10,
             account = $11,
             stage_since = CASE WHEN $12 THEN $13 ELSE stage_since END,
             closed_at = CASE WHEN $4 = 'open' THEN NULL
                              WHEN status = 'open' THEN $13 ELSE closed_at END,
             updated_at = $13
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(before.id)
    .bind(u.stage)
    .bind(u.status)
    .bind(i16::from(u.probability))
    .bind(u.lost_reason)
    .bind(u.amount)
    .bind(u.expected_close)
    .bind(u.owner)
    .bind(u.name)
    .bind(u.account)
    .bind(moved)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// A stage an opportunity was in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct StageVisit {
    /// The stage's key.
    pub stage: String,
    /// When it entered.
    pub entered_at: DateTime<Utc>,
    /// When it left (absent: still there).
    pub left_at: Option<DateTime<Utc>>,
    /// Seconds spent there (until now when still there).
    pub seconds: f64,
    /// Who moved it there.
    pub actor: String,
}

/// The stages the opportunity went through, oldest first, with the time in each.
pub async fn history(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Vec<StageVisit>, sqlx::Error> {
    sqlx::query_as(
        "SELECT stage, entered_at, left_at,
             extract(epoch FROM coalesce(left_at, now()) - entered_at)::float8 AS seconds, actor
         FROM opportunity_history WHERE tenant_id = $1 AND opportunity_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Which opportunities to list.
#[derive(Debug, Clone, Default)]
pub struct OpportunityFilter<'a> {
    /// Only this pipeline's.
    pub pipeline: Option<Uuid>,
    /// Only in this stage.
    pub stage: Option<&'a str>,
    /// Only `open`, `won` or `lost`.
    pub status: Option<&'a str>,
    /// Only this owner's.
    pub owner: Option<&'a str>,
    /// Only this customer's.
    pub customer: Option<Uuid>,
}

/// A page of opportunities, newest first, after `after` (keyset).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &OpportunityFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OpportunityRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1
         AND ($2::uuid IS NULL OR pipeline_id = $2) AND ($3::text IS NULL OR stage = $3)
         AND ($4::text IS NULL OR status = $4) AND ($5::text IS NULL OR owner = $5)
         AND ($6::uuid IS NULL OR customer_id = $6) AND ($7::uuid IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(tenant)
    .bind(f.pipeline)
    .bind(f.stage)
    .bind(f.status)
    .bind(f.owner)
    .bind(f.customer)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves the merged customer's opportunities to the survivor.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE opportunities SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the erased customers' opportunities and their history.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM opportunity_history h USING opportunities o
         WHERE h.tenant_id = $1 AND o.tenant_id = $1 AND h.opportunity_id = o.id
         AND o.customer_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM opportunities WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}
