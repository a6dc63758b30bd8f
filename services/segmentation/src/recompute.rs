//! Full recompute: every customer of a tenant evaluated against some or all segments, in
//! chunks, with the same loading and evaluation as the stream (so both give the same
//! memberships), writing and publishing only what changed. Also the preview of an unsaved rule.
//!
//! At scale a recompute is a persistent job ([`JOB`], run by [`run_job`]): each chunk commits
//! its memberships (`COPY`, see [`Writes::Copy`]), its messages (packed into a few outbox
//! rows) and the job's progress (the last customer done, counts, rate and time left) in one
//! transaction, so a job taken over after a restart goes on from the last committed chunk,
//! neither skipping nor repeating one. While a chunk is written, the next is read and evaluated
//! in a transaction of its own on a second connection; the chunks still commit one after
//! another, in order.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::rules::{evaluate, Context, Dependencies, Rule};
use crate::engine::apply::apply;
use crate::engine::{evaluate_only, Applied, Catalog, Change, Evaluated, Writes};
use crate::store::facts::load_many;

/// Customers per chunk (one transaction each).
pub const CHUNK: usize = 5_000;

/// The kind of job that recomputes segments of a tenant ([`run_job`]).
pub const JOB: &str = "segment_recompute";

/// Ids of the tenant's customers after `after`, in id order.
async fn next_ids(
    conn: &mut PgConnection,
    tenant: &TenantId,
    after: Uuid,
    limit: usize,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT customer_id FROM customer_activity WHERE tenant_id = $1 AND customer_id > $2
         ORDER BY customer_id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A chunk read and evaluated in its own transaction (its customers' rows locked), not yet
/// written.
struct EvaluatedChunk {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    last: Uuid,
    model: std::sync::Arc<crate::engine::TenantModel>,
    outcomes: Vec<Evaluated<'static>>,
    now: DateTime<Utc>,
}

impl EvaluatedChunk {
    /// Writes the chunk's memberships (`COPY`) and messages in its transaction.
    async fn write(&mut self, tenant: &TenantId) -> Result<Applied, sqlx::Error> {
        apply(
            &mut self.tx,
            tenant,
            &self.model,
            &self.outcomes,
            self.now,
            Writes::Copy,
        )
        .await
    }
}

/// Opens a transaction, reads the next chunk of customers after `after` and evaluates it
/// after `change` at `now`; `None` when no customer is left.
async fn evaluate_chunk(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    change: &Change,
    after: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<EvaluatedChunk>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids = next_ids(&mut tx, tenant, after, CHUNK).await?;
    let Some(last) = ids.last().copied() else {
        return Ok(None);
    };
    let model = catalog.get(&mut tx, tenant).await?;
    let outcomes = evaluate_only(&mut tx, tenant, &model, &ids, change, now, "recompute").await?;
    Ok(Some(EvaluatedChunk {
        tx,
        last,
        model,
        outcomes,
        now,
    }))
}

/// Re-evaluates `segments` (all when `None`) for every customer of `tenant` at `now`, here and
/// now (the scoring run and tests call it; the API queues a [`JOB`]).
pub async fn recompute(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    segments: Option<BTreeSet<Uuid>>,
    now: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let change = segments.map_or(Change::All, Change::Segments);
    run_chunks(pool, catalog, tenant, &change, Uuid::nil(), Some(now), None).await
}

/// A job's side of [`run_chunks`]: its progress, committed with each chunk, and the relay to
/// wake after each.
struct Tracked<'a> {
    id: i64,
    progress: &'a mut Progress,
    started: Instant,
    done_here: u64,
    relay: &'a tokio::sync::Notify,
}

impl Tracked<'_> {
    /// Counts a chunk that ends at `last` and writes the progress in its transaction.
    async fn record(
        &mut self,
        tx: &mut PgConnection,
        last: Uuid,
        applied: Applied,
    ) -> Result<(), sqlx::Error> {
        self.done_here += applied.customers;
        let seconds = self.started.elapsed().as_secs_f64();
        self.progress
            .after_chunk(last, applied, self.done_here, seconds);
        let value =
            serde_json::to_value(&*self.progress).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        crm_service::jobs::report_progress_in(tx, self.id, &value).await
    }
}

/// Recomputes the customers after `after`, chunk by chunk. Each chunk is written and committed
/// while the next one is read and evaluated on a second connection: PostgreSQL writes one
/// while this part evaluates the other. The chunks hold disjoint customers and commit in
/// order, each with the job's progress when there is a job. Rules are evaluated at `at`, or
/// when each chunk is read.
async fn run_chunks(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    change: &Change,
    after: Uuid,
    at: Option<DateTime<Utc>>,
    mut job: Option<Tracked<'_>>,
) -> Result<Applied, sqlx::Error> {
    let now = || at.unwrap_or_else(Utc::now);
    let mut total = Applied::default();
    let mut next = evaluate_chunk(pool, catalog, tenant, change, after, now()).await?;
    while let Some(mut chunk) = next {
        let last = chunk.last;
        let write = async {
            let applied = chunk.write(tenant).await?;
            if let Some(job) = job.as_mut() {
                job.record(&mut chunk.tx, last, applied).await?;
            }
            chunk.tx.commit().await?;
            Ok::<_, sqlx::Error>(applied)
        };
        let (written, evaluated) = tokio::join!(
            write,
            evaluate_chunk(pool, catalog, tenant, change, last, now())
        );
        total += written?;
        if let Some(job) = &job {
            job.relay.notify_one();
        }
        next = evaluated?;
    }
    Ok(total)
}

