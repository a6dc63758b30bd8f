//! `leads`, `lead_history`, `lead_settings` and `assignment_turns`: leads as they stand, every
//! change of their status or owner, each tenant's lead settings, and round robin's last pick
//! per rule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::pipeline::leads::{LeadSource, LeadStatus};
use crate::domain::pipeline::settings::LeadSettings;

/// A lead as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct LeadRow {
    /// Its id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Where it came from.
    #[sqlx(try_from = "String")]
    pub source: LeadSource,
    /// The campaign it is attributed to, if any.
    pub campaign: Option<String>,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub status: LeadStatus,
    /// Who owns it.
    pub owner: Option<String>,
    /// Why it was disqualified.
    pub disqualify_reason: Option<String>,
    /// The assignment rule that gave it its owner (absent: assigned by hand, or not yet).
    pub assigned_by: Option<String>,
    /// Its priority when last computed (`priority_at`); the work queue's order.
    pub priority: f64,
    /// When the priority was computed.
    pub priority_at: DateTime<Utc>,
    /// Since when it waits for its first touch (absent once touched or closed).
    pub waiting_since: Option<DateTime<Utc>>,
    /// When it entered its status.
    pub status_since: DateTime<Utc>,
    /// The opportunity it was converted to.
    pub opportunity_id: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<String> for LeadSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown lead source {s}"))
    }
}

impl TryFrom<String> for LeadStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown lead status {s}"))
    }
}

const COLUMNS: &str = "id, customer_id, source, campaign, status, owner, disqualify_reason,
    assigned_by, priority, priority_at, waiting_since, status_since, opportunity_id, created_at,
    updated_at";

