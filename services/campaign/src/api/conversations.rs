//! Conversations: threads listed by status, priority and assignee, read with their messages,
//! and worked (assign, change priority, snooze until a time, mark pending, resolve).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::offers::{at_path, parsed};
use super::pipeline::page_size;
use super::ApiState;
use crate::conversations::changes;
use crate::conversations::replies::{self, Body, ReplyError};
use crate::domain::conversations::threads::{may_move, Priority, Status};
use crate::store::conversations::{self, ConversationRow, Filter, MessageRow};

pub(crate) fn routes() -> Router<ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/conversations"), get(list))
        .route(
            &format!("{t}/conversations/{{id}}"),
            get(read).patch(change),
        )
        .route(
            &format!("{t}/conversations/{{id}}/replies"),
            axum::routing::post(reply),
        )
}

/// A page of threads.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationList {
    /// Newest first.
    pub items: Vec<ConversationRow>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

/// A thread with its messages.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    /// The thread.
    #[serde(flatten)]
    pub conversation: ConversationRow,
    /// Its messages, in the order they reached the thread.
    pub messages: Vec<MessageRow>,
}

/// A change to a thread.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    /// `open`, `pending` (waiting for the contact), `snoozed` (with `snoozed_until`) or
    /// `resolved`.
    pub status: Option<Status>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: Option<Priority>,
    /// Who works it (1 to 200 characters).
    pub assignee: Option<String>,
    /// Until when a snoozed thread waits (in the future).
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// A reply: typed `text`, or a canned reply (`template`: a stored template's key, rendered for
/// the thread with `contact`, `subject`, `author` and `channel`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The reply's text (1 to 5,000 characters).
    pub text: Option<String>,
    /// A canned reply: the key of the template whose text part is sent.
    pub template: Option<String>,
    /// Who answers (default: the caller).
    pub author: Option<String>,
}

/// A queued reply.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyQueued {
    /// The reply, `queued`; the thread's detail shows it `sent` or `failed` (with why).
    pub message: MessageRow,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::ConversationNotFound,
        "no conversation with this id for this tenant",
    )
}

async fn list(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, Problem> {
    let limit = page_size(q.limit)?;
    let bad =
        |what: &str| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidQuery, what.to_owned());
    let status = match q.status.as_deref() {
        None => None,
        Some(s @ ("open" | "pending" | "snoozed" | "resolved")) => Some(s),
        Some(_) => return Err(bad("status is open, pending, snoozed or resolved")),
    };
    let priority = match q.priority.as_deref() {
        None => None,
        Some(p) => Some(
            Priority::parse(p)
                .ok_or_else(|| bad("priority is low, normal, high or urgent"))?
                .as_str(),
        ),
    };
    let filter = Filter {
        status,
        priority,
        assignee: q.assignee.as_deref(),
    };
    let mut conn = s.pool.acquire().await?;
    conversations::wake(&mut conn, &tenant, Utc::now()).await?;
    let items = conversations::page(&mut conn, &tenant, &filter, q.after, limit).await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|c| c.id))
        .flatten();
    Ok(Json(ConversationList { items, next_after }))
}

async fn read(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<ConversationDetail>, Problem> {
    let mut conn = s.pool.acquire().await?;
    conversations::wake(&mut conn, &tenant, Utc::now()).await?;
    let conversation = conversations::get(&mut conn, &tenant, id, false)
        .await?
        .ok_or_else(not_found)?;
    let messages = conversations::messages(&mut conn, &tenant, id).await?;
    Ok(Json(ConversationDetail {
        conversation,
        messages,
    }))
}

fn status_of(s: &str) -> Status {
    match s {
        "pending" => Status::Pending,
        "snoozed" => Status::Snoozed,
        "resolved" => Status::Resolved,
        _ => Status::Open,
    }
}

async fn change(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationDetail>, Problem> {
    let p: ConversationPatch = parsed(&body, Code::InvalidConversation)?;
    let now = Utc::now();
    if let Some(a) = &p.assignee {
        if a.trim().is_empty() || a.chars().count() > 200 || a.contains('\0') {
            return Err(at_path(
                Code::InvalidConversation,
                "/assignee",
                "1 to 200 characters, not blank",
            ));
        }
    }
    let mut tx = s.pool.begin().await?;
    let mut row = conversations::get(&mut tx, &tenant, id, true)
        .await?
        .ok_or_else(not_found)?;
    let before = row.clone();
    if let Some(to) = p.status {
        let from = status_of(&row.status);
        if !may_move(from, to) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                Code::InvalidState,
                "a resolved conversation stays resolved; the contact's next message opens a new one",
            ));
        }
        match to {
            Status::Snoozed => {
                let until = p.snoozed_until.filter(|u| *u > now).ok_or_else(|| {
                    at_path(
                        Code::InvalidConversation,
                        "/snoozed_until",
                        "a time in the future to snooze until",
                    )
                })?;
                row.snoozed_until = Some(until);
            }
            Status::Resolved => {
                row.resolved_at = Some(now);
                row.waiting_since = None;
                row.snoozed_until = None;
            }
            Status::Pending => {
                row.waiting_since = None;
                row.snoozed_until = None;
            }
            Status::Open => row.snoozed_until = None,
        }
        row.status = to.as_str().to_owned();
    } else if p.snoozed_until.is_some() {
        return Err(at_path(
            Code::InvalidConversation,
            "/snoozed_until",
            "only with status snoozed",
        ));
    }
    if let Some(priority) = p.priority {
        row.priority = priority.as_str().to_owned();
    }
    if let Some(a) = p.assignee {
        row.assignee = Some(a.trim().to_owned());
    }
    row.updated_at = now;
    let conversation = conversations::update(&mut tx, &tenant, &row).await?;
    changes::record(&mut tx, &tenant, &before, &conversation, now).await?;
    let messages = conversations::messages(&mut tx, &tenant, id).await?;
    tx.commit().await?;
    Ok(Json(ConversationDetail {
        conversation,
        messages,
    }))
}

async fn reply(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ReplyQueued>), Problem> {
    let r: ReplyRequest = parsed(&body, Code::InvalidConversation)?;
    let content = match (r.text, r.template) {
        (Some(t), None) => Body::Text(t),
        (None, Some(k)) if !k.trim().is_empty() && k.len() <= 200 => Body::Canned(k),
        _ => {
            return Err(at_path(
                Code::InvalidConversation,
                "/text",
                "either text or template (a template's key)",
            ))
        }
    };
    let author = match r.author {
        Some(a) if a.trim().is_empty() || a.chars().count() > 200 || a.contains('\0') => {
            return Err(at_path(
                Code::InvalidConversation,
                "/author",
                "1 to 200 characters, not blank",
            ))
        }
        Some(a) => a.trim().to_owned(),
        None => crate::api::actor(&headers),
    };
    let message = replies::reply(&s.pool, &s.delivery.limits, &tenant, id, content, &author)
        .await
        .map_err(|e| match e {
            ReplyError::NotFound => not_found(),
            ReplyError::Resolved => Problem::new(
                StatusCode::CONFLICT,
                Code::InvalidState,
                "the conversation is resolved: a reply needs an open thread",
            ),
            ReplyError::NoTemplate(k) => at_path(
                Code::InvalidConversation,
                "/template",
                &format!("no template with key {k}"),
            ),
            ReplyError::Invalid(m) => at_path(Code::InvalidConversation, "/text", &m),
            ReplyError::Db(e) => e.into(),
        })?;
    s.replies.notify_one();
    Ok((StatusCode::ACCEPTED, Json(ReplyQueued { message })))
}
