//! Scoring runs per tenant, on a schedule or on demand: RFM quintiles and groups over every
//! customer who ordered, and the customer-value models fitted by maximum likelihood with each
//! customer's predictions. Segments that read RFM or value are then recomputed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::enqueue_all;
use serde::Serialize;
use serde_json::json;
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::facts::ORDER_COMPLETED;
use crate::domain::rfm;
use crate::domain::rfm::RfmInput;
use crate::domain::value::{summarise, Transaction, ValueModel};
use crate::engine::apply::message;
use crate::engine::{Applied, Catalog};
use crate::recompute::recompute;

/// The kind of job that runs [`run`] for a tenant on demand.
pub const JOB: &str = "scoring_run";

/// Runs the job `job` (a [`JOB`] for its tenant) and wakes the relay for its messages; the
/// summary is the job's result.
pub async fn run_job(
    pool: &PgPool,
    catalog: &Catalog,
    relay: &tokio::sync::Notify,
    job: &crm_service::jobs::Claimed,
) -> Result<serde_json::Value, String> {
    let summary = run(pool, catalog, &job.tenant, "api", Utc::now())
        .await
        .map_err(|e| format!("the scoring run failed: {e}"))?;
    relay.notify_one();
    serde_json::to_value(summary).map_err(|e| e.to_string())
}

/// What a run did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: i64,
    /// Customers with at least one order, scored.
    pub customers: u64,
    /// Customers whose RFM group changed (each published as `rfm.changed`).
    pub rfm_group_changes: u64,
    /// The fitted models, when the tenant has enough repeat buyers.
    #[schema(value_type = Option<Object>)]
    pub value_model: Option<ValueModel>,
    /// What the recompute of RFM and value segments changed.
    #[schema(value_type = Object)]
    pub recomputed: Applied,
}

/// One customer's order days, up to today.
struct History {
    id: Uuid,
    days: BTreeMap<NaiveDate, f64>,
}

