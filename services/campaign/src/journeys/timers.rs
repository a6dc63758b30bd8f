//! The timer loop: claims due timers (`FOR UPDATE SKIP LOCKED`, so replicas share them and a
//! claim lost in a crash comes back) and runs each instance on from the timer's node, in the
//! claiming transaction, with the step's messages and events. Several workers per replica run
//! the loop at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{end, Produced, Runner};
use crate::domain::journeys::lifecycle::Status;
use crate::store::contacts::{self, Reach};
use crate::store::instances::{self, DueTimer, Live};

/// How long a paused journey's timers wait before they are looked at again.
const PAUSED_RETRY: i64 = 5;

/// Fires up to `limit` due timers in one transaction; how many fired, and whether messages
/// were queued.
pub async fn fire_due(
    pool: &PgPool,
    runner: &Runner,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<(usize, bool), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due = instances::claim_due(&mut tx, now, limit).await?;
    // The batch's instances and customers, each read once.
    let keys: Vec<(TenantId, Uuid)> = due.iter().map(|t| (t.tenant.clone(), t.instance)).collect();
    let live: HashMap<(TenantId, Uuid), Live> = instances::live_many(&mut tx, &keys)
        .await?
        .into_iter()
        .map(|(t, l)| ((t, l.id), l))
        .collect();
    let customers: Vec<(TenantId, Uuid)> = live
        .iter()
        .map(|((t, _), l)| (t.clone(), l.customer_id))
        .collect();
    let reach = contacts::reach_many(&mut tx, &customers).await?;
    // In (tenant, customer) order: the send gate's per-customer cap locks are taken in one
    // order by every transaction (see send_gate).
    let mut batch: Vec<(&DueTimer, &Live)> = due
        .iter()
        .filter_map(|t| Some((t, live.get(&(t.tenant.clone(), t.instance))?)))
        .collect();
    batch.sort_by(|(a, la), (b, lb)| {
        (a.tenant.as_str(), la.customer_id, la.id).cmp(&(b.tenant.as_str(), lb.customer_id, lb.id))
    });
    let mut produced = Produced::default();
    for (timer, l) in batch {
        let r = reach
            .get(&(timer.tenant.clone(), l.customer_id))
            .cloned()
            .unwrap_or_default();
        produced.add(fire(&mut tx, runner, timer, l, &r, now).await?);
    }
    outbox::enqueue_all(&mut tx, &produced.out).await?;
    tx.commit().await?;
    Ok((due.len(), produced.queued))
}

async fn fire(
    conn: &mut sqlx::PgConnection,
    runner: &Runner,
    timer: &DueTimer,
    live: &Live,
    reach: &Reach,
    now: DateTime<Utc>,
) -> Result<Produced, sqlx::Error> {
    let tenant = &timer.tenant;
    match runner.recent.status(conn, tenant, live.journey_id).await? {
        Some(Status::Published) => {}
        Some(Status::Paused) => {
            let later = now + Duration::minutes(PAUSED_RETRY);
            instances::schedule(conn, tenant, live.id, later, &timer.node).await?;
            return Ok(Produced::default());
        }
        _ => return end(conn, tenant, live, "archived", now).await,
    }
    let Some(journey) = runner
        .definition(conn, tenant, live.journey_id, live.version)
        .await?
    else {
        return end(conn, tenant, live, "definition_missing", now).await;
    };
    // The instance stands at the timer's node (a `wait_for` there must see its signals).
    instances::move_to(conn, tenant, live.id, &timer.node, None).await?;
    runner
        .run(conn, tenant, live, &journey, timer.node.clone(), reach, now)
        .await
}

/// Runs `workers` timer loops until `shutdown`: each fires batches of `batch` while timers are
/// due, then sleeps up to `idle` (or until woken). `relay` and `sends` are woken after a batch
/// that published events or queued messages.
pub async fn run(
    pool: PgPool,
    runner: Runner,
    relay: Arc<Notify>,
    sends: Arc<Notify>,
    idle: StdDuration,
    batch: i64,
    shutdown: CancellationToken,
) {
    loop {
        let fired = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = fire_due(&pool, &runner, Utc::now(), batch) => r,
        };
        match fired {
            Ok((n, queued)) => {
                if n > 0 {
                    relay.notify_one();
                }
                if queued {
                    sends.notify_one();
                }
                if n as i64 >= batch {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "firing journey timers failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
