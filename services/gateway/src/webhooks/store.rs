//! The webhook tables (`webhook_endpoints`, `webhook_deliveries`, `webhook_attempts`), every
//! query filtered by tenant except the delivery loop's claim, which serves every tenant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An endpoint as the API shows it (never its secrets, except once, on creation and rotation).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Endpoint {
    /// The endpoint's id.
    pub id: Uuid,
    /// Where deliveries are posted.
    #[schema(example = "https://hooks.example.com/crm")]
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it receives: `family.kind`, `family.*` or `*`.
    #[schema(example = json!(["segment.*", "tier.changed"]))]
    pub event_types: Vec<String>,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Why it was disabled: `gone` (it answered 410), `failing` (it failed for longer than
    /// the deployment allows) or `manual`.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Since when every attempt has failed (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, \
     disabled_at, failing_since, previous_secret_until, created_at, updated_at";

/// A new endpoint's settings, checked.
pub(crate) struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a [String],
    pub secret: &'a str,
}

/// Inserts an endpoint.
pub(crate) async fn insert_endpoint(
    pool: &PgPool,
    tenant: &TenantId,
    new: &NewEndpoint<'_>,
) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(Uuid::now_v7())
    .bind(new.url)
    .bind(new.description)
    .bind(new.event_types)
    .bind(new.secret)
    .fetch_one(pool)
    .await
}

/// A page of the tenant's endpoints, oldest first.
pub(crate) async fn list_endpoints(
    pool: &PgPool,
    tenant: &TenantId,
    limit: i64,
    offset: i64,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1
         ORDER BY created_at, id LIMIT $2 OFFSET $3"
    ))
    .bind(tenant.as_str())
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// One of the tenant's endpoints.
pub(crate) async fn get_endpoint(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A change to an endpoint (absent fields stay as they are).
#[derive(Default)]
pub(crate) struct EndpointChange<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a [String]>,
    pub enabled: Option<bool>,
}

/// Applies `change`. Enabling clears the reason it was disabled and its failing time;
/// disabling records `manual`.
pub(crate) async fn update_endpoint(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
    change: &EndpointChange<'_>,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
            url = coalesce($3, url),
            description = coalesce($4, description),
            event_types = coalesce($5, event_types),
            enabled = coalesce($6, enabled),
            disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason
                                   WHEN $6 THEN NULL
                                   WHEN enabled THEN 'manual' ELSE disabled_reason END,
            disabled_at = CASE WHEN $6 IS NULL THEN disabled_at
                               WHEN $6 THEN NULL
                               WHEN enabled THEN now() ELSE disabled_at END,
            failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .bind(change.url)
    .bind(change.description)
    .bind(change.event_types)
    .bind(change.enabled)
    .fetch_optional(pool)
    .await
}