/// Scores every customer of `tenant` who ordered, at `now`.
pub async fn run(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<RunSummary, sqlx::Error> {
    let (run_id,): (i64,) = sqlx::query_as(
        "INSERT INTO scoring_runs (tenant_id, trigger, started_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(trigger)
    .bind(now)
    .fetch_one(pool)
    .await?;
    let result = score(pool, catalog, tenant, run_id, now).await;
    let (customers, changed, error) = match &result {
        Ok(s) => (
            Some(s.customers as i64),
            Some(s.rfm_group_changes as i64),
            None,
        ),
        Err(e) => (None, None, Some(e.to_string())),
    };
    sqlx::query("UPDATE scoring_runs SET finished_at = now(), customers = $2, changed = $3, error = $4 WHERE id = $1")
        .bind(run_id)
        .bind(customers)
        .bind(changed)
        .bind(error)
        .execute(pool)
        .await?;
    result
}

/// RFM scores, the value model (when there are enough repeat buyers) and each buyer's
/// predictions, from the order histories at `today`: pure CPU work.
fn compute(
    histories: &[History],
    today: NaiveDate,
    horizon_weeks: f64,
) -> (
    Vec<rfm::RfmScore>,
    Option<ValueModel>,
    BTreeMap<Uuid, crate::domain::value::Prediction>,
) {
    let inputs: Vec<RfmInput> = histories
        .iter()
        .map(|h| RfmInput {
            recency_days: h
                .days
                .keys()
                .next_back()
                .map_or(0.0, |d| (today - *d).num_days() as f64),
            frequency: h.days.len() as f64,
            monetary: h.days.values().sum(),
        })
        .collect();
    let scores = rfm::score(&inputs);

    let transactions: Vec<Transaction> = histories
        .iter()
        .flat_map(|h| {
            h.days.iter().map(|(d, amount)| Transaction {
                customer: h.id.to_string(),
                date: *d,
                quantity: 1.0,
                amount: *amount,
            })
        })
        .collect();
    let summaries = summarise(&transactions, today);
    let model = ValueModel::fit(&summaries);
    let predictions: BTreeMap<Uuid, crate::domain::value::Prediction> = match &model {
        Some(m) => summaries
            .iter()
            .filter_map(|s| Some((s.customer.parse().ok()?, m.predict(s, horizon_weeks))))
            .collect(),
        None => BTreeMap::new(),
    };
    (scores, model, predictions)
}

async fn score(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    run_id: i64,
    now: DateTime<Utc>,
) -> Result<RunSummary, sqlx::Error> {
    let today = now.date_naive();
    let rows: Vec<(Uuid, NaiveDate, f64)> = sqlx::query_as(
        "SELECT customer_id, day, total FROM daily_activity
         WHERE tenant_id = $1 AND name = $2 AND day <= $3 ORDER BY customer_id, day",
    )
    .bind(tenant.as_str())
    .bind(ORDER_COMPLETED)
    .bind(today)
    .fetch_all(pool)
    .await?;
    let mut histories: Vec<History> = Vec::new();
    for (id, day, total) in rows {
        match histories.last_mut() {
            Some(h) if h.id == id => *h.days.entry(day).or_default() += total,
            _ => histories.push(History {
                id,
                days: BTreeMap::from([(day, total)]),
            }),
        }
    }
    let mut conn = pool.acquire().await?;
    let settings = crate::store::settings::load(&mut conn, tenant).await?;
    drop(conn);
    // Quintiles and the maximum-likelihood fits are CPU work: off the async runtime's threads.
    let horizon_weeks = settings.horizon_weeks;
    let (histories, scores, model, predictions) = tokio::task::spawn_blocking(move || {
        let (scores, model, predictions) = compute(&histories, today, horizon_weeks);
        (histories, scores, model, predictions)
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(format!("the scoring computation failed: {e}")))?;

    let mut changes = 0u64;
    for (chunk_h, chunk_s) in histories.chunks(10_000).zip(scores.chunks(10_000)) {
        let ids: Vec<Uuid> = chunk_h.iter().map(|h| h.id).collect();
        let pick = |f: fn(&rfm::RfmScore) -> i16| chunk_s.iter().map(f).collect::<Vec<i16>>();
        let groups: Vec<&str> = chunk_s.iter().map(|s| s.group.as_str()).collect();
        let p = |f: fn(&crate::domain::value::Prediction) -> f64| {
            ids.iter()
                .map(|id| predictions.get(id).map(f))
                .collect::<Vec<Option<f64>>>()
        };
        let mut tx = pool.begin().await?;
        // Per customer: the new scores, whether the RFM group changed, and the value before
        // (to announce a predicted value that moved by a cent or more).
        #[allow(clippy::type_complexity)]
        let rows: Vec<(Uuid, i16, i16, i16, String, bool, bool, Option<f64>, Option<f64>, Option<f64>)> =
            sqlx::query_as(
            "WITH old AS (
                 SELECT customer_id, rfm_group, lifetime_value FROM customer_activity
                 WHERE tenant_id = $1 AND customer_id = ANY($2) ORDER BY customer_id FOR UPDATE),
             upd AS (
                 UPDATE customer_activity a SET rfm_r = x.r, rfm_f = x.f, rfm_m = x.m, rfm_group = x.g,
                     probability_alive = x.pa, expected_purchases = x.ep, lifetime_value = x.lv
                 FROM unnest($2::uuid[], $3::int2[], $4::int2[], $5::int2[], $6::text[], $7::float8[], $8::float8[], $9::float8[])
                      AS x(id, r, f, m, g, pa, ep, lv)
                 WHERE a.tenant_id = $1 AND a.customer_id = x.id
                 RETURNING a.customer_id, a.rfm_r, a.rfm_f, a.rfm_m, a.rfm_group,
                           a.probability_alive, a.expected_purchases, a.lifetime_value)
             SELECT upd.customer_id, upd.rfm_r, upd.rfm_f, upd.rfm_m, upd.rfm_group,
                    old.rfm_group IS DISTINCT FROM upd.rfm_group,
                    v.moved, upd.lifetime_value, upd.expected_purchases, upd.probability_alive
             FROM upd JOIN old USING (customer_id),
                  LATERAL (SELECT round(old.lifetime_value::numeric, 2)
                                  IS DISTINCT FROM round(upd.lifetime_value::numeric, 2) AS moved) v
             WHERE old.rfm_group IS DISTINCT FROM upd.rfm_group OR v.moved",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .bind(pick(|s| i16::from(s.r)))
        .bind(pick(|s| i16::from(s.f)))
        .bind(pick(|s| i16::from(s.m)))
        .bind(&groups)
        .bind(p(|x| x.probability_alive))
        .bind(p(|x| x.expected_purchases))
        .bind(p(|x| x.lifetime_value))
        .fetch_all(&mut *tx)
        .await?;
        let mut messages = Vec::new();
        for (id, r, f, m, g, group_changed, value_moved, value, purchases, alive) in rows {
            if group_changed {
                changes += 1;
                messages.push(message(
                    tenant,
                    "rfm.changed",
                    id,
                    json!({"r": r, "f": f, "m": m, "group": g, "run_id": run_id}),
                )?);
            }
            if let Some(v) = value.filter(|_| value_moved) {
                messages.push(message(
                    tenant,
                    "value.predicted",
                    id,
                    json!({"lifetime_value": v, "expected_purchases": purchases,
                           "probability_alive": alive, "run_id": run_id}),
                )?);
            }
        }
        enqueue_all(&mut tx, &messages).await?;
        tx.commit().await?;
    }
    if let Some(m) = &model {
        sqlx::query(
            "INSERT INTO value_models (tenant_id, model, customers, fitted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, customers = EXCLUDED.customers, fitted_at = EXCLUDED.fitted_at",
        )
        .bind(tenant.as_str())
        .bind(Json(m))
        .bind(histories.len() as i64)
        .bind(now)
        .execute(pool)
        .await?;
    }
    let mut conn = pool.acquire().await?;
    let tenant_model = catalog.get(&mut conn, tenant).await?;
    drop(conn);
    let reading: BTreeSet<Uuid> = tenant_model
        .segments
        .iter()
        .filter(|s| s.deps.rfm || s.deps.value)
        .map(|s| s.id)
        .collect();
    let recomputed = if reading.is_empty() {
        Applied::default()
    } else {
        recompute(pool, catalog, tenant, Some(reading), now).await?
    };
    Ok(RunSummary {
        run_id,
        customers: histories.len() as u64,
        rfm_group_changes: changes,
        value_model: model,
        recomputed,
    })
}
