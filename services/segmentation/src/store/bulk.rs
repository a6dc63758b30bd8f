//! A poll's activity written set-based: the ids looked up in one query, the events of every
//! customer recorded in one statement, traits and tiers in one statement each. Each function
//! gives the same stored result as the one-message functions of [`super::activity`] applied in
//! order (the test `streaming_in_polls_equals_one_at_a_time` in `tests/tests/segmentation.rs`
//! holds them to it).

use std::collections::{BTreeSet, HashMap};

use crm_envelope::{Envelope, TenantId};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::activity::{event_name, ADD_TO_ACTIVITY};
use crate::domain::facts::{event_amount, order_categories, ORDER_COMPLETED};

/// What the part knows of one incoming id (see [`super::activity::Lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Erased: its messages are ignored.
    pub erased: bool,
    /// The customer its messages apply to (the survivor when merged).
    pub customer: Uuid,
}

/// [`Seen`] of each of `ids` and the tenant's generation (0 before any change), in one query.
pub async fn lookup_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(HashMap<Uuid, Seen>, i64), sqlx::Error> {
    let rows: Vec<(Uuid, bool, Option<Uuid>, Option<i64>)> = sqlx::query_as(
        "SELECT x.id,
                EXISTS (SELECT 1 FROM erased e WHERE e.tenant_id = $1 AND e.customer_id = x.id),
                (SELECT a.survivor_id FROM aliases a WHERE a.tenant_id = $1 AND a.merged_id = x.id),
                (SELECT generation FROM tenant_generations WHERE tenant_id = $1)
         FROM (SELECT DISTINCT unnest($2::uuid[]) AS id) x",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let generation = rows.first().and_then(|r| r.3).unwrap_or(0);
    let seen = rows
        .into_iter()
        .map(|(id, erased, survivor, _)| {
            (
                id,
                Seen {
                    erased,
                    customer: survivor.unwrap_or(id),
                },
            )
        })
        .collect();
    Ok((seen, generation))
}

/// One message to count: an event of the customer's own, or a contact of campaign's
/// (`interaction`), which is counted under its name but moves no activity totals.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    /// The customer it is recorded for.
    pub customer: Uuid,
    /// The message.
    pub envelope: &'a Envelope,
    /// A contact of campaign's rather than the customer's own event.
    pub interaction: bool,
}

