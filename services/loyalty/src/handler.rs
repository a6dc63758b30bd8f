//! Enrols members and counts their qualifying orders.

use crm_envelope::{Envelope, Topic};
use crm_kafka::{dedupe, require_customer, HandleError, Handler, MessageMeta};
use sqlx::PgPool;

/// Applies resolved events to `members`, once per message id.
#[derive(Clone)]
pub struct LoyaltyHandler {
    pool: PgPool,
}

impl LoyaltyHandler {
    /// A handler over the part's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

impl Handler for LoyaltyHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        // Profiles, segments and interactions feed bonuses and tiers in the loyalty issue.
        if meta.topic != Topic::Events {
            return Ok(());
        }
        let customer_id = require_customer(e)?;
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, "loyalty:crm.events.v1", &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        let is_order = e.name.as_deref() == Some("Order Completed");
        sqlx::query(
            "INSERT INTO members AS m (tenant_id, customer_id, orders_seen, last_activity_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
                 orders_seen = m.orders_seen + EXCLUDED.orders_seen,
                 last_activity_at = GREATEST(m.last_activity_at, EXCLUDED.last_activity_at)",
        )
        .bind(e.tenant_id.as_str())
        .bind(customer_id)
        .bind(i64::from(is_order))
        .bind(e.occurred_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
