//! The evaluation engine: compiled tenant models ([`catalog`]), the pure per-customer
//! evaluation ([`evaluate`]) and the writes of its outcomes ([`apply`]). [`evaluate_many`]
//! puts them together for any set of customers.

pub mod apply;
pub mod catalog;
pub mod evaluate;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

pub use crate::domain::model::{Change, TenantModel};
pub use apply::Applied;
pub use catalog::Catalog;

use crate::store::facts::load_many;

/// Loads `ids` (locking their rows), evaluates them after `change` at `now`, and writes and
/// publishes what changed, in the caller's transaction.
pub async fn evaluate_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &TenantModel,
    ids: &[Uuid],
    change: &Change,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<Applied, sqlx::Error> {
    let mut facts = load_many(conn, tenant, ids, model, now, true).await?;
    let outcomes: Vec<_> = facts
        .iter_mut()
        .map(|f| {
            let stored = f.stored;
            (evaluate::evaluate_customer(model, f, change, now), stored)
        })
        .collect();
    apply::apply(conn, tenant, model, &outcomes, reason, now).await
}
