//! Prospects: profiles known only by social handles (a mention from a handle no customer has,
//! docs/conversations.md), with their interests: the tracked terms their `Social Mention`
//! events matched. A prospect is the same profile it will stay once an identify links it to
//! a user id or email (it then stops being listed), never a second customer.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

/// One tracked term a prospect's mentions matched, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Interest {
    /// The term (`keyword:botas`, `#acme`, `@acme`).
    pub term: String,
    /// Mentions that matched it.
    pub mentions: i64,
}

/// A prospect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Prospect {
    /// The profile's id.
    pub customer_id: Uuid,
    /// Its handles, as `<network>:<handle>`.
    pub handles: Vec<String>,
    /// Its `Social Mention` events.
    pub mentions: i64,
    /// The last one.
    pub last_mention_at: Option<DateTime<Utc>>,
    /// What they matched, most frequent first.
    #[schema(value_type = Vec<Interest>)]
    pub interests: Json<Vec<Interest>>,
}

/// Up to `limit` of the tenant's prospects after `after`, by id.
pub async fn page(
    conn: &mut PgConnection,
    tenant: &TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Prospect>, sqlx::Error> {
    sqlx::query_as(
        "WITH candidates AS (
             SELECT DISTINCT i.customer_id FROM identifiers i
             WHERE i.tenant_id = $1 AND i.kind >= 'handle:' AND i.kind < 'handle;'
             AND i.customer_id > coalesce($2, '00000000-0000-0000-0000-000000000000'::uuid)),
         prospects AS (
             SELECT c.id FROM candidates k
             JOIN customers c ON c.tenant_id = $1 AND c.id = k.customer_id AND c.status = 'active'
             WHERE NOT EXISTS (
                 SELECT 1 FROM identifiers o WHERE o.tenant_id = $1 AND o.customer_id = c.id
                 AND NOT (o.kind LIKE 'handle:%'
                          OR (o.kind = 'anonymous_id' AND o.value LIKE 'social:%')))
             ORDER BY c.id LIMIT $3)
         SELECT p.id AS customer_id,
             ARRAY(SELECT substr(i.kind, 8) || ':' || i.value FROM identifiers i
                   WHERE i.tenant_id = $1 AND i.customer_id = p.id AND i.kind LIKE 'handle:%'
                   ORDER BY 1) AS handles,
             (SELECT count(*) FROM timeline t WHERE t.tenant_id = $1 AND t.customer_id = p.id
                 AND t.name = 'Social Mention') AS mentions,
             (SELECT max(t.occurred_at) FROM timeline t WHERE t.tenant_id = $1
                 AND t.customer_id = p.id AND t.name = 'Social Mention') AS last_mention_at,
             coalesce((SELECT jsonb_agg(jsonb_build_object('term', term, 'mentions', n)
                                        ORDER BY n DESC, term)
                       FROM (SELECT m.term, count(*) AS n FROM timeline t,
                                 jsonb_array_elements_text(
                                     CASE WHEN jsonb_typeof(t.properties -> 'matched') = 'array'
                                          THEN t.properties -> 'matched' ELSE '[]' END) AS m(term)
                             WHERE t.tenant_id = $1 AND t.customer_id = p.id
                             AND t.name = 'Social Mention'
                             GROUP BY m.term) terms), '[]') AS interests
         FROM prospects p ORDER BY p.id",
    )
    .bind(tenant.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
