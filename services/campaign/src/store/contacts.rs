//! `contacts`, `aliases` and `erased`: the contacts campaigns can reach, kept under the
//! survivor of a merge and never brought back after an erasure.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// A contact as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Contact {
    /// The customer.
    pub customer_id: Uuid,
    /// Their email, from their profile.
    pub email: Option<String>,
    /// Events seen.
    pub events_seen: i64,
    /// Their latest event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Their traits, as identity last published them.
    pub traits: sqlx::types::Json<serde_json::Value>,
}

/// The id contacts of `$2` (tenant `$1`) are kept under, as a one-row subquery `x(id)`: the
/// survivor of a merged id, or no row once the id is erased. A macro so that `concat!` builds
/// each statement at compile time.
/// The columns of a [`Reach`], from `contacts c`.
macro_rules! reach_columns {
    () => {
        "c.email, c.phone, c.user_id, c.anonymous_id, c.traits, c.segments, c.stage, c.tier,
         ARRAY(SELECT k FROM jsonb_each(c.consents) AS e(k, v) WHERE (v ->> 'granted')::boolean),
         c.traits_at IS NOT NULL, c.predicted_value"
    };
}

macro_rules! live {
    () => {
        "(SELECT coalesce(
             (SELECT survivor_id FROM aliases WHERE tenant_id = $1 AND merged_id = $2), $2) AS id) x
         WHERE NOT EXISTS (SELECT 1 FROM erased WHERE tenant_id = $1 AND customer_id = x.id)"
    };
}

/// Folds the merged contact into the survivor's (events add up, the later activity and the
/// survivor's email win, the merged one's email fills a gap) and records the alias.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO contacts AS c (tenant_id, customer_id, email, events_seen, last_event_at, traits,
             traits_at, user_id, anonymous_id, phone, consents, segments, stage, tier,
             lead_score, rfm, predicted_value)
         SELECT $1, $3, email, events_seen, last_event_at, traits, traits_at, user_id,
             anonymous_id, phone, consents, segments, stage, tier, lead_score, rfm,
             predicted_value FROM gone
         ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET email = COALESCE(c.email, EXCLUDED.email),
             user_id = COALESCE(c.user_id, EXCLUDED.user_id),
             anonymous_id = COALESCE(c.anonymous_id, EXCLUDED.anonymous_id),
             phone = COALESCE(c.phone, EXCLUDED.phone),
             consents = EXCLUDED.consents || c.consents,
             stage = COALESCE(c.stage, EXCLUDED.stage),
             tier = COALESCE(c.tier, EXCLUDED.tier),
             lead_score = COALESCE(c.lead_score, EXCLUDED.lead_score),
             rfm = COALESCE(c.rfm, EXCLUDED.rfm),
             predicted_value = COALESCE(c.predicted_value, EXCLUDED.predicted_value),
             events_seen = c.events_seen + EXCLUDED.events_seen,
             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
             traits = CASE WHEN c.traits_at IS NULL THEN EXCLUDED.traits ELSE c.traits END,
             traits_at = COALESCE(c.traits_at, EXCLUDED.traits_at),
             updated_at = now()",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO aliases (tenant_id, merged_id, survivor_id) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a profile change: the email (`None` keeps the one known) and the traits, unless a
/// newer profile was recorded already; under the id contacts of `customer` are kept under;
/// nothing for an erased id.
pub async fn record_profile(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    email: Option<&str>,
    traits: &serde_json::Map<String, serde_json::Value>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO contacts AS c (tenant_id, customer_id, email, traits, traits_at) SELECT $1, id, $3, $4, $5 FROM ",
        live!(),
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET email = COALESCE(EXCLUDED.email, c.email),
             traits = CASE WHEN c.traits_at IS NULL OR EXCLUDED.traits_at >= c.traits_at
                           THEN EXCLUDED.traits ELSE c.traits END,
             traits_at = GREATEST(c.traits_at, EXCLUDED.traits_at),
             updated_at = now()"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(email)
    .bind(sqlx::types::Json(traits))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one more event of `customer` at `at`, under the id its contacts are kept under;
/// nothing for an erased id.
pub async fn record_activity(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO contacts AS c (tenant_id, customer_id, events_seen, last_event_at)
         SELECT $1, id, 1, $3 FROM ",
        live!(),
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET events_seen = c.events_seen + 1,
             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
             updated_at = now()"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the contacts of `ids` (email and activity) and remembers the ids.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO erased (tenant_id, customer_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The contact of `customer`, if any.
pub async fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_id, email, events_seen, last_event_at, traits FROM contacts
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(conn)
    .await
}

/// The identifiers a profile message carries: kept so that journey actions can address the
/// customer on `crm.ingest.v1` (which takes `user_id` or `anonymous_id`) and reach them by SMS.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids<'a> {
    /// The customer's id in the sending system.
    pub user_id: Option<&'a str>,
    /// A device or browser id.
    pub anonymous_id: Option<&'a str>,
    /// A phone number.
    pub phone: Option<&'a str>,
}

