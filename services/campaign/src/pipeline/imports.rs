//! Lead imports: a list of customers (by id, user id, anonymous id or email) to open leads
//! for, run as a persistent job (`lead_import`) so the call answers at once and a long list
//! shows its progress. Each row is its own transaction keyed by the job and the row
//! (`import:<job>:<row>`): a job taken over after a crash, or run again, opens nothing twice.
//! A row that cannot be opened (an unknown customer, a bad owner) is reported with its
//! reason; the others go in.

use chrono::Utc;
use crm_envelope::TenantId;
use crm_kafka::outbox;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::leads::{self, LeadError, LeadRequest};
use crate::domain::pipeline::leads::LeadSource;
use crate::store::offers::{self, CustomerRef};

/// The job's kind.
pub const JOB: &str = "lead_import";

/// Most rows in one import.
pub const MAX_ROWS: usize = 10_000;

/// Rows reported with their reason in the job's result (the counts cover every row).
pub const MAX_ERRORS: usize = 1_000;

/// One lead to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LeadImportRow)]
pub struct ImportRow {
    /// The customer: `{"id": …}`, `{"user_id": …}`, `{"anonymous_id": …}` or `{"email": …}`.
    pub customer: CustomerRef,
    /// The campaign it is attributed to (default: the import's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Its owner; absent: the tenant's assignment rules choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// An import: its rows (1 to 10,000) and the campaign rows default to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadImport {
    /// The campaign of rows that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The leads, in order (row numbers count from 0).
    pub leads: Vec<ImportRow>,
}

impl LeadImport {
    /// The first problem of the import as a whole, as (JSON pointer, what to fix); rows are
    /// checked one by one when the job runs.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.leads.is_empty() || self.leads.len() > MAX_ROWS {
            return Err((
                "/leads".into(),
                format!("1 to {MAX_ROWS} leads; split a longer list into several imports"),
            ));
        }
        Ok(())
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = LeadImportError)]
pub struct RowError {
    /// The row (from 0).
    pub row: usize,
    /// Stable code: `customer_not_found`, `invalid_lead`.
    pub code: String,
    /// What to fix.
    pub detail: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadImportResult {
    /// Rows read.
    pub rows: usize,
    /// Leads opened.
    pub opened: usize,
    /// Rows whose customer already had an open imported lead (or that an earlier run of this
    /// job opened).
    pub already_open: usize,
    /// Rows not imported.
    pub rejected: usize,
    /// The first 1,000 rows not imported, with their reasons.
    pub errors: Vec<RowError>,
}

enum Row {
    Opened,
    AlreadyOpen,
    Rejected(&'static str, String),
}

async fn import_row(
    pool: &PgPool,
    tenant: &TenantId,
    job: i64,
    index: usize,
    row: &ImportRow,
    campaign: Option<&String>,
) -> Result<Row, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some((customer_id, _)) = offers::profile(&mut tx, tenant, &row.customer).await? else {
        return Ok(Row::Rejected(
            "customer_not_found",
            "campaign knows no customer of this tenant by this identifier (import customers \
             first, through /v1/imports)"
                .into(),
        ));
    };
    let request = LeadRequest {
        customer_id,
        source: LeadSource::Import,
        campaign: row.campaign.clone().or_else(|| campaign.cloned()),
        owner: row.owner.clone(),
    };
    let origin = format!("import:{job}:{index}");
    let actor = format!("import:{job}");
    match leads::open(&mut tx, tenant, &request, Some(&origin), &actor, Utc::now()).await {
        Ok(Some(opened)) => {
            outbox::enqueue_all(&mut tx, &opened.out).await?;
            tx.commit().await?;
            Ok(if opened.created {
                Row::Opened
            } else {
                Row::AlreadyOpen
            })
        }
        Ok(None) => Ok(Row::Rejected(
            "invalid_lead",
            "the tenant's settings refused the lead".into(),
        )),
        Err(LeadError::Db(e)) => Err(e),
        Err(LeadError::Invalid(path, what)) => Ok(Row::Rejected(
            "invalid_lead",
            format!("/leads/{index}{path}: {what}"),
        )),
        Err(LeadError::UnknownCustomer) => Ok(Row::Rejected(
            "customer_not_found",
            "the customer was erased".into(),
        )),
        Err(other) => Ok(Row::Rejected("invalid_lead", other.to_string())),
    }
}

/// Runs import job `job` of `tenant` over `import`: every row in order, progress recorded
/// every 200 rows; what it did.
pub async fn run(
    pool: &PgPool,
    relay: &Notify,
    tenant: &TenantId,
    job: i64,
    import: &LeadImport,
) -> Result<LeadImportResult, sqlx::Error> {
    let mut result = LeadImportResult {
        rows: import.leads.len(),
        ..LeadImportResult::default()
    };
    for (index, row) in import.leads.iter().enumerate() {
        match import_row(pool, tenant, job, index, row, import.campaign.as_ref()).await? {
            Row::Opened => {
                result.opened += 1;
                relay.notify_one();
            }
            Row::AlreadyOpen => result.already_open += 1,
            Row::Rejected(code, detail) => {
                result.rejected += 1;
                if result.errors.len() < MAX_ERRORS {
                    result.errors.push(RowError {
                        row: index,
                        code: code.to_owned(),
                        detail,
                    });
                }
            }
        }
        let done = index + 1;
        if done % 200 == 0 && done < result.rows {
            let progress = json!({"rows_done": done, "rows": result.rows,
                                  "opened": result.opened, "rejected": result.rejected});
            crm_service::jobs::report_progress(pool, job, &progress).await?;
        }
    }
    Ok(result)
}

/// What an import job stores: the rows and the `Idempotency-Key` it was asked with.
#[derive(Serialize, Deserialize)]
struct Params {
    key: Option<String>,
    import: LeadImport,
}

/// Queues `import` as a job of `tenant`, once per idempotency `key` (asked again with the
/// key, it answers the job queued the first time); the job's id.
pub async fn enqueue(
    pool: &PgPool,
    tenant: &TenantId,
    import: LeadImport,
    key: Option<String>,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(k) = &key {
        // One import per key at a time: a concurrent retry waits here, then finds the job.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
            .bind(tenant.as_str())
            .bind(k)
            .execute(&mut *tx)
            .await?;
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE tenant_id = $1 AND kind = $2 AND params ->> 'key' = $3",
        )
        .bind(tenant.as_str())
        .bind(JOB)
        .bind(k)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = queued {
            return Ok(id);
        }
    }
    let params = serde_json::to_value(Params { key, import })
        .map_err(|e| sqlx::Error::Protocol(format!("the import could not be stored: {e}")))?;
    let id = sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, params) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(JOB)
    .bind(sqlx::types::Json(params))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The job function the part's worker runs for [`JOB`].
pub async fn run_job(
    pool: &PgPool,
    relay: &Notify,
    job: &crm_service::jobs::Claimed,
) -> Result<Value, String> {
    let Params { import, .. } = serde_json::from_value(job.params.clone())
        .map_err(|e| format!("the import's stored rows are unreadable: {e}"))?;
    let result = run(pool, relay, &job.tenant, job.id, &import)
        .await
        .map_err(|e| format!("the database failed: {e}"))?;
    tracing::info!(
        job = job.id,
        rows = result.rows,
        opened = result.opened,
        rejected = result.rejected,
        "lead import done"
    );
    serde_json::to_value(result).map_err(|e| e.to_string())
}
