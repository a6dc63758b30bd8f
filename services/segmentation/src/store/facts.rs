//! Loading customers' facts: three set-based queries for any number of customers, so one event
//! and a million-customer recompute read the same way.

use crm_envelope::TenantId;
use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::facts::{EventFact, Facts, NameTotals, Stored, ValueFacts, ORDER_COMPLETED};
use crate::domain::lifecycle::Stage;
use crate::domain::model::TenantModel;
use crate::domain::rfm::{RfmGroup, RfmScore};

/// A retained event as read: customer, name, time, properties.
type EventRow = (
    Uuid,
    String,
    DateTime<Utc>,
    Json<serde_json::Map<String, serde_json::Value>>,
);

/// Totals of one event name as read: customer, name, events, sum, order days (orders only).
type TotalsRow = (Uuid, String, i64, f64, Option<Vec<NaiveDate>>);

#[derive(sqlx::FromRow)]
struct Row {
    customer_id: Uuid,
    traits: Json<serde_json::Map<String, serde_json::Value>>,
    loyalty_tier: Option<String>,
    first_seen_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    last_order_at: Option<DateTime<Utc>>,
    last_order_value: f64,
    categories: Vec<String>,
    rfm_r: Option<i16>,
    rfm_f: Option<i16>,
    rfm_m: Option<i16>,
    rfm_group: Option<String>,
    probability_alive: Option<f64>,
    expected_purchases: Option<f64>,
    lifetime_value: Option<f64>,
    stage: Option<String>,
    lead_score: f64,
    lead_qualified: bool,
    recheck_at: Option<DateTime<Utc>>,
    segments: Vec<Uuid>,
}

impl Row {
    fn into_facts(self) -> Facts {
        let score = |s: Option<i16>| s.and_then(|s| u8::try_from(s).ok());
        let rfm = match (
            score(self.rfm_r),
            score(self.rfm_f),
            score(self.rfm_m),
            self.rfm_group.as_deref().and_then(RfmGroup::parse),
        ) {
            (Some(r), Some(f), Some(m), Some(group)) => Some(RfmScore { r, f, m, group }),
            _ => None,
        };
        let value = match (
            self.probability_alive,
            self.expected_purchases,
            self.lifetime_value,
        ) {
            (Some(p), Some(e), Some(l)) => Some(ValueFacts {
                probability_alive: p,
                expected_purchases: e,
                lifetime_value: l,
            }),
            _ => None,
        };
        Facts {
            customer_id: self.customer_id,
            traits: self.traits.0,
            loyalty_tier: self.loyalty_tier,
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            last_order_at: self.last_order_at,
            last_order_value: self.last_order_value,
            categories: self.categories.into_iter().collect(),
            segments: self.segments.into_iter().collect(),
            rfm,
            value,
            stored: Stored {
                stage: self.stage.as_deref().and_then(Stage::parse),
                lead_score: self.lead_score,
                lead_qualified: self.lead_qualified,
                recheck_at: self.recheck_at,
            },
            ..Facts::default()
        }
    }
}

/// The facts of those of `ids` the part knows, in id order. With `lock`, their rows stay
/// locked until the caller's transaction ends, so two evaluators never interleave.
///
/// The lock is taken by a statement of its own, before the read: a `SELECT ... FOR UPDATE`
/// that waits for another evaluator's lock returns the row's newest version but evaluates its
/// subqueries (the memberships) on the snapshot it started with, from before the other
/// evaluator committed. Reading after the lock is held sees everything that evaluator wrote.
pub async fn load_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
    model: &TenantModel,
    now: DateTime<Utc>,
    lock: bool,
) -> Result<Vec<Facts>, sqlx::Error> {
    if lock {
        sqlx::query(
            "SELECT 1 FROM customer_activity WHERE tenant_id = $1 AND customer_id = ANY($2)
             ORDER BY customer_id FOR UPDATE",
        )
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT customer_id, traits, loyalty_tier, first_seen_at, last_seen_at, last_order_at,
                last_order_value, categories, rfm_r, rfm_f, rfm_m, rfm_group, probability_alive,
                expected_purchases, lifetime_value, stage, lead_score, lead_qualified, recheck_at,
                ARRAY(SELECT m.segment_id FROM memberships m
                      WHERE m.tenant_id = a.tenant_id AND m.customer_id = a.customer_id) AS segments
         FROM customer_activity a WHERE tenant_id = $1 AND customer_id = ANY($2)
         ORDER BY customer_id",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut facts: Vec<Facts> = rows.into_iter().map(Row::into_facts).collect();
    if facts.is_empty() {
        return Ok(facts);
    }
    let index: HashMap<Uuid, usize> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (f.customer_id, i))
        .collect();
    let ids: Vec<Uuid> = facts.iter().map(|f| f.customer_id).collect();

    // Totals per name, and the order days, in one pass over the daily rows.
    let totals: Vec<TotalsRow> = sqlx::query_as(
        "SELECT customer_id, name, sum(events)::int8, sum(total),
                CASE WHEN name = $3 THEN array_agg(day ORDER BY day) END
         FROM daily_activity WHERE tenant_id = $1 AND customer_id = ANY($2)
         GROUP BY customer_id, name",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(ORDER_COMPLETED)
    .fetch_all(&mut *conn)
    .await?;
    for (id, name, count, sum, days) in totals {
        if let Some(f) = index.get(&id).and_then(|i| facts.get_mut(*i)) {
            f.totals.insert(name, NameTotals { count, sum });
            if let Some(days) = days {
                f.order_days = days;
            }
        }
    }

    if !model.event_names.is_empty() {
        let names: Vec<&str> = model.event_names.iter().map(String::as_str).collect();
        let since = now - Duration::days(i64::from(model.settings.retention_days));
        let events: Vec<EventRow> =
            sqlx::query_as(
                "SELECT customer_id, name, occurred_at, properties FROM customer_events
                 WHERE tenant_id = $1 AND customer_id = ANY($2) AND name = ANY($3) AND occurred_at > $4
                 ORDER BY customer_id, occurred_at, event_id",
            )
            .bind(tenant)
            .bind(&ids)
            .bind(&names)
            .bind(since)
            .fetch_all(&mut *conn)
            .await?;
        for (id, name, at, properties) in events {
            if let Some(f) = index.get(&id).and_then(|i| facts.get_mut(*i)) {
                f.events.push(EventFact {
                    name,
                    at,
                    properties: properties.0,
                });
            }
        }
    }

    Ok(facts)
}
