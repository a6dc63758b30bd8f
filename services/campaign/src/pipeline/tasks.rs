//! Tasks and notes on leads and opportunities, and the pass that announces each task once
//! when it comes due (`task.due` on `crm.interactions.v1`; replicas share the pass with
//! `SKIP LOCKED`).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::{self, Outgoing};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::pipeline::assign::is_owner;
use crate::interactions::interaction;
use crate::store::tasks::{self as store, NewTask, TaskRow};
use crate::store::{leads, opportunities};

/// Longest subject.
pub const MAX_SUBJECT: usize = 500;
/// Longest note.
pub const MAX_NOTE: usize = 10_000;

/// The kinds of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A call.
    Call,
    /// An email to write.
    Email,
    /// A meeting.
    Meeting,
    /// Anything else.
    Todo,
}

impl TaskKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Email => "email",
            Self::Meeting => "meeting",
            Self::Todo => "todo",
        }
    }
}

/// Why a task or note call failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A field is wrong: its JSON pointer and what to fix.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The lead or opportunity named is not the tenant's.
    #[error("no such lead or opportunity")]
    NoTarget,
    /// No such task.
    #[error("no such task")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A task to create, on a lead or an opportunity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// `call`, `email`, `meeting` or `todo`.
    pub kind: TaskKind,
    /// What to do (1 to 500 characters).
    pub subject: String,
    /// When it is due (announced as `task.due` then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// Its lead (one of `lead_id` and `opportunity_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<Uuid>,
    /// Its opportunity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_id: Option<Uuid>,
    /// Who does it (default: the lead's or opportunity's owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A change to a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// Done (true), or open again (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// A new due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// A new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A new subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

fn check_subject(s: &str) -> Result<(), TaskError> {
    if s.trim().is_empty() || s.chars().count() > MAX_SUBJECT || s.contains('\0') {
        return Err(TaskError::Invalid(
            "/subject",
            format!("1 to {MAX_SUBJECT} characters, not blank"),
        ));
    }
    Ok(())
}

/// The customer and owner of the lead or opportunity named (exactly one of them).
async fn target(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: Option<Uuid>,
    opportunity: Option<Uuid>,
) -> Result<(Uuid, Option<String>), TaskError> {
    match (lead, opportunity) {
        (Some(id), None) => leads::get(conn, tenant, id)
            .await?
            .map(|l| (l.customer_id, l.owner))
            .ok_or(TaskError::NoTarget),
        (None, Some(id)) => opportunities::get(conn, tenant, id)
            .await?
            .map(|o| (o.customer_id, o.owner))
            .ok_or(TaskError::NoTarget),
        _ => Err(TaskError::Invalid(
            "/lead_id",
            "name exactly one of `lead_id` and `opportunity_id`".into(),
        )),
    }
}

/// Creates a task.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    r: &TaskRequest,
    now: DateTime<Utc>,
) -> Result<TaskRow, TaskError> {
    check_subject(&r.subject)?;
    if r.owner.as_deref().is_some_and(|o| !is_owner(o)) {
        return Err(TaskError::Invalid(
            "/owner",
            "1 to 200 characters, not blank".into(),
        ));
    }
    let (customer, owner) = target(conn, tenant, r.lead_id, r.opportunity_id).await?;
    let new = NewTask {
        kind: r.kind.as_str(),
        subject: &r.subject,
        due_at: r.due_at,
        customer,
        lead: r.lead_id,
        opportunity: r.opportunity_id,
        owner: r.owner.as_deref().or(owner.as_deref()),
    };
    Ok(store::create(conn, tenant, &new, now).await?)
}

/// Changes a task.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    p: &TaskPatch,
    now: DateTime<Utc>,
) -> Result<TaskRow, TaskError> {
    if let Some(s) = &p.subject {
        check_subject(s)?;
    }
    if p.owner.as_deref().is_some_and(|o| !is_owner(o)) {
        return Err(TaskError::Invalid(
            "/owner",
            "1 to 200 characters, not blank".into(),
        ));
    }
    let c = store::TaskChange {
        completed: p.completed,
        due_at: p.due_at,
        owner: p.owner.as_deref(),
        subject: p.subject.as_deref(),
    };
    store::change(conn, tenant, id, &c, now)
        .await?
        .ok_or(TaskError::NotFound)
}

/// A note to add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The text (1 to 10,000 characters).
    pub body: String,
}

/// Adds a note to a lead (`lead`) or an opportunity.
pub async fn add_note(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: Option<Uuid>,
    opportunity: Option<Uuid>,
    r: &NoteRequest,
    author: &str,
    now: DateTime<Utc>,
) -> Result<store::NoteRow, TaskError> {
    if r.body.trim().is_empty() || r.body.chars().count() > MAX_NOTE || r.body.contains('\0') {
        return Err(TaskError::Invalid(
            "/body",
            format!("1 to {MAX_NOTE} characters, not blank"),
        ));
    }
    let (customer, _) = target(conn, tenant, lead, opportunity).await?;
    Ok(store::add_note(
        conn,
        tenant,
        customer,
        (lead, opportunity),
        &r.body,
        author,
        now,
    )
    .await?)
}

/// The notes of a lead (`lead`) or an opportunity of the tenant, oldest first.
pub async fn notes(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: Option<Uuid>,
    opportunity: Option<Uuid>,
) -> Result<Vec<store::NoteRow>, TaskError> {
    target(conn, tenant, lead, opportunity).await?;
    Ok(store::notes(conn, tenant, (lead, opportunity)).await?)
}

fn due_event(tenant: &TenantId, t: &TaskRow) -> Result<Outgoing, sqlx::Error> {
    interaction(
        tenant,
        "task.due",
        t.customer_id,
        json!({"task_id": t.id, "kind": t.kind, "subject": t.subject, "due_at": t.due_at,
               "owner": t.owner, "lead_id": t.lead_id, "opportunity_id": t.opportunity_id}),
    )
}

/// Announces up to `batch` tasks come due, in one transaction; how many.
pub async fn announce_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due = store::take_due(&mut tx, now, batch).await?;
    let out = due
        .iter()
        .map(|(tenant, t)| due_event(tenant, t))
        .collect::<Result<Vec<_>, _>>()?;
    outbox::enqueue_all(&mut tx, &out).await?;
    tx.commit().await?;
    Ok(due.len())
}

/// Runs [`announce_due`] until `shutdown`, every `idle` when there is nothing to announce.
pub async fn run_due(
    pool: PgPool,
    relay: Arc<Notify>,
    idle: StdDuration,
    shutdown: CancellationToken,
) {
    const BATCH: i64 = 200;
    loop {
        let announced = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = announce_due(&pool, Utc::now(), BATCH) => r,
        };
        match announced {
            Ok(n) => {
                if n > 0 {
                    relay.notify_one();
                }
                if i64::try_from(n).unwrap_or(0) >= BATCH {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "announcing due tasks failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
