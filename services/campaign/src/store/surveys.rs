//! Surveys and their answers. An answer is keyed (a personal link's id, a form's response id),
//! so a link answered twice or a form posted twice records one answer; the report counts
//! answers by question and value in SQL.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::surveys::definition::Definition;
use crate::domain::surveys::report::Counted;

/// A survey as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SurveyRow {
    /// Its id.
    pub id: Uuid,
    /// Its name, unique in the tenant.
    pub name: String,
    /// Questions, hidden fields and trait mappings.
    #[schema(value_type = Definition)]
    pub definition: Json<Definition>,
    /// `open` (takes answers) or `closed`.
    pub status: String,
    /// Raised by every change.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// By whom.
    pub updated_by: String,
}

const COLUMNS: &str = "id, name, definition, status, version, created_at, updated_at, updated_by";

/// Stores a new survey; `None` when the name is taken.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    name: &str,
    definition: &Definition,
    actor: &str,
) -> Result<Option<SurveyRow>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO surveys (tenant_id, id, name, definition, created_at, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, now(), now(), $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(name)
        .bind(Json(definition))
        .bind(actor)
        .fetch_optional(conn)
        .await
}

/// The tenant's surveys, by name.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<SurveyRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM surveys WHERE tenant_id = $1 ORDER BY lower(name)");
    sqlx::query_as(&sql).bind(tenant).fetch_all(conn).await
}

/// One survey.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<SurveyRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM surveys WHERE tenant_id = $1 AND id = $2");
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// What a change sets (absent: kept).
pub struct Change<'a> {
    /// A new name.
    pub name: Option<&'a str>,
    /// A new definition.
    pub definition: Option<&'a Definition>,
    /// `open` or `closed`.
    pub status: Option<&'a str>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ChangeError {
    /// No such survey.
    NotFound,
    /// Another survey has the name.
    NameTaken,
    /// The database failed.
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// Changes a survey, raising its version.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    c: &Change<'_>,
    actor: &str,
) -> Result<SurveyRow, ChangeError> {
    let sql = format!(
        "UPDATE surveys SET name = coalesce($3, name), definition = coalesce($4, definition),
             status = coalesce($5, status), version = version + 1, updated_at = now(),
             updated_by = $6
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let r = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(c.name)
        .bind(c.definition.map(Json))
        .bind(c.status)
        .bind(actor)
        .fetch_optional(conn)
        .await;
    match r {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(ChangeError::NotFound),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(ChangeError::NameTaken),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a survey and its answers; whether it existed.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM surveys WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// An answer to record.
pub struct NewAnswer<'a> {
    /// The survey.
    pub survey_id: Uuid,
    /// The survey's version answered.
    pub survey_version: i32,
    /// Its id.
    pub id: Uuid,
    /// Its key (one answer per key).
    pub key: &'a str,
    /// The customer, when known by a signed personal link.
    pub customer_id: Option<Uuid>,
    /// Whether the respondent is known by a signed personal link.
    pub verified: bool,
    /// Values by question.
    pub answers: &'a serde_json::Map<String, Value>,
    /// Hidden fields that map to no trait.
    pub hidden: &'a serde_json::Map<String, Value>,
    /// The NPS score.
    pub nps: Option<i64>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Records an answer; `false` when its key was answered already.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    a: &NewAnswer<'_>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO survey_answers (tenant_id, survey_id, id, answer_key, customer_id, verified,
             answers, hidden, nps, survey_version, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(a.survey_id)
    .bind(a.id)
    .bind(a.key)
    .bind(a.customer_id)
    .bind(a.verified)
    .bind(Json(a.answers))
    .bind(Json(a.hidden))
    .bind(a.nps.and_then(|n| i16::try_from(n).ok()))
    .bind(a.survey_version)
    .bind(a.at)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// An answer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AnswerRow {
    /// Its id.
    pub id: Uuid,
    /// The customer, when answered through a personal link.
    pub customer_id: Option<Uuid>,
    /// Whether the respondent was known by a signed personal link.
    pub verified: bool,
    /// Values by question.
    #[schema(value_type = Object)]
    pub answers: Json<serde_json::Map<String, Value>>,
    /// Hidden fields that map to no trait.
    #[schema(value_type = Object)]
    pub hidden: Json<serde_json::Map<String, Value>>,
    /// The NPS score.
    pub nps: Option<i16>,
    /// The survey's version answered.
    pub survey_version: i32,
    /// When.
    pub at: DateTime<Utc>,
}

/// A page of a survey's answers, newest first, after `after` (keyset on the id).
pub async fn answers(
    conn: &mut PgConnection,
    tenant: &TenantId,
    survey: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AnswerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, verified, answers, hidden, nps, survey_version, at
         FROM survey_answers WHERE tenant_id = $1 AND survey_id = $2
           AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(survey)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The survey's answers counted by question and value (free text counted as `null`, each
/// choice of a multiple choice counted once), with how many answers each question has, and
/// the number of answers.
pub async fn counted(
    conn: &mut PgConnection,
    tenant: &TenantId,
    survey: Uuid,
) -> Result<(i64, Vec<Counted>), sqlx::Error> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM survey_answers WHERE tenant_id = $1 AND survey_id = $2",
    )
    .bind(tenant)
    .bind(survey)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<(String, Option<Value>, i64, i64)> = sqlx::query_as(
        "WITH q AS (
             SELECT a.id, f.key, f.value
             FROM survey_answers a CROSS JOIN LATERAL jsonb_each(a.answers) f
             WHERE a.tenant_id = $1 AND a.survey_id = $2),
         per AS (SELECT key, count(*) AS answered FROM q GROUP BY key),
         v AS (
             SELECT q.key,
                    CASE WHEN jsonb_typeof(q.value) = 'array' THEN e.value
                         WHEN jsonb_typeof(q.value) = 'string' AND length(q.value #>> '{}') > 200
                           THEN NULL
                         ELSE q.value END AS value
             FROM q LEFT JOIN LATERAL jsonb_array_elements(
                 CASE WHEN jsonb_typeof(q.value) = 'array' THEN q.value END) e ON true)
         SELECT v.key, v.value, count(*), per.answered
         FROM v JOIN per USING (key) GROUP BY v.key, v.value, per.answered",
    )
    .bind(tenant)
    .bind(survey)
    .fetch_all(conn)
    .await?;
    Ok((
        total,
        rows.into_iter()
            .map(|(question, value, count, answered)| Counted {
                question,
                value: value.unwrap_or(Value::Null),
                count,
                answered,
            })
            .collect(),
    ))
}

/// Answers of erased customers lose their values (the counts of a report stay honest only for
/// what is kept: erased answers leave it).
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM survey_answers WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Answers of `merged` now belong to `survivor`.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE survey_answers SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(conn)
    .await?;
    Ok(())
}
