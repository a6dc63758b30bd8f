//! Writing customers' activity: events into the per-name daily aggregates, the retained events
//! and the customer row; traits and tiers from other parts; merges and erasures.

use crm_envelope::{Envelope, TenantId};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::facts::{event_amount, order_categories, ORDER_COMPLETED};

/// How a customer's row takes in new activity (`EXCLUDED`, one event's or a poll's aggregated):
/// counts and sums add up, first seen is the earlier, last seen and last order the later (the
/// value of the later order; of the incoming one on a tie), categories unite. Shared by
/// [`record_event`] and the poll's `bulk::record_many`, so both combine alike.
pub(crate) const ADD_TO_ACTIVITY: &str = "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
             events_total = a.events_total + EXCLUDED.events_total,
             orders_total = a.orders_total + EXCLUDED.orders_total,
             revenue_total = a.revenue_total + EXCLUDED.revenue_total,
             first_seen_at = LEAST(a.first_seen_at, EXCLUDED.first_seen_at),
             last_seen_at = GREATEST(a.last_seen_at, EXCLUDED.last_seen_at),
             last_order_value = CASE
                 WHEN EXCLUDED.last_order_at IS NOT NULL
                      AND (a.last_order_at IS NULL OR EXCLUDED.last_order_at >= a.last_order_at)
                 THEN EXCLUDED.last_order_value ELSE a.last_order_value END,
             last_order_at = GREATEST(a.last_order_at, EXCLUDED.last_order_at),
             categories = CASE WHEN cardinality(EXCLUDED.categories) = 0 THEN a.categories
                 ELSE ARRAY(SELECT DISTINCT unnest(a.categories || EXCLUDED.categories) ORDER BY 1) END";

/// What an event was, for choosing the segments to re-evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its name (the kind for `page`, `identify`, ...).
    pub name: String,
    /// Whether it is an order.
    pub is_order: bool,
}

/// The name an event is counted under: `name` for tracks, the kind otherwise.
pub fn event_name(e: &Envelope) -> String {
    e.name.clone().unwrap_or_else(|| e.kind.clone())
}

/// Adds event `e` of `customer` to the aggregates, inside the caller's transaction.
pub async fn record_event(
    conn: &mut PgConnection,
    customer: Uuid,
    e: &Envelope,
) -> Result<Recorded, sqlx::Error> {
    let tenant = &e.tenant_id;
    let name = event_name(e);
    let is_order = name == ORDER_COMPLETED;
    let amount = event_amount(&e.properties);
    let categories: Vec<String> = if is_order {
        order_categories(&e.properties).into_iter().collect()
    } else {
        Vec::new()
    };
    // One statement: the retained event, its day's row and the customer's row.
    sqlx::query(&format!(
        "WITH ev AS (
             INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING),
         day AS (
             INSERT INTO daily_activity AS d (tenant_id, customer_id, name, day, events, total)
             VALUES ($1, $2, $4, ($5 AT TIME ZONE 'UTC')::date, 1, $7)
             ON CONFLICT (tenant_id, customer_id, name, day)
             DO UPDATE SET events = d.events + 1, total = d.total + EXCLUDED.total)
         INSERT INTO customer_activity AS a
             (tenant_id, customer_id, events_total, orders_total, revenue_total, first_seen_at,
              last_seen_at, last_order_at, last_order_value, categories)
         VALUES ($1, $2, 1, $8, $9::float8::numeric, $5, $5, $10, $9, $11)
         {ADD_TO_ACTIVITY}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(&e.id)
    .bind(&name)
    .bind(e.occurred_at)
    .bind(Json(&e.properties))
    .bind(amount)
    .bind(i64::from(is_order))
    .bind(if is_order { amount } else { 0.0 })
    .bind(is_order.then_some(e.occurred_at))
    .bind(&categories)
    .execute(&mut *conn)
    .await?;
    Ok(Recorded { name, is_order })
}

/// Adds a contact of campaign's (`crm.interactions.v1`: `message.opened`, `journey.entered`, …)
/// to the customer's counted events under its kind, so that event rules can count it
/// ("opened an email in the last 30 days"). It is not the customer's own activity: activity
/// totals, last seen and the lifecycle stage do not move. A customer first known through such a
/// contact gets its row (with no activity), so that the rules that count contacts see it.
pub async fn record_interaction(
    conn: &mut PgConnection,
    customer: Uuid,
    e: &Envelope,
) -> Result<Recorded, sqlx::Error> {
    let name = event_name(e);
    sqlx::query(
        "WITH ev AS (
             INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING),
         who AS (
             INSERT INTO customer_activity (tenant_id, customer_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING)
         INSERT INTO daily_activity AS d (tenant_id, customer_id, name, day, events, total)
         VALUES ($1, $2, $4, ($5 AT TIME ZONE 'UTC')::date, 1, 0)
         ON CONFLICT (tenant_id, customer_id, name, day) DO UPDATE SET events = d.events + 1",
    )
    .bind(&e.tenant_id)
    .bind(customer)
    .bind(&e.id)
    .bind(&name)
    .bind(e.occurred_at)
    .bind(Json(&e.properties))
    .execute(conn)
    .await?;
    Ok(Recorded {
        name,
        is_order: false,
    })
}

/// Replaces the customer's traits (profile events carry the current traits), creating the row
/// of a customer seen only through its profile so far.
pub async fn set_traits(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    traits: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_activity (tenant_id, customer_id, traits) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET traits = EXCLUDED.traits",
    )
    .bind(tenant)
    .bind(customer)
    .bind(Json(traits))
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the customer's loyalty tier.
pub async fn set_tier(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    tier: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_activity (tenant_id, customer_id, loyalty_tier) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET loyalty_tier = EXCLUDED.loyalty_tier",
    )
    .bind(tenant)
    .bind(customer)
    .bind(tier)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the part knows of an incoming id, read in one query: whether it was erased, the
/// customer it stands for now (its survivor when merged), and the tenant's generation.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    /// Erased: later messages are ignored.
    pub erased: bool,
    /// The customer to apply the message to.
    pub customer: Uuid,
    /// The tenant's segment and settings generation.
    pub generation: i64,
}