/// The tenant's lead settings (the defaults until saved).
pub async fn settings(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<LeadSettings, sqlx::Error> {
    let row: Option<(Json<LeadSettings>,)> =
        sqlx::query_as("SELECT settings FROM lead_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(Json(s),)| s).unwrap_or_default())
}

/// Saves the tenant's lead settings (checked by the caller).
pub async fn save_settings(
    conn: &mut PgConnection,
    tenant: &TenantId,
    settings: &LeadSettings,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lead_settings (tenant_id, settings, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE
         SET settings = EXCLUDED.settings, updated_at = now(), updated_by = EXCLUDED.updated_by",
    )
    .bind(tenant)
    .bind(Json(settings))
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// A lead to open.
#[derive(Debug, Clone)]
pub struct NewLead<'a> {
    /// Its id.
    pub id: Uuid,
    /// The customer.
    pub customer: Uuid,
    /// Where it came from.
    pub source: LeadSource,
    /// Campaign attribution.
    pub campaign: Option<&'a str>,
    /// What created it (an event id, an Idempotency-Key): a second lead with the same origin
    /// is never opened.
    pub origin: Option<&'a str>,
    /// Its owner and the rule that chose them.
    pub owner: Option<(&'a str, Option<&'a str>)>,
    /// Its priority now.
    pub priority: f64,
}

/// Opens a lead unless the customer has an open one from the same source or one with the
/// same origin exists: `(lead, true)` when opened, `(existing, false)` otherwise.
pub async fn open(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: &NewLead<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(LeadRow, bool), sqlx::Error> {
    let status = match lead.owner {
        Some(_) => LeadStatus::Assigned,
        None => LeadStatus::New,
    };
    let inserted: Option<LeadRow> = sqlx::query_as(&format!(
        "INSERT INTO leads (tenant_id, id, customer_id, source, campaign, status, owner,
             assigned_by, priority, priority_at, waiting_since, status_since, origin, created_at,
             updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10, $11, $10, $10)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(lead.id)
    .bind(lead.customer)
    .bind(lead.source.as_str())
    .bind(lead.campaign)
    .bind(status.as_str())
    .bind(lead.owner.map(|(o, _)| o))
    .bind(lead.owner.and_then(|(_, rule)| rule))
    .bind(lead.priority)
    .bind(now)
    .bind(lead.origin)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        record(
            conn,
            tenant,
            row.id,
            status,
            row.owner.as_deref(),
            row.assigned_by.as_deref(),
            actor,
            now,
        )
        .await?;
        return Ok((row, true));
    }
    let existing: LeadRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1
         AND ((origin IS NOT NULL AND origin = $4)
              OR (customer_id = $2 AND source = $3
                  AND status NOT IN ('converted', 'disqualified')))
         ORDER BY (origin IS NOT DISTINCT FROM $4) DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(lead.customer)
    .bind(lead.source.as_str())
    .bind(lead.origin)
    .fetch_one(conn)
    .await?;
    Ok((existing, false))
}

/// Appends a change to the lead's history.
#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: Uuid,
    status: LeadStatus,
    owner: Option<&str>,
    reason: Option<&str>,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lead_history (tenant_id, lead_id, at, status, owner, reason, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(lead)
    .bind(at)
    .bind(status.as_str())
    .bind(owner)
    .bind(reason)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// The lead, locked for a change until the transaction ends.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<LeadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The lead.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<LeadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A change of status and owner, as the use case checked it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The new status.
    pub status: LeadStatus,
    /// The owner after the change.
    pub owner: Option<&'a str>,
    /// The disqualify reason, or the rule that assigned.
    pub reason: Option<&'a str>,
    /// The opportunity it was converted to.
    pub opportunity: Option<Uuid>,
    /// The priority now.
    pub priority: f64,
}

/// Applies a change to a locked lead and records it in its history; the lead after it.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: &LeadRow,
    c: &Change<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<LeadRow, sqlx::Error> {
    let moved = c.status != before.status;
    // The first touch ends the wait; closing ends it too.
    let waiting = if c.status.untouched() {
        before.waiting_since
    } else {
        None
    };
    let row: LeadRow = sqlx::query_as(&format!(
        "UPDATE leads SET status = $3, owner = $4,
             disqualify_reason = CASE WHEN $3 = 'disqualified' THEN $5 END,
             assigned_by = CASE WHEN owner IS DISTINCT FROM $4 THEN NULL ELSE assigned_by END,
             opportunity_id = coalesce($6, opportunity_id),
             waiting_since = $7, priority = $8, priority_at = $9,
             status_since = CASE WHEN $10 THEN $9 ELSE status_since END, updated_at = $9
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(before.id)
    .bind(c.status.as_str())
    .bind(c.owner)
    .bind(c.reason)
    .bind(c.opportunity)
    .bind(waiting)
    .bind(c.priority)
    .bind(now)
    .bind(moved)
    .fetch_one(&mut *conn)
    .await?;
    record(
        conn, tenant, row.id, c.status, c.owner, c.reason, actor, now,
    )
    .await?;
    Ok(row)
}

/// One change in a lead's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct LeadChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The status after it.
    pub status: String,
    /// The owner after it.
    pub owner: Option<String>,
    /// The disqualify reason or the assignment rule.
    pub reason: Option<String>,
    /// Who made it (`system` for the consumer and assignment).
    pub actor: String,
}

/// The lead's history, oldest first.
pub async fn history(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: Uuid,
) -> Result<Vec<LeadChange>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, status, owner, reason, actor FROM lead_history
         WHERE tenant_id = $1 AND lead_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(lead)
    .fetch_all(conn)
    .await
}

/// Which leads to list.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter<'a> {
    /// Only this owner's.
    pub owner: Option<&'a str>,
    /// Only in this status.
    pub status: Option<LeadStatus>,
    /// Only from this source.
    pub source: Option<LeadSource>,
    /// Only this customer's.
    pub customer: Option<Uuid>,
    /// Only with at least this priority.
    pub min_priority: Option<f64>,
}

/// A page of leads, newest first, after the lead `after` (keyset).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &LeadFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<LeadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1
         AND ($2::text IS NULL OR owner = $2) AND ($3::text IS NULL OR status = $3)
         AND ($4::text IS NULL OR source = $4) AND ($5::uuid IS NULL OR customer_id = $5)
         AND ($6::float8 IS NULL OR priority >= $6) AND ($7::uuid IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(tenant)
    .bind(f.owner)
    .bind(f.status.map(LeadStatus::as_str))
    .bind(f.source.map(LeadSource::as_str))
    .bind(f.customer)
    .bind(f.min_priority)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A page of an owner's open leads, highest priority first, after `(priority, id)` (keyset).
pub async fn queue(
    conn: &mut PgConnection,
    tenant: &TenantId,
    owner: &str,
    after: Option<(f64, Uuid)>,
    limit: i64,
) -> Result<Vec<LeadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1 AND owner = $2
         AND status NOT IN ('converted', 'disqualified')
         AND ($3::float8 IS NULL OR (priority, id) < ($3, $4))
         ORDER BY priority DESC, id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(owner)
    .bind(after.map(|(p, _)| p))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Open leads per owner among `owners` (capacity).
pub async fn open_counts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    owners: &[String],
) -> Result<HashMap<String, u32>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT owner, count(*) FROM leads WHERE tenant_id = $1 AND owner = ANY($2)
         AND status NOT IN ('converted', 'disqualified') GROUP BY owner",
    )
    .bind(tenant)
    .bind(owners)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(o, n)| (o, u32::try_from(n).unwrap_or(u32::MAX)))
        .collect())
}

