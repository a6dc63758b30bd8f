//! `offers`, `decision_settings` and the decision profile read from `contacts`: the catalogue
//! (definitions checked by `domain::offers::catalogue` before they reach this module), each
//! tenant's decision settings, and what a decision knows of a customer.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::offers::catalogue::OfferSpec;
use crate::domain::offers::decide::{DecisionSettings, LiveOffer};
use crate::domain::offers::eligibility::{self, DecisionProfile, Rfm};

/// An offer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferRow {
    /// Its id.
    pub id: Uuid,
    /// Its definition, as last saved.
    pub definition: OfferSpec,
    /// 1 when created, one more on every change.
    pub version: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who made it.
    pub updated_by: String,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum OfferStoreError {
    /// No such offer for this tenant.
    #[error("no such offer")]
    NotFound,
    /// Another live offer has the name.
    #[error("another offer is named so")]
    NameTaken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn taken(e: sqlx::Error) -> OfferStoreError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("offers_name") => {
            OfferStoreError::NameTaken
        }
        _ => OfferStoreError::Db(e),
    }
}

type Row = (
    Uuid,
    Json<OfferSpec>,
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
);

const COLUMNS: &str = "id, definition, version, created_at, updated_at, updated_by";

fn row((id, definition, version, created_at, updated_at, updated_by): Row) -> OfferRow {
    OfferRow {
        id,
        definition: definition.0,
        version,
        created_at,
        updated_at,
        updated_by,
    }
}

/// Adds an offer.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &OfferSpec,
    actor: &str,
) -> Result<OfferRow, OfferStoreError> {
    let r: Row = sqlx::query_as(&format!(
        "INSERT INTO offers (tenant_id, id, name, status, definition, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(spec.name.trim())
    .bind(spec.status.as_str())
    .bind(Json(spec))
    .bind(actor)
    .fetch_one(conn)
    .await
    .map_err(taken)?;
    Ok(row(r))
}

/// Replaces an offer's definition (not an archived one).
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &OfferSpec,
    actor: &str,
) -> Result<OfferRow, OfferStoreError> {
    let r: Option<Row> = sqlx::query_as(&format!(
        "UPDATE offers SET name = $3, status = $4, definition = $5, updated_by = $6,
             version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status <> 'archived' RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(spec.name.trim())
    .bind(spec.status.as_str())
    .bind(Json(spec))
    .bind(actor)
    .fetch_optional(conn)
    .await
    .map_err(taken)?;
    r.map(row).ok_or(OfferStoreError::NotFound)
}

/// Archives an offer: no longer offered or listed; its decisions and outcomes stay.
pub async fn archive(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    actor: &str,
) -> Result<(), OfferStoreError> {
    let done = sqlx::query(
        "UPDATE offers SET status = 'archived', updated_by = $3, version = version + 1,
             updated_at = now(),
             definition = jsonb_set(definition, '{status}', '\"archived\"')
         WHERE tenant_id = $1 AND id = $2 AND status <> 'archived'",
    )
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(OfferStoreError::NotFound);
    }
    Ok(())
}

/// One offer (archived ones too).
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<OfferRow>, sqlx::Error> {
    let r: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM offers WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.map(row))
}

/// The tenant's offers that are not archived, by name.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<OfferRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM offers WHERE tenant_id = $1 AND status <> 'archived'
         ORDER BY lower(name)"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(row).collect())
}

