//! `tasks` and `notes`: the work done on leads and opportunities.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct TaskRow {
    /// Its id.
    pub id: Uuid,
    /// `call`, `email`, `meeting` or `todo`.
    pub kind: String,
    /// What to do.
    pub subject: String,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// The customer of its lead or opportunity.
    pub customer_id: Uuid,
    /// Its lead.
    pub lead_id: Option<Uuid>,
    /// Its opportunity.
    pub opportunity_id: Option<Uuid>,
    /// Who does it.
    pub owner: Option<String>,
    /// When it was done.
    pub completed_at: Option<DateTime<Utc>>,
    /// Not done and past its due time.
    pub overdue: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, kind, subject, due_at, customer_id, lead_id, opportunity_id, owner,
    completed_at, (completed_at IS NULL AND due_at < now()) AS overdue, created_at, updated_at";

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    /// `call`, `email`, `meeting` or `todo`.
    pub kind: &'a str,
    /// What to do.
    pub subject: &'a str,
    /// Due.
    pub due_at: Option<DateTime<Utc>>,
    /// The customer.
    pub customer: Uuid,
    /// The lead.
    pub lead: Option<Uuid>,
    /// The opportunity.
    pub opportunity: Option<Uuid>,
    /// Owner.
    pub owner: Option<&'a str>,
}

/// Creates a task.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    t: &NewTask<'_>,
    now: DateTime<Utc>,
) -> Result<TaskRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO tasks (tenant_id, id, kind, subject, due_at, customer_id, lead_id,
             opportunity_id, owner, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(t.kind)
    .bind(t.subject)
    .bind(t.due_at)
    .bind(t.customer)
    .bind(t.lead)
    .bind(t.opportunity)
    .bind(t.owner)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// A change to a task; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct TaskChange<'a> {
    /// Done (true) or not done again (false).
    pub completed: Option<bool>,
    /// New due time (a later one is announced again when it comes).
    pub due_at: Option<DateTime<Utc>>,
    /// New owner.
    pub owner: Option<&'a str>,
    /// New subject.
    pub subject: Option<&'a str>,
}

/// Changes a task; `None` when there is none.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    c: &TaskChange<'_>,
    now: DateTime<Utc>,
) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE tasks SET
             completed_at = CASE WHEN $3 IS NULL THEN completed_at
                                 WHEN $3 THEN coalesce(completed_at, $7) ELSE NULL END,
             due_announced_at = CASE WHEN $4::timestamptz IS NOT NULL
                                     AND $4 IS DISTINCT FROM due_at THEN NULL
                                     ELSE due_announced_at END,
             due_at = coalesce($4, due_at), owner = coalesce($5, owner),
             subject = coalesce($6, subject), updated_at = $7
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(c.completed)
    .bind(c.due_at)
    .bind(c.owner)
    .bind(c.subject)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// The task.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter<'a> {
    /// Only this owner's.
    pub owner: Option<&'a str>,
    /// Only this lead's.
    pub lead: Option<Uuid>,
    /// Only this opportunity's.
    pub opportunity: Option<Uuid>,
    /// `open`, `done` or `overdue`.
    pub state: Option<&'a str>,
}

/// A page of tasks, soonest due first (undated last), after `after` (keyset on the id within
/// the order; pages are small).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &TaskFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH page AS (
             SELECT {COLUMNS}, coalesce(due_at, 'infinity') AS sort_at FROM tasks
             WHERE tenant_id = $1 AND ($2::text IS NULL OR owner = $2)
             AND ($3::uuid IS NULL OR lead_id = $3) AND ($4::uuid IS NULL OR opportunity_id = $4)
             AND CASE $5::text WHEN 'open' THEN completed_at IS NULL
                               WHEN 'done' THEN completed_at IS NOT NULL
                               WHEN 'overdue' THEN completed_at IS NULL AND due_at < now()
                               ELSE true END)
         SELECT id, kind, subject, due_at, customer_id, lead_id, opportunity_id, owner,
             completed_at, overdue, created_at, updated_at FROM page
         WHERE $6::uuid IS NULL OR (sort_at, id) >
             (SELECT coalesce(due_at, 'infinity'), id FROM tasks WHERE tenant_id = $1 AND id = $6)
         ORDER BY sort_at, id LIMIT $7"
    ))
    .bind(tenant)
    .bind(f.owner)
    .bind(f.lead)
    .bind(f.opportunity)
    .bind(f.state)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Up to `batch` tasks come due by `now` and not announced, locked (others skip them), marked
/// announced: `(tenant, task)` of each.
pub async fn take_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<(TenantId, TaskRow)>, sqlx::Error> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "WITH due AS (
             SELECT tenant_id, id FROM tasks
             WHERE completed_at IS NULL AND due_announced_at IS NULL AND due_at <= $1
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE tasks t SET due_announced_at = $1 FROM due
         WHERE t.tenant_id = due.tenant_id AND t.id = due.id
         RETURNING t.tenant_id, t.id",
    )
    .bind(now)
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (tenant, id) in rows {
        let Ok(tenant) = TenantId::parse(&tenant) else {
            continue;
        };
        if let Some(task) = get(conn, &tenant, id).await? {
            out.push((tenant, task));
        }
    }
    Ok(out)
}

/// A note as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct NoteRow {
    /// Its id.
    pub id: Uuid,
    /// The lead.
    pub lead_id: Option<Uuid>,
    /// The opportunity.
    pub opportunity_id: Option<Uuid>,
    /// The text.
    pub body: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Adds a note to a lead or an opportunity of `customer`.
pub async fn add_note(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    target: (Option<Uuid>, Option<Uuid>),
    body: &str,
    author: &str,
    now: DateTime<Utc>,
) -> Result<NoteRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO notes (tenant_id, id, customer_id, lead_id, opportunity_id, body, author,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, lead_id, opportunity_id, body, author, created_at",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(customer)
    .bind(target.0)
    .bind(target.1)
    .bind(body)
    .bind(author)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The notes of a lead or an opportunity, oldest first.
pub async fn notes(
    conn: &mut PgConnection,
    tenant: &TenantId,
    target: (Option<Uuid>, Option<Uuid>),
) -> Result<Vec<NoteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, lead_id, opportunity_id, body, author, created_at FROM notes
         WHERE tenant_id = $1 AND (lead_id = $2 OR opportunity_id = $3)
         ORDER BY created_at, id",
    )
    .bind(tenant)
    .bind(target.0)
    .bind(target.1)
    .fetch_all(conn)
    .await
}

/// Moves the merged customer's tasks and notes to the survivor.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    for table in ["tasks", "notes"] {
        sqlx::query(&format!(
            "UPDATE {table} SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2"
        ))
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the erased customers' tasks and notes.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    for table in ["tasks", "notes"] {
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
