//! `crm-loyalty verify`: every invariant of the ledger checked against the database.

use serde::Serialize;
use sqlx::PgPool;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant (`unbalanced_transaction`, `balance_mismatch`, ...).
    pub invariant: &'static str,
    /// Tenant and identifiers involved, and the figures (no personal data).
    pub detail: String,
}

/// Checks, for every tenant:
/// - every transaction has entries, and they sum to zero;
/// - every account's balance equals the sum of its entries (and no entry lacks an account);
/// - no customer balance is negative unless the tenant's programme allows it;
/// - a customer's open lots add up to its available balance (0 when negative);
/// - a customer's reserved balance equals the points of its reserved redemptions.
pub async fn verify(pool: &PgPool) -> Result<Vec<Violation>, sqlx::Error> {
    let mut out = Vec::new();
    let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT t.tenant_id, t.id, sum(e.amount)::int8 FROM ledger_transactions t
         LEFT JOIN entries e ON e.tenant_id = t.tenant_id AND e.transaction_id = t.id
         GROUP BY t.tenant_id, t.id HAVING coalesce(sum(e.amount), 1) <> 0",
    )
    .fetch_all(pool)
    .await?;
    out.extend(rows.into_iter().map(|(t, id, sum)| Violation {
        invariant: "unbalanced_transaction",
        detail: format!(
            "tenant {t} transaction {id}: entries sum to {}",
            sum.map_or("nothing (no entries)".into(), |s| s.to_string())
        ),
    }));
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "WITH sums AS (SELECT tenant_id, kind, customer_id, sum(amount)::int8 AS total FROM entries GROUP BY 1, 2, 3)
         SELECT coalesce(a.tenant_id, s.tenant_id), coalesce(a.kind, s.kind), coalesce(a.customer_id, s.customer_id)::text,
                coalesce(a.balance, 0), coalesce(s.total, 0)
         FROM accounts a FULL JOIN sums s USING (tenant_id, kind, customer_id)
         WHERE coalesce(a.balance, 0) <> coalesce(s.total, 0) OR a.tenant_id IS NULL",
    )
    .fetch_all(pool)
    .await?;
    out.extend(
        rows.into_iter()
            .map(|(t, kind, c, balance, total)| Violation {
                invariant: "balance_mismatch",
                detail: format!(
                    "tenant {t} account {kind}/{c}: balance {balance}, entries sum to {total}"
                ),
            }),
    );
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT a.tenant_id, a.customer_id::text, a.balance FROM accounts a
         LEFT JOIN programmes p ON p.tenant_id = a.tenant_id
         WHERE a.kind IN ('customer', 'reserved') AND a.balance < 0
           AND NOT (a.kind = 'customer' AND coalesce((p.programme->>'allow_negative')::bool, false))",
    )
    .fetch_all(pool)
    .await?;
    out.extend(rows.into_iter().map(|(t, c, b)| Violation {
        invariant: "negative_balance",
        detail: format!("tenant {t} customer {c}: {b}"),
    }));
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "WITH l AS (SELECT tenant_id, customer_id, sum(remaining)::int8 AS open FROM lots GROUP BY 1, 2)
         SELECT coalesce(a.tenant_id, l.tenant_id), coalesce(a.customer_id, l.customer_id)::text,
                greatest(coalesce(a.balance, 0), 0), coalesce(l.open, 0)
         FROM (SELECT * FROM accounts WHERE kind = 'customer') a FULL JOIN l USING (tenant_id, customer_id)
         WHERE greatest(coalesce(a.balance, 0), 0) <> coalesce(l.open, 0)",
    )
    .fetch_all(pool)
    .await?;
    out.extend(rows.into_iter().map(|(t, c, b, open)| Violation {
        invariant: "lots_mismatch",
        detail: format!("tenant {t} customer {c}: available {b}, open lots {open}"),
    }));
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "WITH r AS (SELECT tenant_id, customer_id, sum(points)::int8 AS held FROM redemptions WHERE status = 'reserved' GROUP BY 1, 2)
         SELECT coalesce(a.tenant_id, r.tenant_id), coalesce(a.customer_id, r.customer_id)::text, coalesce(a.balance, 0), coalesce(r.held, 0)
         FROM (SELECT * FROM accounts WHERE kind = 'reserved') a FULL JOIN r USING (tenant_id, customer_id)
         WHERE coalesce(a.balance, 0) <> coalesce(r.held, 0)",
    )
    .fetch_all(pool)
    .await?;
    out.extend(rows.into_iter().map(|(t, c, b, held)| Violation {
        invariant: "reservations_mismatch",
        detail: format!(
            "tenant {t} customer {c}: reserved balance {b}, reserved redemptions {held}"
        ),
    }));
    Ok(out)
}
