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
pub use apply::{Applied, Writes};
pub use catalog::Catalog;

use crate::store::facts::load_many;

/// How an evaluation pass runs: its instant, the reason its messages carry, how it writes.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    /// The instant rules are evaluated at.
    pub now: DateTime<Utc>,
    /// `event`, `time`, `recompute`, ... (published with memberships).
    pub reason: &'a str,
    /// Statements for a few rows, `COPY` for many.
    pub writes: Writes,
}

/// Loads `ids` (locking their rows), evaluates them after `change` in `pass`, and writes and
/// publishes what changed, in the caller's transaction.
pub async fn evaluate_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &TenantModel,
    ids: &[Uuid],
    change: &Change,
    pass: Pass<'_>,
) -> Result<Applied, sqlx::Error> {
    let outcomes = evaluate_only(conn, tenant, model, ids, change, pass.now, pass.reason).await?;
    apply::apply(conn, tenant, model, &outcomes, pass.now, pass.writes).await
}

/// One customer's evaluation, what was stored before it, and the reason its messages carry.
pub type Evaluated<'a> = (evaluate::Outcome, crate::domain::facts::Stored, &'a str);

/// The first half of [`evaluate_many`]: loads `ids` (locking their rows until the caller's
/// transaction ends) and evaluates them, writing nothing. [`apply::apply`] writes the result,
/// in the same transaction; a recompute evaluates its next chunk on another connection while
/// this one writes.
pub async fn evaluate_only<'a>(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &TenantModel,
    ids: &[Uuid],
    change: &Change,
    now: DateTime<Utc>,
    reason: &'a str,
) -> Result<Vec<Evaluated<'a>>, sqlx::Error> {
    let mut facts = load_many(conn, tenant, ids, model, now, true).await?;
    Ok(facts
        .iter_mut()
        .map(|f| {
            let stored = f.stored;
            (
                evaluate::evaluate_customer(model, f, change, now),
                stored,
                reason,
            )
        })
        .collect())
}

/// What happened to one customer of a poll: its changes together, and the reason published
/// with its memberships (the last message's).
#[derive(Debug, Clone)]
pub struct Touched {
    /// What changed.
    pub change: Change,
    /// `event`, `interaction`, `traits` or `tier`.
    pub reason: &'static str,
}

/// [`evaluate_many`] for customers that each had their own changes (a poll's worth): one
/// load, one evaluation each, one set of writes.
pub async fn evaluate_each(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &TenantModel,
    touched: &std::collections::BTreeMap<Uuid, Touched>,
    now: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let ids: Vec<Uuid> = touched.keys().copied().collect();
    let mut facts = load_many(conn, tenant, &ids, model, now, true).await?;
    let outcomes: Vec<_> = facts
        .iter_mut()
        .filter_map(|f| {
            let t = touched.get(&f.customer_id)?;
            let stored = f.stored;
            Some((
                evaluate::evaluate_customer(model, f, &t.change, now),
                stored,
                t.reason,
            ))
        })
        .collect();
    apply::apply(conn, tenant, model, &outcomes, now, Writes::Statements).await
}