/// What a recompute job asks for: the segments (every one when absent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobParams {
    /// The segments to recompute; absent for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<BTreeSet<Uuid>>,
}

/// A recompute job's progress, committed with each chunk.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// The last customer done (customers are taken in id order); where a takeover resumes.
    pub after: Uuid,
    /// Customers done.
    pub done: u64,
    /// Customers of the tenant when the job started.
    pub of: u64,
    /// Segment entries so far.
    pub entered: u64,
    /// Segment exits so far.
    pub exited: u64,
    /// Stage changes so far.
    pub stage_changes: u64,
    /// Customers per second over this attempt.
    pub rate_per_s: f64,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
}

impl Progress {
    /// Counts after one more chunk, with the rate over `done_here` customers in `seconds`.
    fn after_chunk(&mut self, last: Uuid, applied: Applied, done_here: u64, seconds: f64) {
        self.after = last;
        self.done += applied.customers;
        self.of = self.of.max(self.done);
        self.entered += applied.entered;
        self.exited += applied.exited;
        self.stage_changes += applied.stage_changes;
        if seconds > 0.0 {
            self.rate_per_s = (done_here as f64 / seconds).round();
        }
        self.eta_s = (self.rate_per_s > 0.0)
            .then(|| ((self.of - self.done) as f64 / self.rate_per_s).round());
    }
}

/// Queues a recompute of `segments` (all when `None`) for `tenant` in the caller's
/// transaction; the job's id.
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant: &TenantId,
    segments: Option<BTreeSet<Uuid>>,
) -> Result<i64, sqlx::Error> {
    let params = serde_json::to_value(JobParams { segments })
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    crm_service::jobs::enqueue_in(conn, tenant, JOB, &params).await
}

/// Runs a [`JOB`]: from the progress a previous attempt committed, chunk after chunk
/// ([`run_chunks`]), each with its progress in its transaction; wakes the relay after each.
/// The result is the totals.
pub async fn run_job(
    pool: &PgPool,
    catalog: &Catalog,
    relay: &tokio::sync::Notify,
    job: &crm_service::jobs::Claimed,
) -> Result<serde_json::Value, String> {
    let failed = |e: sqlx::Error| format!("the recompute failed: {e}");
    let params: JobParams = serde_json::from_value(job.params.clone())
        .map_err(|e| format!("the job's parameters do not read: {e}"))?;
    let change = params.segments.map_or(Change::All, Change::Segments);
    let stored = crm_service::jobs::get(pool, &job.tenant, job.id)
        .await
        .map_err(failed)?
        .and_then(|j| j.progress)
        .and_then(|p| serde_json::from_value::<Progress>(p.0).ok());
    let resumed = stored.is_some();
    let mut progress = match stored {
        Some(p) => p,
        None => {
            let of: i64 =
                sqlx::query_scalar("SELECT count(*) FROM customer_activity WHERE tenant_id = $1")
                    .bind(&job.tenant)
                    .fetch_one(pool)
                    .await
                    .map_err(failed)?;
            Progress {
                of: u64::try_from(of).unwrap_or(0),
                ..Progress::default()
            }
        }
    };
    if resumed {
        tracing::info!(
            job = job.id,
            done = progress.done,
            of = progress.of,
            "recompute resumed"
        );
    }
    let started = Instant::now();
    let tracked = Tracked {
        id: job.id,
        progress: &mut progress,
        started,
        done_here: 0,
        relay,
    };
    let after = tracked.progress.after;
    run_chunks(
        pool,
        catalog,
        &job.tenant,
        &change,
        after,
        None,
        Some(tracked),
    )
    .await
    .map_err(failed)?;
    let applied = Applied {
        customers: progress.done,
        entered: progress.entered,
        exited: progress.exited,
        stage_changes: progress.stage_changes,
    };
    tracing::info!(
        job = job.id,
        customers = applied.customers,
        entered = applied.entered,
        exited = applied.exited,
        seconds = started.elapsed().as_secs(),
        "recompute done"
    );
    serde_json::to_value(applied).map_err(|e| e.to_string())
}

/// The size of an unsaved rule's audience and a sample of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Customers matching now.
    pub size: u64,
    /// Customers evaluated.
    pub customers: u64,
    /// Up to `sample` matching customer ids, in id order.
    pub sample: Vec<Uuid>,
}

/// Evaluates `rule` over every customer of `tenant` without saving anything.
pub async fn preview(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    rule: &Rule,
    sample: usize,
    now: DateTime<Utc>,
) -> Result<Preview, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut model = (*catalog.get(&mut conn, tenant).await?).clone();
    let deps = Dependencies::of(rule);
    model.event_names.extend(deps.event_names.iter().cloned());
    model
        .event_names
        .extend(deps.windows.sliding.keys().cloned());
    let ctx = Context {
        now,
        thresholds: &model.settings.lifecycle,
        lead: &model.settings.lead_scoring,
    };
    let mut out = Preview {
        size: 0,
        customers: 0,
        sample: Vec::new(),
    };
    let mut after = Uuid::nil();
    loop {
        let ids = next_ids(&mut conn, tenant, after, CHUNK).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        after = last;
        for facts in load_many(&mut conn, tenant, &ids, &model, now, false).await? {
            out.customers += 1;
            if evaluate(rule, &facts, &ctx) {
                out.size += 1;
                if out.sample.len() < sample {
                    out.sample.push(facts.customer_id);
                }
            }
        }
    }
    Ok(out)
}