/// [`Lookup`] of `id`.
pub async fn lookup(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Lookup, sqlx::Error> {
    let (erased, survivor, generation): (bool, Option<Uuid>, Option<i64>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM erased WHERE tenant_id = $1 AND customer_id = $2),
                (SELECT survivor_id FROM aliases WHERE tenant_id = $1 AND merged_id = $2),
                (SELECT generation FROM tenant_generations WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(Lookup {
        erased,
        customer: survivor.unwrap_or(id),
        generation: generation.unwrap_or(0),
    })
}

/// Moves `merged`'s activity onto `survivor`, combining the aggregates: counts and sums add
/// up, first seen is the earlier, last seen and last order the later, categories unite.
/// Returns the segments `merged` was in (its memberships are removed; the caller publishes
/// the exits and re-evaluates the survivor).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO aliases (tenant_id, merged_id, survivor_id) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    // Earlier aliases of the merged id now answer the survivor too.
    sqlx::query("UPDATE aliases SET survivor_id = $3 WHERE tenant_id = $1 AND survivor_id = $2")
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *conn)
        .await?;
    // Each table moves in one statement: the merged id's rows are deleted and re-inserted
    // under the survivor, combining with its own.
    for sql in [
        "WITH m AS (DELETE FROM daily_activity WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO daily_activity AS d (tenant_id, customer_id, name, day, events, total)
         SELECT tenant_id, $3, name, day, events, total FROM m
         ON CONFLICT (tenant_id, customer_id, name, day)
         DO UPDATE SET events = d.events + EXCLUDED.events, total = d.total + EXCLUDED.total",
        "WITH m AS (DELETE FROM customer_events WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
         SELECT tenant_id, $3, event_id, name, occurred_at, properties FROM m ON CONFLICT DO NOTHING",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(merged)
            .bind(survivor)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "WITH m AS (DELETE FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO customer_activity AS a
             (tenant_id, customer_id, events_total, orders_total, revenue_total, first_seen_at,
              last_seen_at, last_order_at, last_order_value, categories, traits, loyalty_tier)
         SELECT tenant_id, $3, events_total, orders_total, revenue_total, first_seen_at,
                last_seen_at, last_order_at, last_order_value, categories, traits, loyalty_tier
         FROM m
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
             events_total = a.events_total + EXCLUDED.events_total,
             orders_total = a.orders_total + EXCLUDED.orders_total,
             revenue_total = a.revenue_total + EXCLUDED.revenue_total,
             first_seen_at = LEAST(a.first_seen_at, EXCLUDED.first_seen_at),
             last_seen_at = GREATEST(a.last_seen_at, EXCLUDED.last_seen_at),
             last_order_value = CASE
                 WHEN EXCLUDED.last_order_at IS NOT NULL
                      AND (a.last_order_at IS NULL OR EXCLUDED.last_order_at > a.last_order_at)
                 THEN EXCLUDED.last_order_value ELSE a.last_order_value END,
             last_order_at = GREATEST(a.last_order_at, EXCLUDED.last_order_at),
             categories = ARRAY(SELECT DISTINCT unnest(a.categories || EXCLUDED.categories) ORDER BY 1),
             loyalty_tier = COALESCE(a.loyalty_tier, EXCLUDED.loyalty_tier)",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    let segments: Vec<(Uuid,)> = sqlx::query_as(
        "DELETE FROM memberships WHERE tenant_id = $1 AND customer_id = $2 RETURNING segment_id",
    )
    .bind(tenant)
    .bind(merged)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE stage_transitions SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    Ok(segments.into_iter().map(|(s,)| s).collect())
}

/// Deletes everything kept under `ids` and records them as erased (docs/events.md, "What every
/// part does on `profile.erased`"). Stage transitions keep their counts for the reports,
/// re-keyed to no one.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    for table in [
        "customer_activity",
        "daily_activity",
        "customer_events",
        "memberships",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND customer_id = ANY($2)"
        ))
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE stage_transitions SET customer_id = '00000000-0000-0000-0000-000000000000' WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM aliases WHERE tenant_id = $1 AND (merged_id = ANY($2) OR survivor_id = ANY($2))")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO erased (tenant_id, customer_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Forgets that `restored` was merged: it is a customer of its own again.
pub async fn unmerge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    restored: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM aliases WHERE tenant_id = $1 AND merged_id = $2")
        .bind(tenant)
        .bind(restored)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes retained events older than each tenant's retention (aggregates stay).
pub async fn purge_events(
    conn: &mut PgConnection,
    tenant: &TenantId,
    retention_days: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM customer_events WHERE tenant_id = $1 AND occurred_at < now() - make_interval(days => $2)",
    )
    .bind(tenant)
    .bind(i32::try_from(retention_days).unwrap_or(i32::MAX))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