/// Records the identifiers of a profile message (`None` keeps the one known).
pub async fn record_ids(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    ids: Ids<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE contacts c SET user_id = COALESCE($3, c.user_id),
             anonymous_id = COALESCE($4, c.anonymous_id), phone = COALESCE($5, c.phone)
         FROM ",
        live!(),
        " AND c.tenant_id = $1 AND c.customer_id = x.id"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(ids.user_id)
    .bind(ids.anonymous_id)
    .bind(ids.phone)
    .execute(conn)
    .await?;
    Ok(())
}

/// What journeys read of a customer beside the traits: one update of the mirror.
#[derive(Debug, Clone)]
pub enum Mirror<'a> {
    /// Consent for `purpose:channel`, given or withdrawn at `at` (the newest change wins).
    Consent {
        /// The purpose.
        purpose: &'a str,
        /// The channel (`any` covers every channel).
        channel: &'a str,
        /// Given or withdrawn.
        granted: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Entered (`true`) or left a segment.
    Segment(Uuid, bool),
    /// The lifecycle stage.
    Stage(&'a str),
    /// The loyalty tier.
    Tier(&'a str),
    /// The lead score.
    LeadScore(f64),
    /// RFM scores and group (`{"r", "f", "m", "group"}`).
    Rfm(&'a serde_json::Value),
    /// The predicted lifetime value.
    Value(f64),
}

/// Applies one mirror update to the contact of `customer` (made if missing); nothing for an
/// erased id.
pub async fn record_mirror(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    change: Mirror<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO contacts (tenant_id, customer_id) SELECT $1, id FROM ",
        live!(),
        " ON CONFLICT DO NOTHING"
    ))
    .bind(tenant)
    .bind(customer)
    .execute(&mut *conn)
    .await?;
    let live = concat!(
        " FROM ",
        live!(),
        " AND c.tenant_id = $1 AND c.customer_id = x.id"
    );
    let (set, text, flag, at): (&str, Option<String>, Option<bool>, Option<DateTime<Utc>>) =
        match change {
            Mirror::Consent {
                purpose,
                channel,
                granted,
                at,
            } => (
                "consents = CASE WHEN (c.consents -> $3 ->> 'at')::timestamptz > $5 THEN c.consents
                     ELSE c.consents || jsonb_build_object($3::text,
                         jsonb_build_object('granted', $4::boolean, 'at', $5::timestamptz)) END",
                Some(format!("{purpose}:{channel}")),
                Some(granted),
                Some(at),
            ),
            Mirror::Segment(segment, true) => (
                "segments = CASE WHEN $3::uuid = ANY(c.segments) THEN c.segments
                     ELSE array_append(c.segments, $3::uuid) END",
                Some(segment.to_string()),
                None,
                None,
            ),
            Mirror::Segment(segment, false) => (
                "segments = array_remove(c.segments, $3::uuid)",
                Some(segment.to_string()),
                None,
                None,
            ),
            Mirror::Stage(stage) => ("stage = $3", Some(stage.to_owned()), None, None),
            Mirror::Tier(tier) => ("tier = $3", Some(tier.to_owned()), None, None),
            Mirror::LeadScore(score) => (
                "lead_score = $3::float8",
                Some(score.to_string()),
                None,
                None,
            ),
            Mirror::Rfm(scores) => ("rfm = $3::jsonb", Some(scores.to_string()), None, None),
            Mirror::Value(value) => (
                "predicted_value = $3::float8",
                Some(value.to_string()),
                None,
                None,
            ),
        };
    let sql = format!("UPDATE contacts c SET {set}, updated_at = now(){live}");
    sqlx::query(&sql)
        .bind(tenant)
        .bind(customer)
        .bind(text)
        .bind(flag)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Everything journeys read about one customer: the contact, its identifiers and the facts
/// branches and the send gate see.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The customer's id in the sending system.
    pub user_id: Option<String>,
    /// A device or browser id.
    pub anonymous_id: Option<String>,
    /// Traits.
    pub traits: serde_json::Map<String, serde_json::Value>,
    /// Segments.
    pub segments: Vec<Uuid>,
    /// Lifecycle stage.
    pub stage: Option<String>,
    /// Loyalty tier.
    pub tier: Option<String>,
    /// `purpose:channel` pairs currently granted.
    pub consents: Vec<String>,
    /// Whether a profile message of the customer has arrived (`crm.profiles.v1`).
    pub profile_seen: bool,
    /// The customer's predicted lifetime value (segmentation's `value.predicted`), if known.
    pub predicted_value: Option<f64>,
}

/// The profile trait that holds a customer's push device token.
pub const PUSH_TOKEN_TRAIT: &str = "push_token";

impl Reach {
    /// Where a message on `channel` goes: the email address, the phone number (SMS), or the
    /// device token in the `push_token` trait (push), as last mirrored.
    pub fn address(&self, channel: crate::domain::journeys::Channel) -> Option<&str> {
        use crate::domain::journeys::Channel;
        match channel {
            Channel::Email => self.email.as_deref(),
            Channel::Sms => self.phone.as_deref(),
            Channel::Push => self
                .traits
                .get(PUSH_TOKEN_TRAIT)
                .and_then(serde_json::Value::as_str),
        }
    }
}

type ReachRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    Vec<Uuid>,
    Option<String>,
    Option<String>,
    Vec<String>,
    bool,
    Option<f64>,
);

