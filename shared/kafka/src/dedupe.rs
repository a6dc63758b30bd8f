//! The record of applied messages. A handler calls [`first_delivery`] inside the transaction of
//! its effect: if the message was applied before, it skips the effect; either way the record and
//! the effect commit or roll back together.

use crm_envelope::TenantId;
use sqlx::PgConnection;

/// Records that `consumer` applies message `message_id` of `tenant`; `false` means it already
/// did, and the caller must skip the effect.
pub async fn first_delivery(
    conn: &mut PgConnection,
    consumer: &str,
    tenant: &TenantId,
    message_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO processed_messages (consumer, tenant_id, message_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(tenant.as_str())
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// [`first_delivery`] for a batch of `(tenant, message_id)` in one statement: `true` at the
/// position of each message the consumer had not applied (only the first occurrence of a
/// message repeated within the batch).
pub async fn first_deliveries(
    conn: &mut PgConnection,
    consumer: &str,
    messages: &[(&TenantId, &str)],
) -> Result<Vec<bool>, sqlx::Error> {
    let tenants: Vec<&str> = messages.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<&str> = messages.iter().map(|(_, id)| *id).collect();
    let inserted: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO processed_messages (consumer, tenant_id, message_id)
         SELECT $1, t, m FROM unnest($2::text[], $3::text[]) AS x(t, m)
         ON CONFLICT DO NOTHING RETURNING tenant_id, message_id",
    )
    .bind(consumer)
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut fresh: std::collections::HashSet<(String, String)> = inserted.into_iter().collect();
    Ok(messages
        .iter()
        .map(|(t, id)| fresh.remove(&(t.as_str().to_owned(), (*id).to_owned())))
        .collect())
}
