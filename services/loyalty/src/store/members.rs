//! What loyalty keeps of a person and how it follows profile changes: birthdays from traits,
//! balances, lots and redemptions moved on a merge, and personal data cleared on erasure
//! (docs/events.md): entries stay, balanced, under the tombstone id; reasons are cleared.

use chrono::Utc;
use crm_envelope::Envelope;
use crm_kafka::{require_customer, HandleError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ledger::{Account, Transaction, TxKind};
use crate::store::ledger::post_all;

fn uuid_prop(e: &Envelope, key: &str) -> Result<Uuid, HandleError> {
    e.uuid_property(key).ok_or_else(|| {
        HandleError::permanent(
            "missing_property",
            format!("{} without a valid properties.{key}", e.kind),
        )
    })
}

/// Applies one `crm.profiles.v1` message inside the caller's transaction.
pub async fn on_profile(conn: &mut PgConnection, e: &Envelope) -> Result<(), HandleError> {
    let tenant = e.tenant_id.as_str();
    match e.kind.as_str() {
        "profile.created" | "profile.updated" => {
            let id = require_customer(e)?;
            let birthday = ["birthday", "date_of_birth", "dob"]
                .iter()
                .find_map(|k| e.traits.get(*k).and_then(serde_json::Value::as_str))
                .filter(|b| chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d").is_ok());
            sqlx::query(
                "INSERT INTO profiles (tenant_id, customer_id, birthday) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, customer_id) DO UPDATE SET birthday = EXCLUDED.birthday",
            )
            .bind(tenant)
            .bind(id)
            .bind(birthday)
            .execute(conn)
            .await?;
        }
        "profile.merged" => {
            let (survivor, merged) = (uuid_prop(e, "survivor_id")?, uuid_prop(e, "merged_id")?);
            merge(conn, e, survivor, merged).await?;
        }
        "profile.erased" => {
            let ids = e.erased_ids();
            sqlx::query("DELETE FROM profiles WHERE tenant_id = $1 AND customer_id = ANY($2)")
                .bind(tenant)
                .bind(&ids)
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE ledger_transactions SET reason = 'erased', source_event = NULL WHERE tenant_id = $1 AND customer_id = ANY($2)")
                .bind(tenant)
                .bind(&ids)
                .execute(&mut *conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Moves the merged customer's balances (available and reserved) to the survivor in one
/// balanced transaction, re-keying lots (with their dates), orders, redemptions and members.
async fn merge(
    conn: &mut PgConnection,
    e: &Envelope,
    survivor: Uuid,
    merged: Uuid,
) -> Result<(), HandleError> {
    let tenant = e.tenant_id.as_str();
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
            source_event: Some(e.id.clone()),
            reason: format!("merge of {merged}"),
            entries,
            lots: false,
        };
        post_all(conn, tenant, &[tx], Utc::now(), None, true)
            .await
            .map_err(crate::handler::post_error)?;
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
