//! The sales reports: a pipeline by stage (count, amount, weighted amount), its win rate and
//! cycle time per owner, the forecast by month of expected close, and lead conversion by source
//! and campaign. Amounts are summed per currency (never added across currencies).
//!
//! A pipeline's report reads the summary tables statement triggers keep (migration
//! `20261206000002_sales_report_totals.sql`): the totals plus the deltas not folded in yet,
//! which [`compact`] folds. Closed results come from whole UTC days of the totals, and from the
//! opportunities themselves for the period's partial first and last days. Every query of a
//! report reads one snapshot.

use chrono::{DateTime, NaiveDate, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

pub use crate::domain::pipeline::results::OwnerResult;
use crate::domain::pipeline::results::{self, ClosedCount};

/// One stage's open opportunities in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct StageTotal {
    /// The stage's key.
    pub stage: String,
    /// The currency.
    pub currency: String,
    /// Opportunities.
    pub count: i64,
    /// Their amounts.
    pub amount: f64,
    /// Their amounts times their probabilities.
    pub weighted: f64,
}

/// Open opportunities expected to close in one month, in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ForecastMonth {
    /// The month's first day (absent: no expected close date).
    pub month: Option<NaiveDate>,
    /// The currency.
    pub currency: String,
    /// Opportunities.
    pub count: i64,
    /// Their amounts.
    pub amount: f64,
    /// Their amounts times their probabilities.
    pub weighted: f64,
}

/// A pipeline's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineReport {
    /// The pipeline.
    pub pipeline_id: Uuid,
    /// Open opportunities per stage (in the pipeline's order) and currency.
    pub stages: Vec<StageTotal>,
    /// Opportunities closed in the period, per owner, and all together (owner absent, last).
    pub results: Vec<OwnerResult>,
    /// Open opportunities by month of expected close.
    pub forecast: Vec<ForecastMonth>,
    /// The period of `results`: closed from (inclusive) …
    pub from: DateTime<Utc>,
    /// … to (exclusive).
    pub to: DateTime<Utc>,
}