/// What journeys read about `customer` (the contact its id is kept under), if known.
pub async fn reach(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Option<Reach>, sqlx::Error> {
    let row: Option<ReachRow> = sqlx::query_as(concat!(
        "SELECT ",
        reach_columns!(),
        " FROM contacts c, ",
        live!(),
        " AND c.tenant_id = $1 AND c.customer_id = x.id"
    ))
    .bind(tenant)
    .bind(customer)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(reach_of))
}

/// What journeys read about each of `customers` (ids as instances hold them: survivors, never
/// erased), in one query; a customer without a contact is missing from the answer.
pub async fn reach_many(
    conn: &mut PgConnection,
    customers: &[(TenantId, Uuid)],
) -> Result<std::collections::HashMap<(TenantId, Uuid), Reach>, sqlx::Error> {
    let tenants: Vec<&str> = customers.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<Uuid> = customers.iter().map(|(_, c)| *c).collect();
    let rows: Vec<KeyedReachRow> = sqlx::query_as(concat!(
        "SELECT c.tenant_id, c.customer_id, ",
        reach_columns!(),
        " FROM contacts c
         JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON c.tenant_id = k.t AND c.customer_id = k.id"
    ))
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, c, e, p, u, a, tr, sg, st, ti, co, se, pv)| {
            ((t, c), reach_of((e, p, u, a, tr, sg, st, ti, co, se, pv)))
        })
        .collect())
}

type KeyedReachRow = (
    TenantId,
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    Vec<Uuid>,
    Option<String>,
    Option<String>,
    Vec<String>,
    bool,
    Option<f64>,
);

fn reach_of(row: ReachRow) -> Reach {
    let (email, phone, user_id, anonymous_id, traits, segments, stage, tier, consents, seen, value) =
        row;
    Reach {
        email,
        phone,
        user_id,
        anonymous_id,
        traits: traits.0,
        segments,
        stage,
        tier,
        consents,
        profile_seen: seen,
        predicted_value: value,
    }
}

/// The id contacts of `customer` are kept under (the survivor of a merge), or `None` once
/// erased.
pub async fn live_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    let row: Option<(Uuid,)> = sqlx::query_as(concat!("SELECT x.id FROM ", live!()))
        .bind(tenant)
        .bind(customer)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Members of `segment` (as campaign mirrors them), after `after` by id, `limit` at a time.
pub async fn members(
    conn: &mut PgConnection,
    tenant: &TenantId,
    segment: Uuid,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT customer_id FROM contacts
         WHERE tenant_id = $1 AND $2 = ANY(segments) AND customer_id > $3
         ORDER BY customer_id LIMIT $4",
    )
    .bind(tenant)
    .bind(segment)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Contacts holding trait `name`, after `after` by id, `limit` at a time: (id, traits).
pub async fn with_trait(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: &str,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, serde_json::Map<String, serde_json::Value>)>, sqlx::Error> {
    let rows: Vec<(
        Uuid,
        sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    )> = sqlx::query_as(
        "SELECT customer_id, traits FROM contacts
             WHERE tenant_id = $1 AND traits ? $2 AND customer_id > $3
             ORDER BY customer_id LIMIT $4",
    )
    .bind(tenant)
    .bind(name)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, t)| (id, t.0)).collect())
}