/// The tenant's active offers as decisions read them. An offer whose stored rule no longer
/// parses (the language only grows, so this is a bug) is left out and logged by id.
pub async fn live(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<LiveOffer>, sqlx::Error> {
    let rows: Vec<(Uuid, Json<OfferSpec>)> = sqlx::query_as(
        "SELECT id, definition FROM offers WHERE tenant_id = $1 AND status = 'active'",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, Json(s)) in rows {
        let rule = match s.eligibility.clone().map(eligibility::parse).transpose() {
            Ok(rule) => rule,
            Err(e) => {
                tracing::error!(offer = %id, error = %e, "stored eligibility no longer parses; offer left out");
                continue;
            }
        };
        out.push(LiveOffer {
            id,
            name: s.name,
            placements: s.placements,
            content: s.content,
            template: s.template,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            priority: s.priority,
            value: s.value,
            lever: s.lever,
            cost: s.cost,
            customer_cap: s.customer_cap,
            global_cap: s.global_cap,
            budget: s.budget,
            fallback: s.fallback,
            rule,
        });
    }
    Ok(out)
}

/// The tenant's decision settings (the defaults until saved).
pub async fn settings(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<DecisionSettings, sqlx::Error> {
    let row: Option<(Json<DecisionSettings>,)> =
        sqlx::query_as("SELECT settings FROM decision_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(s,)| s.0).unwrap_or_default())
}

/// Saves the tenant's decision settings (checked by the caller).
pub async fn save_settings(
    conn: &mut PgConnection,
    tenant: &TenantId,
    settings: &DecisionSettings,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO decision_settings (tenant_id, settings, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings,
             updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(tenant)
    .bind(Json(settings))
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// Holds the customer's contact row against a concurrent merge or erasure until the caller's
/// transaction ends (`FOR KEY SHARE`: it conflicts with the merge's and the erasure's delete,
/// not with the consumer's updates of the row's facts): what the transaction writes under this id is then either
/// written before the merge moves it, or not at all. `false` when the contact is gone (merged
/// or erased since it was read): the caller resolves the customer again.
pub async fn hold_contact(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM contacts WHERE tenant_id = $1 AND customer_id = $2 FOR KEY SHARE",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// How a decision names its customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomerRef {
    /// The customer id (a merged id finds its survivor).
    Id(Uuid),
    /// The customer's id in the calling system.
    UserId(String),
    /// A device or browser id.
    AnonymousId(String),
    /// The email address (compared case-insensitively).
    Email(String),
}

/// The decision profile's columns, as `contact_sql` selects them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProfileColumns {
    customer_id: Uuid,
    traits: Json<serde_json::Map<String, Value>>,
    segments: Vec<Uuid>,
    stage: Option<String>,
    tier: Option<String>,
    consents: Vec<String>,
    lead_score: Option<f64>,
    rfm: Option<Json<Value>>,
}

impl ProfileColumns {
    /// The customer's id and decision profile.
    pub(crate) fn into_profile(self) -> (Uuid, DecisionProfile) {
        let rfm = self
            .rfm
            .and_then(|Json(v)| serde_json::from_value::<Rfm>(v).ok());
        (
            self.customer_id,
            DecisionProfile {
                traits: self.traits.0,
                segments: self.segments,
                stage: self.stage,
                tier: self.tier,
                consents: self.consents,
                lead_score: self.lead_score,
                rfm,
            },
        )
    }
}

/// A query for the contact `customer` names (a survivor, never an erased one) as `c`, with
/// its decision profile (`ProfileColumns`) followed by `more` columns of `joins`; `$1` is the
/// tenant and `$2` the identifier, bound as text by `CustomerRef::key`.
pub(crate) fn contact_sql(customer: &CustomerRef, more: &str, joins: &str) -> String {
    let filter = match customer {
        CustomerRef::Id(_) => {
            "c.customer_id = coalesce((SELECT survivor_id FROM aliases
                 WHERE tenant_id = $1 AND merged_id = $2::uuid), $2::uuid)"
        }
        CustomerRef::UserId(_) => "c.user_id = $2",
        CustomerRef::AnonymousId(_) => "c.anonymous_id = $2",
        CustomerRef::Email(_) => "lower(c.email) = lower($2)",
    };
    format!(
        "WITH c AS (SELECT c.customer_id, c.traits, c.segments, c.stage, c.tier, c.consents,
                           c.lead_score, c.rfm
                    FROM contacts c WHERE c.tenant_id = $1 AND {filter}
                    AND NOT EXISTS (SELECT 1 FROM erased
                                    WHERE tenant_id = $1 AND customer_id = c.customer_id)
                    LIMIT 1)
         SELECT c.customer_id, c.traits, c.segments, c.stage, c.tier,
             ARRAY(SELECT k FROM jsonb_each(c.consents) AS e(k, v)
                   WHERE (v ->> 'granted')::boolean) AS consents,
             c.lead_score, c.rfm {more}
         FROM c {joins}"
    )
}

impl CustomerRef {
    /// The identifier as `contact_sql`'s `$2`.
    pub(crate) fn key(&self) -> String {
        match self {
            CustomerRef::Id(id) => id.to_string(),
            CustomerRef::UserId(v) | CustomerRef::AnonymousId(v) | CustomerRef::Email(v) => {
                v.clone()
            }
        }
    }
}

/// The customer's id (a survivor, never an erased one) and decision profile, if the mirror
/// knows them: one indexed read of the part's own table.
pub async fn profile(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: &CustomerRef,
) -> Result<Option<(Uuid, DecisionProfile)>, sqlx::Error> {
    let row: Option<ProfileColumns> = sqlx::query_as(&contact_sql(customer, "", ""))
        .bind(tenant)
        .bind(customer.key())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(ProfileColumns::into_profile))
}
