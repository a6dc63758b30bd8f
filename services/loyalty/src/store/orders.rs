//! What earning reads and writes beside the ledger, set-based for a whole poll: members'
//! activity, orders (their points and what refunds took back), cap usage per period, and the
//! birthdays and balances a batch needs.

use crm_envelope::TenantId;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// An order as stored: who placed it, its revenue, the points it earned and those taken back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    /// The customer who placed it.
    pub customer: Uuid,
    /// Its revenue (0 when the event had none).
    pub revenue: f64,
    /// Points it earned.
    pub points: i64,
    /// Points refunds have taken back so far.
    pub taken: i64,
}

/// Enrols the customers (one row each) and adds their orders seen and latest activity.
/// `activity` is (customer, orders in this poll, latest event time).
pub async fn record_activity(
    conn: &mut PgConnection,
    tenant: &TenantId,
    activity: &[(Uuid, i64, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = activity.iter().map(|a| a.0).collect();
    let orders: Vec<i64> = activity.iter().map(|a| a.1).collect();
    let at: Vec<DateTime<Utc>> = activity.iter().map(|a| a.2).collect();
    sqlx::query(
        "INSERT INTO members AS m (tenant_id, customer_id, orders_seen, last_activity_at)
         SELECT $1, c, o, a FROM unnest($2::uuid[], $3::int8[], $4::timestamptz[]) AS x(c, o, a) ORDER BY c
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
             orders_seen = m.orders_seen + EXCLUDED.orders_seen,
             last_activity_at = GREATEST(m.last_activity_at, EXCLUDED.last_activity_at)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&orders)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The known orders among `ids`, locked for this transaction.
pub async fn lock_orders(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> Result<HashMap<String, StoredOrder>, sqlx::Error> {
    let rows: Vec<(String, Uuid, f64, i64, i64)> = sqlx::query_as(
        "SELECT order_id, customer_id, revenue, points, taken_back FROM orders WHERE tenant_id = $1 AND order_id = ANY($2) FOR UPDATE",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, customer, revenue, points, taken)| {
            let order = StoredOrder {
                customer,
                revenue,
                points,
                taken,
            };
            (id, order)
        })
        .collect())
}

/// Points already earned by each (customer, cap period key), locked for this transaction.
pub async fn lock_cap_usage(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[Uuid],
    keys: &[String],
) -> Result<HashMap<(Uuid, String), i64>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT customer_id, period_key, points FROM cap_usage WHERE tenant_id = $1 AND customer_id = ANY($2) AND period_key = ANY($3) FOR UPDATE",
    )
    .bind(tenant)
    .bind(customers)
    .bind(keys)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(c, k, n)| ((c, k), n)).collect())
}

/// The customers' birthdays (`MM-DD` or `YYYY-MM-DD`, as recorded from their traits).
pub async fn birthdays(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[Uuid],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    Ok(sqlx::query_as::<_, (Uuid, String)>("SELECT customer_id, birthday FROM profiles WHERE tenant_id = $1 AND customer_id = ANY($2) AND birthday IS NOT NULL")
        .bind(tenant)
        .bind(customers)
        .fetch_all(conn)
        .await?
        .into_iter()
        .collect())
}

/// The customers' balances, their accounts locked in customer order.
pub async fn lock_balances(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[Uuid],
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    Ok(sqlx::query_as::<_, (Uuid, i64)>("SELECT customer_id, balance FROM accounts WHERE tenant_id = $1 AND kind = 'customer' AND customer_id = ANY($2) ORDER BY customer_id FOR UPDATE")
        .bind(tenant)
        .bind(customers)
        .fetch_all(conn)
        .await?
        .into_iter()
        .collect())
}

/// Inserts orders seen for the first time (an order already stored is left as it is).
pub async fn insert_orders(
    conn: &mut PgConnection,
    tenant: &TenantId,
    orders: &[(&String, &StoredOrder)],
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO orders (tenant_id, order_id, customer_id, revenue, points, taken_back)
         SELECT $1, i, c, r, p, k FROM unnest($2::text[], $3::uuid[], $4::float8[], $5::int8[], $6::int8[]) AS x(i, c, r, p, k)
         ON CONFLICT (tenant_id, order_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(orders.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>())
    .bind(orders.iter().map(|(_, o)| o.customer).collect::<Vec<_>>())
    .bind(orders.iter().map(|(_, o)| o.revenue).collect::<Vec<_>>())
    .bind(orders.iter().map(|(_, o)| o.points).collect::<Vec<_>>())
    .bind(orders.iter().map(|(_, o)| o.taken).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what refunds have now taken back of stored orders.
pub async fn update_taken_back(
    conn: &mut PgConnection,
    tenant: &TenantId,
    orders: &[(&String, &StoredOrder)],
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE orders o SET taken_back = x.k FROM unnest($2::text[], $3::int8[]) AS x(i, k) WHERE o.tenant_id = $1 AND o.order_id = x.i")
        .bind(tenant)
        .bind(orders.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>())
        .bind(orders.iter().map(|(_, o)| o.taken).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the cap usage of (customer, period key) pairs.
pub async fn save_cap_usage(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rows: &[(Uuid, String, i64)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO cap_usage (tenant_id, customer_id, period_key, points)
         SELECT $1, c, k, n FROM unnest($2::uuid[], $3::text[], $4::int8[]) AS x(c, k, n)
         ON CONFLICT (tenant_id, customer_id, period_key) DO UPDATE SET points = EXCLUDED.points",
    )
    .bind(tenant)
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
