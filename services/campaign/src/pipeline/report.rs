//! The pass that keeps the sales report's summary tables small: it folds the deltas each
//! statement on opportunities appends into the totals, in batches, while there are any, then
//! looks again after `idle`. Replicas take turns (`store::sales_report::compact`).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::sales_report;

/// Deltas folded per transaction.
pub const BATCH: i64 = 50_000;

/// Folds deltas until `shutdown`.
pub async fn run_compact(pool: PgPool, idle: Duration, shutdown: CancellationToken) {
    loop {
        let done = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sales_report::compact(&pool, BATCH) => r,
        };
        match done {
            Ok(n) if i64::try_from(n).unwrap_or(0) >= BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "folding the sales report's deltas failed; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