/// The rule's last pick, locked until the transaction ends (so two leads assigned at once
/// take consecutive turns).
pub async fn last_turn(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rule: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment_turns (tenant_id, rule_name, last_owner) VALUES ($1, $2, '')
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(rule)
    .execute(&mut *conn)
    .await?;
    let (last,): (String,) = sqlx::query_as(
        "SELECT last_owner FROM assignment_turns WHERE tenant_id = $1 AND rule_name = $2
         FOR UPDATE",
    )
    .bind(tenant)
    .bind(rule)
    .fetch_one(conn)
    .await?;
    Ok(Some(last).filter(|l| !l.is_empty()))
}

/// Records the rule's pick.
pub async fn take_turn(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rule: &str,
    owner: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE assignment_turns SET last_owner = $3 WHERE tenant_id = $1 AND rule_name = $2",
    )
    .bind(tenant)
    .bind(rule)
    .bind(owner)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the merged customer's leads to the survivor. Where both had an open lead from the
/// same source, the survivor's stays open and the merged one's is closed as `disqualified`
/// with the reason `merged` (it is in its history, not lost).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let closed: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE leads m SET status = 'disqualified', disqualify_reason = 'merged',
             waiting_since = NULL, status_since = $4, updated_at = $4
         WHERE m.tenant_id = $1 AND m.customer_id = $2
         AND m.status NOT IN ('converted', 'disqualified')
         AND EXISTS (SELECT 1 FROM leads s WHERE s.tenant_id = $1 AND s.customer_id = $3
                     AND s.source = m.source AND s.status NOT IN ('converted', 'disqualified'))
         RETURNING m.id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for (id,) in closed {
        record(
            conn,
            tenant,
            id,
            LeadStatus::Disqualified,
            None,
            Some("merged"),
            "system",
            now,
        )
        .await?;
    }
    sqlx::query("UPDATE leads SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the erased customers' leads and their history.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM lead_history h USING leads l
         WHERE h.tenant_id = $1 AND l.tenant_id = $1 AND h.lead_id = l.id
         AND l.customer_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM leads WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// What an open lead's priority is recomputed from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StalePriority {
    /// The tenant.
    pub tenant_id: String,
    /// The lead.
    pub id: Uuid,
    /// When it entered its status.
    pub status_since: DateTime<Utc>,
    /// Since when it waits for its first touch.
    pub waiting_since: Option<DateTime<Utc>>,
    /// The customer's lead score.
    pub lead_score: Option<f64>,
    /// The customer's last event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The customer's predicted lifetime value.
    pub predicted_value: Option<f64>,
}

/// Up to `batch` open leads whose priority was computed before `older_than`, locked until the
/// transaction ends (other replicas skip them), with what their priority needs.
pub async fn stale_priorities(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<StalePriority>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             SELECT tenant_id, id FROM leads
             WHERE status NOT IN ('converted', 'disqualified') AND priority_at < $1
             ORDER BY priority_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         SELECT l.tenant_id, l.id, l.status_since, l.waiting_since, c.lead_score, c.last_event_at,
                c.predicted_value
         FROM due JOIN leads l ON l.tenant_id = due.tenant_id AND l.id = due.id
         LEFT JOIN contacts c ON c.tenant_id = l.tenant_id AND c.customer_id = l.customer_id",
    )
    .bind(older_than)
    .bind(batch)
    .fetch_all(conn)
    .await
}

/// Stores recomputed priorities: `(tenant, lead, priority)` as of `at`.
pub async fn store_priorities(
    conn: &mut PgConnection,
    rows: &[(String, Uuid, f64)],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let tenants: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    let priorities: Vec<f64> = rows.iter().map(|r| r.2).collect();
    sqlx::query(
        "UPDATE leads l SET priority = x.p, priority_at = $4
         FROM unnest($1::text[], $2::uuid[], $3::float8[]) AS x(t, id, p)
         WHERE l.tenant_id = x.t AND l.id = x.id",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&priorities)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
