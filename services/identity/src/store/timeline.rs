//! Each customer's timeline: every event resolved to them, kept for the tenant's retention,
//! read newest first with keyset paging.

use chrono::{DateTime, Duration, Utc};
use crm_envelope::{Envelope, TenantId};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A timeline row to be written ([`record_all`]).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    tenant: String,
    customer: Uuid,
    event_id: String,
    kind: String,
    name: Option<String>,
    source: String,
    occurred_at: DateTime<Utc>,
    properties: Value,
}

impl Row {
    /// `event` on `customer`'s timeline.
    pub(crate) fn of(customer: Uuid, event: &Envelope) -> Self {
        Self {
            tenant: event.tenant_id.as_str().to_owned(),
            customer,
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            name: event.name.clone(),
            source: event.source.clone(),
            occurred_at: event.occurred_at,
            properties: Value::Object(event.properties.clone()),
        }
    }
}

/// Records events on their customers' timelines (once per event id), in one statement; each
/// row's first owner is the customer it was recorded on.
pub(crate) async fn record_all(tx: &mut PgConnection, rows: &[Row]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let customers: Vec<Uuid> = rows.iter().map(|r| r.customer).collect();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occurred_at).collect();
    let properties: Vec<sqlx::types::Json<&Value>> = rows
        .iter()
        .map(|r| sqlx::types::Json(&r.properties))
        .collect();
    sqlx::query(
        "INSERT INTO timeline (tenant_id, customer_id, owner_id, event_id, kind, name, source,
                               occurred_at, properties)
         SELECT t, c, c, e, k, n, s, o, p
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::jsonb[]) AS r(t, c, e, k, n, s, o, p)
         ON CONFLICT DO NOTHING",
    )
    .bind(column(|r| &r.tenant))
    .bind(&customers)
    .bind(column(|r| &r.event_id))
    .bind(column(|r| &r.kind))
    .bind(&names)
    .bind(column(|r| &r.source))
    .bind(&times)
    .bind(&properties)
    .execute(tx)
    .await?;
    Ok(())
}

/// One entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = TimelineEntry)]
pub struct Entry {
    /// The event's id.
    pub event_id: String,
    /// `track`, `identify`, ...
    pub kind: String,
    /// The event name of a track.
    pub name: Option<String>,
    /// Where it came from.
    pub source: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Its properties.
    #[schema(value_type = Object)]
    pub properties: sqlx::types::Json<Value>,
}

/// A page of a timeline, newest first, strictly before `before` (`(occurred_at, event_id)` of
/// the last entry of the previous page) and within `retention_days`.
pub async fn page(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    before: Option<(DateTime<Utc>, String)>,
    limit: i64,
    retention_days: u32,
) -> Result<Vec<Entry>, sqlx::Error> {
    let horizon = Utc::now() - Duration::days(i64::from(retention_days));
    let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as(
        "SELECT event_id, kind, name, source, occurred_at, properties FROM timeline
         WHERE tenant_id = $1 AND customer_id = $2 AND occurred_at >= $3
           AND ($4::timestamptz IS NULL OR (occurred_at, event_id) < ($4, $5))
         ORDER BY occurred_at DESC, event_id DESC LIMIT $6",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .bind(horizon)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Every entry of a customer, oldest first (for exports).
pub async fn all(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, kind, name, source, occurred_at, properties FROM timeline
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY occurred_at, event_id",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .fetch_all(conn)
    .await
}

/// A page cursor: the position of the last entry shown, as an opaque hex string.
pub fn cursor_of(entry: &Entry) -> String {
    hex::encode(format!(
        "{}\n{}",
        entry.occurred_at.to_rfc3339(),
        entry.event_id
    ))
}

/// Reads a cursor back; `None` when it is not one.
pub fn parse_cursor(cursor: &str) -> Option<(DateTime<Utc>, String)> {
    let bytes = hex::decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('\n')?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some((at, id.to_owned()))
}

/// Deletes entries older than each tenant's retention (tenants without settings keep the
/// default); returns how many were deleted. Run periodically by the part.
pub async fn purge(pool: &PgPool, default_days: u32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM timeline t
         WHERE t.occurred_at < now() - make_interval(days => COALESCE(
             (SELECT (s.settings->>'timeline_retention_days')::int FROM identity_settings s
              WHERE s.tenant_id = t.tenant_id), $1))",
    )
    .bind(i32::try_from(default_days).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let entry = Entry {
            event_id: "evt\n,1".into(),
            kind: "track".into(),
            name: None,
            source: "web".into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            properties: sqlx::types::Json(Value::Null),
        };
        let cursor = cursor_of(&entry);
        assert_eq!(
            parse_cursor(&cursor),
            Some((entry.occurred_at, entry.event_id.clone()))
        );
        assert_eq!(parse_cursor("zz"), None);
        assert_eq!(parse_cursor(&hex::encode("no separator")), None);
    }
}