/// Records `items` of `tenant`, in order, in one statement: the retained events, the daily
/// counts per name, and (for the customers' own events) the customer rows, each aggregated
/// per key first so that a customer with several events in the poll is written once. A
/// customer known only through contacts gets an empty row, as one at a time.
pub async fn record_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    items: &[Counted<'_>],
) -> Result<(), sqlx::Error> {
    if items.is_empty() {
        return Ok(());
    }
    let n = items.len();
    let (mut customers, mut ids, mut names, mut at, mut props) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut amounts, mut orders, mut own) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut categories: HashMap<Uuid, BTreeSet<String>> = HashMap::new();
    for item in items {
        let e = item.envelope;
        let name = event_name(e);
        let is_order = !item.interaction && name == ORDER_COMPLETED;
        if is_order {
            let found = order_categories(&e.properties);
            if !found.is_empty() {
                categories.entry(item.customer).or_default().extend(found);
            }
        }
        customers.push(item.customer);
        ids.push(e.id.as_str());
        names.push(name);
        at.push(e.occurred_at);
        props.push(Json(&e.properties));
        amounts.push(if item.interaction {
            0.0
        } else {
            event_amount(&e.properties)
        });
        orders.push(i64::from(is_order));
        own.push(!item.interaction);
    }
    let (cat_customers, cat_lists): (Vec<Uuid>, Vec<Json<Vec<String>>>) = categories
        .into_iter()
        .map(|(c, set)| (c, Json(set.into_iter().collect())))
        .unzip();
    sqlx::query(&format!(
        "WITH x AS (
             SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],
                                  $6::jsonb[], $7::float8[], $8::int8[], $9::bool[])
                 WITH ORDINALITY AS x(c, id, nm, at, props, amt, o, own, n)),
         ev AS (
             INSERT INTO customer_events (tenant_id, customer_id, event_id, name, occurred_at, properties)
             SELECT $1, c, id, nm, at, props FROM x ORDER BY n ON CONFLICT DO NOTHING),
         day AS (
             INSERT INTO daily_activity AS d (tenant_id, customer_id, name, day, events, total)
             SELECT $1, c, nm, (at AT TIME ZONE 'UTC')::date, count(*), sum(amt)
             FROM x GROUP BY c, nm, (at AT TIME ZONE 'UTC')::date
             ON CONFLICT (tenant_id, customer_id, name, day)
             DO UPDATE SET events = d.events + EXCLUDED.events, total = d.total + EXCLUDED.total),
         cats AS (
             SELECT c, ARRAY(SELECT jsonb_array_elements_text(j)) AS categories
             FROM unnest($10::uuid[], $11::jsonb[]) AS y(c, j)),
         agg AS (
             SELECT c, count(*) AS events, sum(o) AS orders,
                    sum((CASE WHEN o = 1 THEN amt ELSE 0 END)::numeric(20, 4)) AS revenue,
                    min(at) AS first_at, max(at) AS last_at,
                    max(at) FILTER (WHERE o = 1) AS order_at,
                    coalesce((array_agg(amt ORDER BY at DESC, n DESC) FILTER (WHERE o = 1))[1], 0)
                        AS order_value
             FROM x WHERE own GROUP BY c),
         contacted AS (
             INSERT INTO customer_activity (tenant_id, customer_id)
             SELECT DISTINCT $1, c FROM x WHERE NOT own AND c NOT IN (SELECT c FROM agg)
             ORDER BY 2 ON CONFLICT DO NOTHING)
         INSERT INTO customer_activity AS a
             (tenant_id, customer_id, events_total, orders_total, revenue_total, first_seen_at,
              last_seen_at, last_order_at, last_order_value, categories)
         SELECT $1, agg.c, events, orders, revenue, first_at, last_at, order_at, order_value,
                coalesce(cats.categories, '{{}}')
         FROM agg LEFT JOIN cats ON cats.c = agg.c
         ORDER BY agg.c
         {ADD_TO_ACTIVITY}"
    ))
    .bind(tenant)
    .bind(&customers)
    .bind(&ids)
    .bind(&names)
    .bind(&at)
    .bind(&props)
    .bind(&amounts)
    .bind(&orders)
    .bind(&own)
    .bind(&cat_customers)
    .bind(&cat_lists)
    .execute(conn)
    .await?;
    Ok(())
}

/// A profile's traits as profile events carry them.
pub type Traits = serde_json::Map<String, serde_json::Value>;

/// Replaces the traits of each customer in `traits` (the last of the poll's profile messages
/// for it), creating rows of customers seen only through their profile so far.
pub async fn set_traits_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    traits: &HashMap<Uuid, &Traits>,
) -> Result<(), sqlx::Error> {
    if traits.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = traits.keys().copied().collect();
    let values: Vec<Json<&Traits>> = ids
        .iter()
        .filter_map(|c| traits.get(c))
        .map(|t| Json(*t))
        .collect();
    sqlx::query(
        "INSERT INTO customer_activity (tenant_id, customer_id, traits)
         SELECT $1, c, t FROM unnest($2::uuid[], $3::jsonb[]) AS x(c, t) ORDER BY c
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET traits = EXCLUDED.traits",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the loyalty tier of each customer in `tiers` (the last of the poll's for it).
pub async fn set_tiers_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    tiers: &HashMap<Uuid, &str>,
) -> Result<(), sqlx::Error> {
    if tiers.is_empty() {
        return Ok(());
    }
    let (ids, values): (Vec<Uuid>, Vec<&str>) = tiers.iter().map(|(c, t)| (*c, *t)).unzip();
    sqlx::query(
        "INSERT INTO customer_activity (tenant_id, customer_id, loyalty_tier)
         SELECT $1, c, t FROM unnest($2::uuid[], $3::text[]) AS x(c, t) ORDER BY c
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET loyalty_tier = EXCLUDED.loyalty_tier",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(())
}
