//! Tiers: qualification on points earned (net of refunds) in a rolling window; upgrades at
//! once, downgrades only at the end of the tier's period; `tier.changed` published.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::programme::Programme;
use crate::store::messages::message;

/// Points each of `customers` earned (net of take-backs) in the programme's window ending at
/// `now`, whole UTC days.
pub async fn qualifying(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    customers: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let since = now - Duration::days(i64::from(p.tier_window_days));
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT customer_id, sum(points)::int8 FROM qualifying_days
         WHERE tenant_id = $1 AND customer_id = ANY($2) AND day > $3 GROUP BY customer_id",
    )
    .bind(tenant)
    .bind(customers)
    .bind(since.date_naive())
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The current tiers of `customers`.
pub async fn current(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[Uuid],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT customer_id, tier FROM tier_status WHERE tenant_id = $1 AND customer_id = ANY($2)",
    )
    .bind(tenant)
    .bind(customers)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Re-qualifies `customers` after they earned, given their tiers as [`current`] read them: a
/// higher tier is granted at once (a new period starts); never lower here. Returns the
/// `tier.changed` messages.
pub async fn upgrade(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    customers: &[Uuid],
    tiers: &HashMap<Uuid, String>,
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    if p.tiers.is_empty() || customers.is_empty() {
        return Ok(Vec::new());
    }
    let q = qualifying(conn, tenant, p, customers, now).await?;
    let mut changes = Vec::new();
    for c in customers {
        let points = q.get(c).copied().unwrap_or(0);
        let Some(target) = p.tier_for(points) else {
            continue;
        };
        let was = tiers.get(c);
        let higher = match was {
            None => true,
            Some(t) => p.rank_of(&target.name) > p.rank_of(t),
        };
        if higher {
            changes.push((*c, was.cloned(), target.name.clone(), points));
        }
    }
    set(conn, tenant, p, &changes, now).await
}

/// Writes tier changes `(customer, from, to, qualifying points)` with a new period each, and
/// returns their messages (none for a customer's first, base tier).
async fn set(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    changes: &[(Uuid, Option<String>, String, i64)],
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let end = now + Duration::days(i64::from(p.tier_period_days));
    let ids: Vec<Uuid> = changes.iter().map(|c| c.0).collect();
    let names: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
    sqlx::query(
        "INSERT INTO tier_status (tenant_id, customer_id, tier, since, period_end)
         SELECT $1, c, t, $4, $5 FROM unnest($2::uuid[], $3::text[]) AS x(c, t)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET tier = EXCLUDED.tier, since = EXCLUDED.since, period_end = EXCLUDED.period_end",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&names)
    .bind(now)
    .bind(end)
    .execute(conn)
    .await?;
    changes
        .iter()
        .filter(|(_, from, to, _)| from.is_some() || p.rank_of(to) != Some(0))
        .map(|(c, from, to, points)| {
            message(
                tenant,
                "tier.changed",
                *c,
                json!({"from": from, "tier": to, "qualifying_points": points, "period_end": end}),
            )
        })
        .collect()
}

/// At the end of their period, customers are re-qualified: a lower tier now takes effect (a
/// higher one too), and a new period starts. Returns the messages.
pub async fn end_periods(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    let due: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT customer_id, tier FROM tier_status WHERE tenant_id = $1 AND period_end <= $2 ORDER BY customer_id LIMIT 5000 FOR UPDATE SKIP LOCKED",
    )
    .bind(tenant.as_str())
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = due.iter().map(|d| d.0).collect();
    let q = qualifying(conn, tenant, p, &ids, now).await?;
    let mut changes = Vec::new();
    let mut renew = Vec::new();
    for (c, tier) in due {
        let points = q.get(&c).copied().unwrap_or(0);
        match p.tier_for(points) {
            Some(t) if t.name != tier => changes.push((c, Some(tier), t.name.clone(), points)),
            _ => renew.push(c),
        }
    }
    sqlx::query(
        "UPDATE tier_status SET period_end = $3 WHERE tenant_id = $1 AND customer_id = ANY($2)",
    )
    .bind(tenant.as_str())
    .bind(&renew)
    .bind(now + Duration::days(i64::from(p.tier_period_days)))
    .execute(&mut *conn)
    .await?;
    set(conn, tenant, p, &changes, now).await
}
