//! Keeps per-customer activity aggregates from resolved events.

use crm_envelope::{Envelope, Topic};
use crm_kafka::{dedupe, require_customer, HandleError, Handler, MessageMeta};
use sqlx::PgPool;

/// Applies resolved events to `customer_activity`, once per message id.
#[derive(Clone)]
pub struct SegmentationHandler {
    pool: PgPool,
}

impl SegmentationHandler {
    /// A handler over the part's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

/// The revenue of an `Order Completed` event (Segment spec: `properties.revenue`), if any.
pub(crate) fn order_revenue(e: &Envelope) -> Option<f64> {
    if e.name.as_deref() != Some("Order Completed") {
        return None;
    }
    Some(
        e.properties
            .get("revenue")
            .and_then(serde_json::Value::as_f64)
            .filter(|r| r.is_finite())
            .unwrap_or(0.0),
    )
}

impl Handler for SegmentationHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        // Profiles, loyalty and interactions feed segments in the next issue.
        if meta.topic != Topic::Events {
            return Ok(());
        }
        let customer_id = require_customer(e)?;
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, "segmentation:crm.events.v1", &e.tenant_id, &e.id)
            .await?
        {
            return Ok(());
        }
        let revenue = order_revenue(e);
        sqlx::query(
            "INSERT INTO customer_activity AS a
                 (tenant_id, customer_id, events_total, orders_total, revenue_total, first_seen_at, last_seen_at)
             VALUES ($1, $2, 1, $3, $4::float8::numeric, $5, $5)
             ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
                 events_total = a.events_total + 1,
                 orders_total = a.orders_total + EXCLUDED.orders_total,
                 revenue_total = a.revenue_total + EXCLUDED.revenue_total,
                 first_seen_at = LEAST(a.first_seen_at, EXCLUDED.first_seen_at),
                 last_seen_at = GREATEST(a.last_seen_at, EXCLUDED.last_seen_at)",
        )
        .bind(e.tenant_id.as_str())
        .bind(customer_id)
        .bind(i64::from(revenue.is_some()))
        .bind(revenue.unwrap_or(0.0))
        .bind(e.occurred_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_envelope::TenantId;

    #[test]
    fn revenue_only_from_completed_orders() {
        let mut e = Envelope::domain(
            TenantId::parse("t").unwrap(),
            "track",
            uuid::Uuid::nil(),
            "test",
        );
        e.name = Some("Order Completed".into());
        e.properties
            .insert("revenue".into(), serde_json::json!(12.5));
        assert_eq!(order_revenue(&e), Some(12.5));
        e.properties
            .insert("revenue".into(), serde_json::json!("lots"));
        assert_eq!(order_revenue(&e), Some(0.0));
        e.name = Some("Product Viewed".into());
        assert_eq!(order_revenue(&e), None);
    }
}
