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
