//! Rows kept per customer that remember the customer that recorded them (`owner_id`): the
//! timeline, the consent history and account memberships. They follow a merge to the survivor, come back to their
//! owner on an unmerge, and go with an erasure of either.

use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

/// The tables with `customer_id` (who the row belongs to now) and `owner_id` (who recorded it).
/// Fixed names, never input.
const TABLES: [&str; 3] = ["timeline", "consent_events", "account_members"];

/// Moves `merged`'s rows to `survivor` (a merge).
pub(crate) async fn follow_merge(
    tx: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> Result<(), sqlx::Error> {
    for table in TABLES {
        sqlx::query(&format!(
            "UPDATE {table} SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2"
        ))
        .bind(tenant.as_str())
        .bind(merged)
        .bind(survivor)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Gives `restored` back the rows it (or an alias of it) recorded (an unmerge, after its
/// aliases point at it again).
pub(crate) async fn follow_unmerge(
    tx: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    restored: Uuid,
) -> Result<(), sqlx::Error> {
    for table in TABLES {
        sqlx::query(&format!(
            "UPDATE {table} SET customer_id = $3
             WHERE tenant_id = $1 AND customer_id = $2
               AND (owner_id = $3 OR owner_id IN (SELECT id FROM customers
                                                 WHERE tenant_id = $1 AND merged_into = $3))"
        ))
        .bind(tenant.as_str())
        .bind(survivor)
        .bind(restored)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Deletes the rows that belong to, or were recorded by, erased customers.
pub(crate) async fn erase(
    tx: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    for table in TABLES {
        sqlx::query(&format!(
            "DELETE FROM {table}
             WHERE tenant_id = $1 AND (customer_id = ANY($2) OR owner_id = ANY($2))"
        ))
        .bind(tenant.as_str())
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