/// The report of `pipeline` (whose stage keys are `order`, first to last), closed results
/// from `from` to `to`.
pub async fn pipeline(
    conn: &mut PgConnection,
    tenant: &TenantId,
    pipeline: Uuid,
    order: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<PipelineReport, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let stages: Vec<StageTotal> = sqlx::query_as(
        "SELECT stage, currency, sum(count)::int8 AS count, sum(amount)::float8 AS amount,
             sum(weighted)::float8 AS weighted
         FROM (SELECT stage, currency, count, amount, weighted FROM opportunity_open_totals
               WHERE tenant_id = $1 AND pipeline_id = $2
               UNION ALL
               SELECT stage, currency, count, amount, weighted FROM opportunity_open_deltas
               WHERE tenant_id = $1 AND pipeline_id = $2) t
         GROUP BY stage, currency HAVING sum(count) <> 0
         ORDER BY array_position($3::text[], stage), currency",
    )
    .bind(tenant)
    .bind(pipeline)
    .bind(order)
    .fetch_all(&mut *tx)
    .await?;
    let forecast: Vec<ForecastMonth> = sqlx::query_as(
        "SELECT month, currency, sum(count)::int8 AS count, sum(amount)::float8 AS amount,
             sum(weighted)::float8 AS weighted
         FROM (SELECT month, currency, count, amount, weighted FROM opportunity_open_totals
               WHERE tenant_id = $1 AND pipeline_id = $2
               UNION ALL
               SELECT month, currency, count, amount, weighted FROM opportunity_open_deltas
               WHERE tenant_id = $1 AND pipeline_id = $2) t
         GROUP BY month, currency HAVING sum(count) <> 0 ORDER BY month NULLS LAST, currency",
    )
    .bind(tenant)
    .bind(pipeline)
    .fetch_all(&mut *tx)
    .await?;
    // Whole UTC days inside the period come from the totals; the partial days before and
    // after them from the rows (two index ranges).
    let (days_from, days_to) = whole_days(from, to);
    let (head_end, tail_start) = (to.min(midnight(days_from)), from.max(midnight(days_to)));
    let closed: Vec<(Option<String>, String, i32, i64, f64)> = sqlx::query_as(
        "SELECT owner, status, cycle_day, sum(count)::int8, sum(cycle)::float8
         FROM (SELECT owner, status, cycle_day, count, cycle FROM opportunity_closed_totals
               WHERE tenant_id = $1 AND pipeline_id = $2 AND day >= $5 AND day < $6
               UNION ALL
               SELECT owner, status, cycle_day, count, cycle FROM opportunity_closed_deltas
               WHERE tenant_id = $1 AND pipeline_id = $2 AND day >= $5 AND day < $6
               UNION ALL
               SELECT owner, status, floor(extract(epoch FROM closed_at - created_at) / 86400)::int,
                      1, extract(epoch FROM closed_at - created_at)
               FROM opportunities
               WHERE tenant_id = $1 AND pipeline_id = $2 AND status IN ('won', 'lost')
               AND closed_at >= $3 AND closed_at < $7
               UNION ALL
               SELECT owner, status, floor(extract(epoch FROM closed_at - created_at) / 86400)::int,
                      1, extract(epoch FROM closed_at - created_at)
               FROM opportunities
               WHERE tenant_id = $1 AND pipeline_id = $2 AND status IN ('won', 'lost')
               AND closed_at >= $8 AND closed_at < $4) t
         GROUP BY owner, status, cycle_day",
    )
    .bind(tenant)
    .bind(pipeline)
    .bind(from)
    .bind(to)
    .bind(days_from)
    .bind(days_to)
    .bind(head_end)
    .bind(tail_start)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let closed: Vec<ClosedCount> = closed
        .into_iter()
        .map(
            |(owner, status, cycle_day, count, cycle_seconds)| ClosedCount {
                owner,
                won: status == "won",
                cycle_day,
                count,
                cycle_seconds,
            },
        )
        .collect();
    Ok(PipelineReport {
        pipeline_id: pipeline,
        stages,
        results: results::results(&closed),
        forecast,
        from,
        to,
    })
}

/// The start of `day`, UTC.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The whole UTC days within `[from, to)`, as `[first, end)` (empty when there is none).
fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let first = if midnight(from.date_naive()) == from {
        from.date_naive()
    } else {
        from.date_naive().succ_opt().unwrap_or(NaiveDate::MAX)
    };
    let end = to.date_naive();
    (first, end.max(first))
}