/// Deletes an endpoint with its deliveries and their attempts; whether it existed.
pub(crate) async fn delete_endpoint(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes `secret` the signing secret; the one it replaces keeps signing for `overlap`.
pub(crate) async fn rotate_secret(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
    secret: &str,
    overlap: Duration,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
            previous_secret_until = now() + make_interval(secs => $4), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .bind(secret)
    .bind(overlap.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// The tenant's enabled endpoints and what each subscribes to.
pub(crate) async fn subscribers(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<(Uuid, Vec<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, event_types FROM webhook_endpoints WHERE tenant_id = $1 AND enabled")
        .bind(tenant.as_str())
        .fetch_all(conn)
        .await
}

/// One delivery to queue.
pub(crate) struct NewDelivery<'a> {
    pub endpoint: Uuid,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub customer_id: Option<Uuid>,
    pub payload: &'a str,
}

/// Queues a delivery, due now; a second copy of the same event for the same endpoint (the
/// topic's at-least-once delivery) changes nothing.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    tenant: &TenantId,
    d: &NewDelivery<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries
            (tenant_id, id, endpoint_id, event_id, event_type, customer_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(Uuid::now_v7())
    .bind(d.endpoint)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.customer_id)
    .bind(d.payload)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the stored deliveries about erased customers, except the `profile.erased` notices.
pub(crate) async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM webhook_deliveries
         WHERE tenant_id = $1 AND customer_id = ANY($2) AND event_type <> 'profile.erased'",
    )
    .bind(tenant.as_str())
    .bind(customers)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery claimed for one attempt.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Due {
    pub tenant_id: String,
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub payload: String,
    /// Attempts so far, this one included (the attempt's number in the log).
    pub attempts: i32,
    /// Attempts since the delivery was queued or last replayed (its place in the schedule).
    pub round_attempts: i32,
    pub url: String,
    pub secret: String,
    /// The previous secret while it still signs.
    pub previous_secret: Option<String>,
}

/// Claims up to `limit` due deliveries of enabled endpoints (`FOR UPDATE SKIP LOCKED`, so
/// replicas share them) for `lease`: a replica that dies mid-attempt leaves the delivery due
/// again when the lease ends.
pub(crate) async fn claim(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
            SELECT d.tenant_id, d.id FROM webhook_deliveries d
            JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND e.enabled
            ORDER BY d.next_attempt_at LIMIT $1
            FOR UPDATE OF d SKIP LOCKED)
         UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
            round_attempts = d.round_attempts + 1,
            next_attempt_at = now() + make_interval(secs => $2)
         FROM due, webhook_endpoints e
         WHERE d.tenant_id = due.tenant_id AND d.id = due.id
           AND e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
         RETURNING d.tenant_id, d.id, d.endpoint_id, d.payload, d.attempts, d.round_attempts,
            e.url, e.secret,
            CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// What an attempt came to, as the delivery loop decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx.
    Delivered,
    /// Failed; try again after the delay.
    Retry(Duration),
    /// Failed, and the schedule is exhausted.
    Failed,
    /// 410 Gone: the endpoint is disabled.
    Gone,
}

/// One attempt's record.
pub(crate) struct AttemptRecord {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub outcome: Outcome,
}

/// Records finished attempts in one transaction, a few set-wise statements for all of them:
/// the log lines; each delivery moved on, only if it is still this attempt's (a lease that ran
/// out let another replica take it; then only the log line is added); each endpoint's failing
/// time cleared by a success or started by a failure; endpoints that answered 410, or have
/// been failing since more than `disable_after` ago, disabled (`gone`, `failing`). The
/// endpoints this disabled.
pub(crate) async fn record(
    pool: &PgPool,
    attempts: &[(Due, AttemptRecord)],
    disable_after: Duration,
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let mut tenants = Vec::new();
    let mut ids = Vec::new();
    let mut ns = Vec::new();
    let mut statuses: Vec<Option<i32>> = Vec::new();
    let mut errors: Vec<Option<String>> = Vec::new();
    let mut durations = Vec::new();
    let mut states = Vec::new();
    let mut delays: Vec<Option<f64>> = Vec::new();
    let mut succeeded: Vec<(String, Uuid)> = Vec::new();
    let mut failed: Vec<(String, Uuid)> = Vec::new();
    let mut gone: Vec<(String, Uuid)> = Vec::new();
    for (due, a) in attempts {
        tenants.push(due.tenant_id.clone());
        ids.push(due.id);
        ns.push(due.attempts);
        statuses.push(a.status.map(i32::from));
        errors.push(a.error.clone());
        durations.push(a.duration_ms);
        let endpoint = (due.tenant_id.clone(), due.endpoint_id);
        let (state, delay) = match a.outcome {
            Outcome::Delivered => {
                succeeded.push(endpoint);
                ("delivered", None)
            }
            Outcome::Retry(d) => {
                failed.push(endpoint);
                ("pending", Some(d.as_secs_f64()))
            }
            Outcome::Failed => {
                failed.push(endpoint);
                ("failed", None)
            }
            Outcome::Gone => {
                gone.push(endpoint);
                ("failed", None)
            }
        };
        states.push(state.to_owned());
        delays.push(delay);
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (tenant_id, delivery_id, n, status_code, error, duration_ms)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::int4[], $4::int4[], $5::text[], $6::int4[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&ns)
    .bind(&statuses)
    .bind(&errors)
    .bind(&durations)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries d SET status = a.state, last_status = a.status_code,
            last_error = a.error,
            next_attempt_at = CASE WHEN a.delay IS NULL THEN d.next_attempt_at
                                   ELSE now() + make_interval(secs => a.delay) END,
            delivered_at = CASE WHEN a.state = 'delivered' THEN now() END
         FROM UNNEST($1::text[], $2::uuid[], $3::int4[], $4::text[], $5::int4[], $6::text[],
                     $7::float8[]) AS a(tenant_id, id, n, state, status_code, error, delay)
         WHERE d.tenant_id = a.tenant_id AND d.id = a.id AND d.attempts = a.n
           AND d.status = 'pending'",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&ns)
    .bind(&states)
    .bind(&statuses)
    .bind(&errors)
    .bind(&delays)
    .execute(&mut *tx)
    .await?;
    let split = |pairs: Vec<(String, Uuid)>| -> (Vec<String>, Vec<Uuid>) {
        let mut pairs = pairs;
        pairs.sort();
        pairs.dedup();
        pairs.into_iter().unzip()
    };
    let (ok_tenants, ok_ids) = split(succeeded);
    sqlx::query(
        "UPDATE webhook_endpoints e SET failing_since = NULL
         FROM UNNEST($1::text[], $2::uuid[]) AS s(tenant_id, id)
         WHERE e.tenant_id = s.tenant_id AND e.id = s.id AND e.failing_since IS NOT NULL",
    )
    .bind(&ok_tenants)
    .bind(&ok_ids)
    .execute(&mut *tx)
    .await?;
    let (gone_tenants, gone_ids) = split(gone);
    let mut disabled: Vec<(String, Uuid)> = sqlx::query_as(
        "UPDATE webhook_endpoints e SET enabled = false, disabled_reason = 'gone',
            disabled_at = now(), updated_at = now()
         FROM UNNEST($1::text[], $2::uuid[]) AS g(tenant_id, id)
         WHERE e.tenant_id = g.tenant_id AND e.id = g.id AND e.enabled
         RETURNING e.tenant_id, e.id",
    )
    .bind(&gone_tenants)
    .bind(&gone_ids)
    .fetch_all(&mut *tx)
    .await?;
    let (bad_tenants, bad_ids) = split(failed);
    // The failing time as it was before this statement decides: an endpoint whose first
    // failure is this one has not been failing for long.
    let failing: Vec<(String, Uuid)> = sqlx::query_as(
        "WITH old AS (
            SELECT e.tenant_id, e.id,
                   e.enabled AND e.failing_since IS NOT NULL
                   AND e.failing_since <= now() - make_interval(secs => $3) AS off
            FROM webhook_endpoints e JOIN UNNEST($1::text[], $2::uuid[]) AS f(tenant_id, id)
              ON e.tenant_id = f.tenant_id AND e.id = f.id
            ORDER BY e.tenant_id, e.id
            FOR UPDATE OF e)
         UPDATE webhook_endpoints e SET failing_since = coalesce(e.failing_since, now()),
            enabled = e.enabled AND NOT old.off,
            disabled_reason = CASE WHEN old.off THEN 'failing' ELSE e.disabled_reason END,
            disabled_at = CASE WHEN old.off THEN now() ELSE e.disabled_at END,
            updated_at = CASE WHEN old.off THEN now() ELSE e.updated_at END
         FROM old WHERE e.tenant_id = old.tenant_id AND e.id = old.id AND old.off
            OR e.tenant_id = old.tenant_id AND e.id = old.id AND e.failing_since IS NULL
         RETURNING e.tenant_id, e.id, old.off",
    )
    .bind(&bad_tenants)
    .bind(&bad_ids)
    .bind(disable_after.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter_map(|(t, id, off): (String, Uuid, bool)| off.then_some((t, id)))
    .collect();
    tx.commit().await?;
    disabled.extend(failing);
    Ok(disabled)
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Delivery {
    /// The delivery's id; `webhook-id` is `msg_` and its hex digits.
    pub id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The event's id (its envelope's `id`).
    pub event_id: String,
    /// The event's kind.
    #[schema(example = "segment.entered")]
    pub event_type: String,
    /// `pending` (waiting for its next attempt), `delivered` or `failed`.
    pub status: String,
    /// Attempts so far, replays included.
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The status of the last answer, if any.
    pub last_status: Option<i32>,
    /// Why the last attempt got no answer, if it got none.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts, \
     CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, last_status, \
     last_error, created_at, delivered_at";

/// A page of an endpoint's deliveries, newest first, of one status if given.
pub(crate) async fn list_deliveries(
    pool: &PgPool,
    tenant: &TenantId,
    endpoint: Uuid,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE tenant_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
         ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(tenant.as_str())
    .bind(endpoint)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// One delivery, with its payload.
pub(crate) async fn get_delivery(
    pool: &PgPool,
    tenant: &TenantId,
    endpoint: Uuid,
    id: Uuid,
) -> Result<Option<(Delivery, String)>, sqlx::Error> {
    let delivery: Option<Delivery> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3"
    ))
    .bind(tenant.as_str())
    .bind(endpoint)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(delivery) = delivery else {
        return Ok(None);
    };
    let payload: String = sqlx::query_scalar(
        "SELECT payload FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok(Some((delivery, payload)))
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Attempt {
    /// Its number among the delivery's attempts, from 1.
    pub n: i32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's status, if it answered.
    pub status_code: Option<i32>,
    /// Why there was no answer, if there was none.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i32,
}

/// Every attempt of a delivery, first first.
pub(crate) async fn attempts(
    pool: &PgPool,
    tenant: &TenantId,
    delivery: Uuid,
) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n, attempted_at, status_code, error, duration_ms FROM webhook_attempts
         WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY n",
    )
    .bind(tenant.as_str())
    .bind(delivery)
    .fetch_all(pool)
    .await
}

/// Queues a delivery again, due now, at the start of the retry schedule (its attempts so far
/// stay in the log). `None` when the endpoint has no such delivery.
pub(crate) async fn replay(
    pool: &PgPool,
    tenant: &TenantId,
    endpoint: Uuid,
    id: Uuid,
) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0,
            next_attempt_at = now(), delivered_at = NULL
         WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3
         RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(endpoint)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Queues again every failed delivery of an endpoint queued since `since`; how many.
pub(crate) async fn recover(
    pool: &PgPool,
    tenant: &TenantId,
    endpoint: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0,
            next_attempt_at = now()
         WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3",
    )
    .bind(tenant.as_str())
    .bind(endpoint)
    .bind(since)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
