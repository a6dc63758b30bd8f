//! Conversation threads and their messages.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::conversations::threads::{first_reply_due, resolution_due, Priority};

/// A thread as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ConversationRow {
    /// Its id.
    pub id: Uuid,
    /// The channel (`x`, `mastodon`, `email`, …).
    pub channel: String,
    /// The contact on it (a handle, an address).
    pub contact: String,
    /// `open`, `pending`, `snoozed` or `resolved`.
    pub status: String,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// Who works it.
    pub assignee: Option<String>,
    /// What it is about, if known.
    pub subject: Option<String>,
    /// Since when the contact waits for the brand (absent: not waiting).
    pub waiting_since: Option<DateTime<Utc>>,
    /// When the first reply is due.
    pub first_reply_due: Option<DateTime<Utc>>,
    /// When it was first answered.
    pub first_reply_at: Option<DateTime<Utc>>,
    /// When it is due to be resolved (the resolution SLA: 4 hours urgent, 8 high, 24 normal,
    /// 72 low, from when it opened or reopened).
    pub resolution_due: Option<DateTime<Utc>>,
    /// Until when it is snoozed.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, channel, contact, status, priority, assignee, subject, waiting_since,
    first_reply_due, first_reply_at, resolution_due, snoozed_until, resolved_at, created_at,
    updated_at";

/// A message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
#[schema(as = ConversationMessage)]
pub struct MessageRow {
    /// Its id.
    pub id: Uuid,
    /// `in` (from the contact) or `out`.
    pub direction: String,
    /// Its id on the channel, if any.
    pub external_id: Option<String>,
    /// Who wrote it.
    pub author: Option<String>,
    /// Its text.
    pub text: String,
    /// What the channel told of it (the mention's sentiment, its URL).
    #[schema(value_type = Object)]
    pub properties: Json<serde_json::Value>,
    /// `received` (in); `queued`, `sending`, `sent` or `failed` (a reply).
    pub status: String,
    /// Why a reply failed.
    pub error: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

const MESSAGE_COLUMNS: &str =
    "id, direction, external_id, author, text, properties, status, error, at";

/// An inbound message for the thread of `(channel, contact)`.
pub struct Inbound<'a> {
    /// The channel.
    pub channel: &'a str,
    /// The contact.
    pub contact: &'a str,
    /// The message's id on the channel.
    pub external_id: &'a str,
    /// Its text.
    pub text: &'a str,
    /// What else is known of it.
    pub properties: serde_json::Value,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The subject it brings, if the thread has none yet (an email's).
    pub subject: Option<&'a str>,
    /// The channel ids of the messages it replies to (email: `In-Reply-To`, `References`),
    /// by which it joins, or reopens, their thread.
    pub replies_to: &'a [String],
}

/// Adds an inbound message to the open thread of its contact and channel. With `opens` (the
/// priority the message asks for) a thread is opened when there is none, and an open one is
/// raised to that priority; without, the message only joins a thread already open. The wait
/// and the SLA start when nobody was waiting; a pending or snoozed thread reopens. `None` when
/// the message was already added (a retried delivery) or had no thread to join.
pub async fn receive(
    conn: &mut PgConnection,
    tenant: &TenantId,
    m: &Inbound<'_>,
    opens: Option<Priority>,
    now: DateTime<Utc>,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    let seen: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM conversation_messages WHERE tenant_id = $1 AND external_id = $2",
    )
    .bind(tenant)
    .bind(m.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    if seen.is_some() {
        return Ok(None);
    }
    if opens.is_none() {
        let open: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM conversations WHERE tenant_id = $1 AND channel = $2 AND contact = $3
             AND status <> 'resolved'",
        )
        .bind(tenant)
        .bind(m.channel)
        .bind(m.contact)
        .fetch_optional(&mut *conn)
        .await?;
        if open.is_none() {
            return Ok(None);
        }
    }
    if let Some(row) = join_thread(conn, tenant, m, now).await? {
        add_inbound(conn, tenant, row.id, m).await?;
        return Ok(Some(row));
    }
    let priority = opens.unwrap_or(Priority::Low);
    let due = first_reply_due(now, priority);
    let sql = format!(
        "INSERT INTO conversations AS c (tenant_id, id, channel, contact, status, priority,
             waiting_since, first_reply_due, resolution_due, subject, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $9, $10, $6, $6)
         ON CONFLICT (tenant_id, channel, contact) WHERE status <> 'resolved' DO UPDATE
         SET status = 'open', snoozed_until = NULL,
             priority = CASE WHEN array_position($8::text[], EXCLUDED.priority)
                                  > array_position($8::text[], c.priority)
                             THEN EXCLUDED.priority ELSE c.priority END,
             waiting_since = coalesce(c.waiting_since, EXCLUDED.waiting_since),
             first_reply_due = CASE WHEN c.first_reply_at IS NULL
                                    THEN least(c.first_reply_due, EXCLUDED.first_reply_due)
                                    ELSE c.first_reply_due END,
             resolution_due = least(c.resolution_due, EXCLUDED.resolution_due),
             subject = coalesce(c.subject, EXCLUDED.subject),
             updated_at = EXCLUDED.updated_at
         RETURNING {COLUMNS}"
    );
    let order = PRIORITIES.map(Priority::as_str);
    let row: ConversationRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(m.channel)
        .bind(m.contact)
        .bind(priority.as_str())
        .bind(now)
        .bind(due)
        .bind(&order[..])
        .bind(resolution_due(now, priority))
        .bind(m.subject)
        .fetch_one(&mut *conn)
        .await?;
    add_inbound(conn, tenant, row.id, m).await?;
    Ok(Some(row))
}

