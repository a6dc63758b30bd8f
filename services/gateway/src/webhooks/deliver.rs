//! The delivery loop: claims due deliveries (`FOR UPDATE SKIP LOCKED`, so every gateway
//! replica takes a share and none takes the same one), posts each signed per Standard
//! Webhooks through the SSRF guard, and records the attempt: delivered on 2xx, retried on the
//! schedule otherwise, the endpoint disabled on 410 or once it has failed for longer than the
//! deployment allows. A replica killed mid-attempt leaves the delivery due again when its lease
//! ends; the `webhook-id` is the same on every attempt, so a receiver that got it drops it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_telemetry::Metrics;
use crm_webhooks::call::{call_cached, Call};
use crm_webhooks::guard::ClientCache;
use crm_webhooks::signing::{after_attempt_on, AfterAttempt, Secret};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::domain;
use super::store::{self, AttemptRecord, Due, Outcome};
use super::Settings;

/// How long a claimed delivery is held before another replica may try it: longer than an
/// attempt can take.
fn lease(settings: &Settings) -> Duration {
    settings.timeout * 2 + Duration::from_secs(5)
}

/// Runs until `shutdown`, finishing the attempts in hand.
pub(crate) async fn run(
    pool: PgPool,
    settings: Settings,
    queued: Arc<Notify>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let guard = settings.guard();
    let clients = ClientCache::default();
    let batch = i64::try_from(settings.concurrency * 4).unwrap_or(64);
    while !shutdown.is_cancelled() {
        match store::claim(&pool, batch, lease(&settings)).await {
            Ok(due) if !due.is_empty() => {
                // Attempts run `concurrency` at a time; those finished are recorded together,
                // one transaction for each handful, while the next attempts go on.
                futures::stream::iter(due)
                    .map(|d| attempt(&settings, (&guard, &clients), &metrics, d))
                    .buffer_unordered(settings.concurrency)
                    .ready_chunks(settings.concurrency)
                    .for_each_concurrent(4, |done| record(&pool, &settings, done))
                    .await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = queued.notified() => {}
            () = tokio::time::sleep(settings.tick) => {}
        }
    }
}

/// Records finished attempts. A failure to record leaves the deliveries claimed until their
/// lease runs out; then they are tried again: at least once, never lost.
async fn record(pool: &PgPool, settings: &Settings, done: Vec<(Due, AttemptRecord)>) {
    match store::record(pool, &done, settings.disable_after).await {
        Ok(disabled) => {
            for (tenant, endpoint) in disabled {
                tracing::warn!(%tenant, %endpoint, "webhook endpoint disabled (410 Gone, or failing for too long)");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, attempts = done.len(), "recording webhook attempts failed")
        }
    }
}

/// One attempt of one delivery.
async fn attempt(
    settings: &Settings,
    (guard, clients): (&crm_webhooks::guard::Guard, &ClientCache),
    metrics: &Metrics,
    due: Due,
) -> (Due, AttemptRecord) {
    let secrets: Vec<Secret> = std::iter::once(&due.secret)
        .chain(due.previous_secret.as_ref())
        .filter_map(|s| Secret::parse(s).ok())
        .collect();
    let id = domain::message_id(due.id);
    let started = Instant::now();
    let answer = call_cached(
        guard,
        clients,
        &Call {
            url: &due.url,
            secrets: &secrets,
            id: &id,
            body: due.payload.as_bytes(),
        },
    )
    .await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (status, error) = match answer {
        Ok(a) => (a.status, a.error),
        Err(refused) => (None, Some(format!("refused by the SSRF guard: {refused}"))),
    };
    let round = usize::try_from(due.round_attempts).unwrap_or(1);
    let outcome = match after_attempt_on(&settings.retry_schedule, status, round) {
        AfterAttempt::Delivered => Outcome::Delivered,
        AfterAttempt::Retry(d) => Outcome::Retry(d),
        AfterAttempt::Failed => Outcome::Failed,
        AfterAttempt::Disable => Outcome::Gone,
    };
    let label = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry(_) => "retry",
        Outcome::Failed => "failed",
        Outcome::Gone => "disabled",
    };
    metrics.webhook_attempts.with_label_values(&[label]).inc();
    let record = AttemptRecord {
        status,
        error,
        duration_ms,
        outcome,
    };
    (due, record)
}