/// Folds up to `batch` of the oldest deltas into the totals and drops totals that came to
/// nothing; how many deltas were folded. One replica folds at a time (the others skip the
/// round): the totals are only ever written here, so no two writers wait on each other.
pub async fn compact(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mine: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('opportunity_report_compact'))",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !mine {
        return Ok(0);
    }
    let open: i64 = sqlx::query_scalar(
        "WITH moved AS (
             DELETE FROM opportunity_open_deltas WHERE seq IN (
                 SELECT seq FROM opportunity_open_deltas ORDER BY seq LIMIT $1)
             RETURNING *),
         folded AS (
             INSERT INTO opportunity_open_totals AS t
                 (tenant_id, pipeline_id, stage, currency, month, count, amount, weighted)
             SELECT tenant_id, pipeline_id, stage, currency, month, sum(count), sum(amount),
                    sum(weighted)
             FROM moved GROUP BY tenant_id, pipeline_id, stage, currency, month
             ON CONFLICT (tenant_id, pipeline_id, stage, currency, month) DO UPDATE
             SET count = t.count + EXCLUDED.count, amount = t.amount + EXCLUDED.amount,
                 weighted = t.weighted + EXCLUDED.weighted
             RETURNING 1)
         SELECT count(*) FROM moved",
    )
    .bind(batch)
    .fetch_one(&mut *tx)
    .await?;
    let closed: i64 = sqlx::query_scalar(
        "WITH moved AS (
             DELETE FROM opportunity_closed_deltas WHERE seq IN (
                 SELECT seq FROM opportunity_closed_deltas ORDER BY seq LIMIT $1)
             RETURNING *),
         folded AS (
             INSERT INTO opportunity_closed_totals AS t
                 (tenant_id, pipeline_id, owner, day, status, cycle_day, count, cycle)
             SELECT tenant_id, pipeline_id, owner, day, status, cycle_day, sum(count), sum(cycle)
             FROM moved GROUP BY tenant_id, pipeline_id, owner, day, status, cycle_day
             ON CONFLICT (tenant_id, pipeline_id, owner, day, status, cycle_day) DO UPDATE
             SET count = t.count + EXCLUDED.count, cycle = t.cycle + EXCLUDED.cycle
             RETURNING 1)
         SELECT count(*) FROM moved",
    )
    .bind(batch)
    .fetch_one(&mut *tx)
    .await?;
    if open + closed > 0 {
        sqlx::query(
            "DELETE FROM opportunity_open_totals WHERE count = 0 AND amount = 0 AND weighted = 0",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM opportunity_closed_totals WHERE count = 0 AND cycle = 0")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(u64::try_from(open + closed).unwrap_or(0))
}

/// Leads of one source and campaign created in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ConversionRow {
    /// The source.
    pub source: String,
    /// The campaign (absent: none).
    pub campaign: Option<String>,
    /// Leads created.
    pub leads: i64,
    /// Of them, converted.
    pub converted: i64,
    /// Of them, disqualified.
    pub disqualified: i64,
    /// Of them, still open.
    pub open: i64,
    /// `converted / leads`.
    pub conversion_rate: f64,
}

/// Lead conversion by source and campaign, for leads created from `from` to `to`.
pub async fn conversion(
    conn: &mut PgConnection,
    tenant: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT source, campaign, count(*) AS leads,
             count(*) FILTER (WHERE status = 'converted') AS converted,
             count(*) FILTER (WHERE status = 'disqualified') AS disqualified,
             count(*) FILTER (WHERE status NOT IN ('converted', 'disqualified')) AS open,
             (count(*) FILTER (WHERE status = 'converted'))::float8 / count(*) AS conversion_rate
         FROM leads WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY source, campaign ORDER BY source, campaign NULLS FIRST",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    proptest! {
        /// The partial head, the whole days and the partial tail split the period exactly:
        /// every instant of `[from, to)` lies in one of them, none outside.
        #[test]
        fn the_period_splits_into_a_head_whole_days_and_a_tail(
            start in 0i64..400 * 86_400, length in 1i64..40 * 86_400, probe in 0.0f64..1.0
        ) {
            let from = Utc.timestamp_opt(1_780_000_000 + start, 0).unwrap();
            let to = from + Duration::seconds(length);
            let (days_from, days_to) = whole_days(from, to);
            let (head_end, tail_start) = (to.min(midnight(days_from)), from.max(midnight(days_to)));
            prop_assert!(days_from <= days_to);
            let at = from + Duration::seconds((length as f64 * probe) as i64);
            let in_head = at >= from && at < head_end;
            let day = at.date_naive();
            let in_days = day >= days_from && day < days_to;
            let in_tail = at >= tail_start && at < to;
            prop_assert_eq!(u8::from(in_head) + u8::from(in_days) + u8::from(in_tail), 1,
                "{} in [{}, {}): head to {}, days {}..{}, tail from {}",
                at, from, to, head_end, days_from, days_to, tail_start);
            // Whole days lie inside the period.
            prop_assert!(days_from == days_to || (midnight(days_from) >= from && midnight(days_to) <= to));
        }
    }

    #[test]
    fn a_period_from_midnight_to_midnight_is_whole_days() {
        let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        let (a, b) = whole_days(from, to);
        assert_eq!((a, b), (from.date_naive(), to.date_naive()));
        assert_eq!((to.min(midnight(a)), from.max(midnight(b))), (from, to));
    }
}
