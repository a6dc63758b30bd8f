//! An agent's changes to a thread (status, priority, assignee) on the contact's timeline, as
//! the messages in and out already are: a `Conversation Updated` event on `crm.ingest.v1`
//! with the contact's identity ([`super::replies::contact_event`]), written to the outbox in
//! the transaction of the change.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox;
use serde_json::{json, Map};
use sqlx::PgConnection;

use super::replies::contact_event;
use crate::store::conversations::ConversationRow;

/// The event's name.
pub const CHANGE_EVENT: &str = "Conversation Updated";

/// Writes the event of the change of `before` into `after` (if anything the timeline shows
/// moved) to the outbox, in the caller's transaction: the change's own.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: &ConversationRow,
    after: &ConversationRow,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    match change_event(tenant, before, after, at) {
        Some(event) => outbox::enqueue(conn, Topic::Ingest, &event).await,
        None => Ok(()),
    }
}

/// The event for the change of `before` into `after` at `at`, or `None` when neither its
/// status, priority nor assignee moved. Its properties carry the new values and, for each
/// that moved, the old one (`status_was`, `priority_was`, `assignee_was`). Keyed by the
/// thread and the instant of the change, so a redelivery of it is applied once.
pub fn change_event(
    tenant: &TenantId,
    before: &ConversationRow,
    after: &ConversationRow,
    at: DateTime<Utc>,
) -> Option<Envelope> {
    let status = before.status != after.status;
    let priority = before.priority != after.priority;
    let assignee = before.assignee != after.assignee;
    if !(status || priority || assignee) {
        return None;
    }
    let mut properties = Map::new();
    properties.insert("channel".into(), json!(after.channel));
    properties.insert("conversation_id".into(), json!(after.id));
    properties.insert("status".into(), json!(after.status));
    properties.insert("priority".into(), json!(after.priority));
    properties.insert("assignee".into(), json!(after.assignee));
    if status {
        properties.insert("status_was".into(), json!(before.status));
    }
    if priority {
        properties.insert("priority_was".into(), json!(before.priority));
    }
    if assignee {
        properties.insert("assignee_was".into(), json!(before.assignee));
    }
    if let Some(until) = after.snoozed_until {
        properties.insert("snoozed_until".into(), json!(until));
    }
    Some(contact_event(
        tenant,
        format!(
            "conversation:{}:{}",
            after.id,
            at.timestamp_nanos_opt().unwrap_or_default()
        ),
        CHANGE_EVENT,
        (&after.channel, &after.contact),
        properties,
        at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn thread() -> ConversationRow {
        let at = Utc::now();
        ConversationRow {
            id: Uuid::nil(),
            channel: "x".into(),
            contact: "dee".into(),
            status: "open".into(),
            priority: "normal".into(),
            assignee: None,
            subject: None,
            waiting_since: None,
            first_reply_due: None,
            first_reply_at: None,
            resolution_due: None,
            snoozed_until: None,
            resolved_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn nothing_moved_nothing_published() {
        let tenant = TenantId::parse("acme").unwrap();
        let mut after = thread();
        after.subject = Some("other".into());
        assert!(change_event(&tenant, &thread(), &after, Utc::now()).is_none());
    }

    #[test]
    fn what_moved_is_published_with_what_it_was() {
        let tenant = TenantId::parse("acme").unwrap();
        let mut after = thread();
        after.status = "resolved".into();
        after.assignee = Some("sam".into());
        let e = change_event(&tenant, &thread(), &after, Utc::now()).unwrap();
        assert_eq!(e.name.as_deref(), Some(CHANGE_EVENT));
        assert_eq!(e.properties["status"], "resolved");
        assert_eq!(e.properties["status_was"], "open");
        assert_eq!(e.properties["assignee"], "sam");
        assert_eq!(e.properties["assignee_was"], serde_json::Value::Null);
        assert!(!e.properties.contains_key("priority_was"));
        assert_eq!(e.identity.anonymous_id.as_deref(), Some("social:x:dee"));
    }
}
