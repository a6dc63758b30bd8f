//! Campaign's periodic work, leased in the database so that one replica runs each tick: the
//! pass that starts scheduled and date-trait journeys.

use std::sync::Arc;

use chrono::Utc;
use crm_service::schedule::{self, Schedule};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::journeys::{scheduled, Runner};

/// Runs the scheduled-journeys pass until `shutdown`.
pub async fn timed_journeys(
    pool: PgPool,
    runner: Runner,
    relay: Arc<Notify>,
    sends: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let tick = Schedule::every("campaign.timed_journeys", scheduled::every());
    schedule::run(pool.clone(), tick, shutdown, move || {
        let (pool, runner, relay, sends) =
            (pool.clone(), runner.clone(), relay.clone(), sends.clone());
        async move {
            let pass = scheduled::pass(&pool, &runner, Utc::now()).await?;
            if pass.entered > 0 {
                tracing::info!(
                    fired = pass.fired,
                    entered = pass.entered,
                    "timed journeys entered customers"
                );
                relay.notify_one();
            }
            if pass.queued {
                sends.notify_one();
            }
            Ok(())
        }
    })
    .await;
}