async fn add_inbound(
    conn: &mut PgConnection,
    tenant: &TenantId,
    conversation: Uuid,
    m: &Inbound<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_messages (tenant_id, conversation_id, id, direction,
             external_id, author, text, properties, at)
         VALUES ($1, $2, $3, 'in', $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(Uuid::now_v7())
    .bind(m.external_id)
    .bind(m.contact)
    .bind(m.text)
    .bind(Json(&m.properties))
    .bind(m.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The thread an inbound message replies into, by the channel ids it names (its contact's
/// thread only): joined when it is not resolved; reopened when it is and the contact has no
/// other open thread on the channel (else the message goes to that one, by the usual path).
async fn join_thread(
    conn: &mut PgConnection,
    tenant: &TenantId,
    m: &Inbound<'_>,
    now: DateTime<Utc>,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    if m.replies_to.is_empty() {
        return Ok(None);
    }
    let ids: Vec<String> = m
        .replies_to
        .iter()
        .map(|id| format!("{}:{id}", m.channel))
        .collect();
    let sql = format!(
        "WITH target AS (
             SELECT cm.conversation_id AS id FROM conversation_messages cm
             JOIN conversations c ON c.tenant_id = cm.tenant_id AND c.id = cm.conversation_id
             WHERE cm.tenant_id = $1 AND cm.external_id = ANY($2) AND c.channel = $3
               AND c.contact = $4
             ORDER BY cm.at DESC LIMIT 1)
         UPDATE conversations c SET status = 'open', snoozed_until = NULL, resolved_at = NULL,
             waiting_since = coalesce(c.waiting_since, $5),
             resolution_due = CASE WHEN c.status = 'resolved'
                 THEN $5 + make_interval(
                     hours => ($7::int[])[array_position($6::text[], c.priority)])
                 ELSE c.resolution_due END,
             updated_at = $5
         FROM target
         WHERE c.tenant_id = $1 AND c.id = target.id
           AND (c.status <> 'resolved' OR NOT EXISTS (
               SELECT 1 FROM conversations o WHERE o.tenant_id = $1 AND o.channel = $3
                 AND o.contact = $4 AND o.status <> 'resolved'))
         RETURNING {}",
        COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(&ids)
        .bind(m.channel)
        .bind(m.contact)
        .bind(now)
        .bind(&PRIORITIES.map(Priority::as_str)[..])
        .bind(&PRIORITIES.map(|p| i32::try_from(p.resolution_hours()).unwrap_or(i32::MAX))[..])
        .fetch_optional(conn)
        .await
}

/// The priorities in ascending order (the SQL that compares or looks them up by position).
const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Urgent,
];

/// Reopens the tenant's snoozed threads whose time has come (run before threads are read).
pub async fn wake(
    conn: &mut PgConnection,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE conversations SET status = 'open', snoozed_until = NULL, updated_at = $2
         WHERE tenant_id = $1 AND status = 'snoozed' AND snoozed_until <= $2",
    )
    .bind(tenant)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of a page of threads.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// One status.
    pub status: Option<&'a str>,
    /// One priority.
    pub priority: Option<&'a str>,
    /// One assignee.
    pub assignee: Option<&'a str>,
}

/// A page of threads, newest first, after `after` (keyset on the id).
pub async fn page(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &Filter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ConversationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM conversations WHERE tenant_id = $1
         AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR priority = $3)
         AND ($4::text IS NULL OR assignee = $4) AND ($5::uuid IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(f.status)
        .bind(f.priority)
        .bind(f.assignee)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// One thread, locked when `lock`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    lock: bool,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM conversations WHERE tenant_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A thread's messages in the order they reached the thread (their ids are time-ordered; `at`
/// is the time the sender claims, which a mail client's clock may set before the brand's reply).
pub async fn messages(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM conversation_messages
             WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY id"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Stores a thread's new status, priority, assignee and snooze time.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    row: &ConversationRow,
) -> Result<ConversationRow, sqlx::Error> {
    let sql = format!(
        "UPDATE conversations SET status = $3, priority = $4, assignee = $5, snoozed_until = $6,
             resolved_at = $7, waiting_since = $8, updated_at = $9
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(row.id)
        .bind(&row.status)
        .bind(&row.priority)
        .bind(&row.assignee)
        .bind(row.snoozed_until)
        .bind(row.resolved_at)
        .bind(row.waiting_since)
        .bind(row.updated_at)
        .fetch_one(conn)
        .await
}

/// Why a reply was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such thread.
    NotFound,
    /// The thread is resolved.
    Resolved,
}

/// Queues the brand's reply on thread `id` (sent by the reply loop) and records the answer:
/// the first reply's time, nobody waiting any more, and an open thread now pending (waiting
/// for the contact).
pub async fn queue_reply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    author: &str,
    text: &str,
    properties: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Result<MessageRow, Refused>, sqlx::Error> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM conversations WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match status.as_deref() {
        None => return Ok(Err(Refused::NotFound)),
        Some("resolved") => return Ok(Err(Refused::Resolved)),
        Some(_) => {}
    }
    let row: MessageRow = sqlx::query_as(&format!(
        "INSERT INTO conversation_messages (tenant_id, conversation_id, id, direction, author,
             text, properties, status, at)
         VALUES ($1, $2, $3, 'out', $4, $5, $6, 'queued', $7) RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(author)
    .bind(text)
    .bind(Json(properties))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE conversations SET first_reply_at = coalesce(first_reply_at, $3),
             waiting_since = NULL,
             status = CASE WHEN status = 'open' THEN 'pending' ELSE status END, updated_at = $3
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Ok(row))
}

/// A reply claimed for sending, with its thread's channel, contact and subject.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedReply {
    /// The tenant.
    pub tenant_id: String,
    /// The thread.
    pub conversation_id: Uuid,
    /// The reply.
    pub id: Uuid,
    /// Its text.
    pub text: String,
    /// The thread's channel.
    pub channel: String,
    /// The contact.
    pub contact: String,
    /// The thread's subject.
    pub subject: Option<String>,
}

/// Claims up to `limit` queued replies and marks them `sending` (committed by the caller before
/// anything is sent). Replicas skip each other's rows.
pub async fn claim_replies(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ClaimedReply>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE conversation_messages m SET status = 'sending', sending_at = $1
         FROM (SELECT tenant_id, conversation_id, id FROM conversation_messages
               WHERE status = 'queued' ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED) due,
              conversations c
         WHERE m.tenant_id = due.tenant_id AND m.conversation_id = due.conversation_id
           AND m.id = due.id AND c.tenant_id = m.tenant_id AND c.id = m.conversation_id
         RETURNING m.tenant_id, m.conversation_id, m.id, m.text, c.channel, c.contact, c.subject",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Replies left `sending` longer than `lease` (the part stopped during the send) are marked
/// failed, never sent again: at most once. How many.
pub async fn abandon_interrupted_replies(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE conversation_messages SET status = 'failed',
             error = 'send_interrupted: the part stopped during the send; reply again if it did not arrive'
         WHERE status = 'sending' AND sending_at < $1",
    )
    .bind(now - lease)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// The channel ids of a thread's messages, in the order they reached the thread.
pub async fn thread_ids(
    conn: &mut PgConnection,
    tenant: &TenantId,
    conversation: Uuid,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT direction, external_id FROM conversation_messages
         WHERE tenant_id = $1 AND conversation_id = $2 AND external_id IS NOT NULL
         ORDER BY id",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(conn)
    .await
}

/// Gives a reply its channel id (an email's `Message-ID`), before it is sent: a contact's
/// answer to it threads however soon it comes.
pub async fn set_reply_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    conversation: Uuid,
    id: Uuid,
    external_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE conversation_messages SET external_id = $4
         WHERE tenant_id = $1 AND conversation_id = $2 AND id = $3",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(id)
    .bind(external_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a reply's outcome: `sent`, or `failed` with why.
pub async fn finish_reply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    conversation: Uuid,
    id: Uuid,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE conversation_messages
         SET status = CASE WHEN $4::text IS NULL THEN 'sent' ELSE 'failed' END, error = $4
         WHERE tenant_id = $1 AND conversation_id = $2 AND id = $3",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// A thread's last message from the contact: its channel id and properties (the connector it
/// came through, its kind).
pub async fn last_inbound(
    conn: &mut PgConnection,
    tenant: &TenantId,
    conversation: Uuid,
) -> Result<Option<(String, Json<serde_json::Value>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT external_id, properties FROM conversation_messages
         WHERE tenant_id = $1 AND conversation_id = $2 AND direction = 'in'
           AND external_id IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_optional(conn)
    .await
}
