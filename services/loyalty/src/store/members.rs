//! What loyalty keeps of a person and how it follows profile changes: birthdays from traits,
//! balances, lots and redemptions moved on a merge, and personal data cleared on erasure
//! (docs/events.md): entries stay, balanced, under the tombstone id; reasons are cleared.

use chrono::Utc;
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::{Account, Transaction, TxKind};
use crate::store::ledger::{post_all, PostError};

/// Records the customer's birthday (`None` clears it), creating its profile row.
pub async fn set_birthday(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    birthday: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO profiles (tenant_id, customer_id, birthday) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET birthday = EXCLUDED.birthday",
    )
    .bind(tenant)
    .bind(customer)
    .bind(birthday)
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears what loyalty keeps of erased customers: their profile rows, and the reasons and
/// source events of their ledger transactions (the entries stay, balanced).
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM profiles WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE ledger_transactions SET reason = 'erased', source_event = NULL WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the merged customer's balances (available and reserved) to the survivor in one
/// balanced transaction, re-keying lots (with their dates), orders, redemptions and members.
/// `source_event` is the `profile.merged` message's id.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    source_event: &str,
    survivor: Uuid,
    merged: Uuid,
) -> Result<(), PostError> {
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, balance FROM accounts WHERE tenant_id = $1 AND customer_id = $2 AND kind IN ('customer', 'reserved') FOR UPDATE",
    )
    .bind(tenant)
    .bind(merged)
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = Vec::new();
    for (kind, b) in balances.into_iter().filter(|(_, b)| *b != 0) {
        let (from, to) = if kind == "reserved" {
            (Account::reserved(merged), Account::reserved(survivor))
        } else {
            (Account::customer(merged), Account::customer(survivor))
        };
        entries.push((from, -b));
        entries.push((to, b));
    }
    if !entries.is_empty() {
        let tx = Transaction {
            kind: TxKind::Adjust,
            customer: survivor,
            source_key: format!("merge:{merged}"),
            source_event: Some(source_event.to_owned()),
            reason: format!("merge of {merged}"),
            entries,
            lots: false,
        };
        post_all(conn, tenant, &[tx], Utc::now(), None, true).await?;
    }
    for table in ["lots", "orders", "redemptions"] {
        sqlx::query(&format!(
            "UPDATE {table} SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2"
        ))
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *conn)
        .await?;
    }
    // The merged customer's qualifying history counts for the survivor.
    sqlx::query(
        "WITH m AS (DELETE FROM qualifying_days WHERE tenant_id = $1 AND customer_id = $2 RETURNING day, points)
         INSERT INTO qualifying_days AS q (tenant_id, customer_id, day, points) SELECT $1, $3, day, points FROM m
         ON CONFLICT (tenant_id, customer_id, day) DO UPDATE SET points = q.points + EXCLUDED.points",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM tier_status WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(merged)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
