//! Social connectors: their definition (secrets write-only, never read back out of this
//! module but to verify a call) and their health, updated by every call.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::conversations::mention::Tracked;

/// A connector as the API shows it (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
#[schema(as = SocialConnector)]
pub struct ConnectorRow {
    /// Its id.
    pub id: Uuid,
    /// Its name, unique in the tenant.
    pub name: String,
    /// `mastodon` or `x`.
    pub network: String,
    /// The brand's handle on the network.
    pub account: String,
    /// The terms it listens for.
    #[schema(value_type = Tracked)]
    pub tracked: Json<Tracked>,
    /// Whether calls are taken.
    pub enabled: bool,
    /// Calls received.
    pub received: i64,
    /// Mentions published.
    pub mentions: i64,
    /// The last call that was taken.
    pub last_received_at: Option<DateTime<Utc>>,
    /// Why the last refused call was refused.
    pub last_failure: Option<String>,
    /// When.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Calls refused since the last one taken.
    pub failures_in_row: i32,
    /// The network's API address replies are posted to, if set.
    pub api_url: Option<String>,
    /// Whether the connector has an access token to post replies with.
    pub can_reply: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, network, account, tracked, enabled, received, mentions,
    last_received_at, last_failure, last_failure_at, failures_in_row, api_url,
    (api_token IS NOT NULL AND api_url IS NOT NULL) AS can_reply, created_at";

/// What a new connector is made of.
pub struct NewConnector<'a> {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its network.
    pub network: &'a str,
    /// The brand's handle.
    pub account: &'a str,
    /// Its terms.
    pub tracked: &'a Tracked,
    /// The network's signing secret.
    pub secret: &'a str,
    /// The network's API address for replies.
    pub api_url: Option<&'a str>,
    /// The access token replies are posted with.
    pub api_token: Option<&'a str>,
}

/// Stores a new connector; `None` when the name is taken.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    c: &NewConnector<'_>,
) -> Result<Option<ConnectorRow>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO social_connectors (tenant_id, id, name, network, account, tracked, secrets,
             api_url, api_token)
         VALUES ($1, $2, $3, $4, $5, $6, ARRAY[$7], $8, $9) ON CONFLICT DO NOTHING
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(c.id)
        .bind(c.name)
        .bind(c.network)
        .bind(c.account)
        .bind(Json(c.tracked))
        .bind(c.secret)
        .bind(c.api_url)
        .bind(c.api_token)
        .fetch_optional(conn)
        .await
}

/// Changes a connector's terms, account, enabled flag, or adds a secret (the newest first,
/// the previous one kept for a rotation, older ones dropped).
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    c: &Change<'_>,
) -> Result<Option<ConnectorRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE social_connectors SET tracked = coalesce($3, tracked),
             account = coalesce($4, account), enabled = coalesce($5, enabled),
             secrets = CASE WHEN $6::text IS NULL THEN secrets ELSE ARRAY[$6, secrets[1]] END,
             api_url = coalesce($7, api_url), api_token = coalesce($8, api_token),
             updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(c.tracked.map(Json))
        .bind(c.account)
        .bind(c.enabled)
        .bind(c.secret)
        .bind(c.api_url)
        .bind(c.api_token)
        .fetch_optional(conn)
        .await
}

/// What a change sets (absent: kept).
#[derive(Debug, Default)]
pub struct Change<'a> {
    /// New terms.
    pub tracked: Option<&'a Tracked>,
    /// A new brand account.
    pub account: Option<&'a str>,
    /// Take calls or not.
    pub enabled: Option<bool>,
    /// A new signing secret.
    pub secret: Option<&'a str>,
    /// A new API address for replies.
    pub api_url: Option<&'a str>,
    /// A new access token for replies.
    pub api_token: Option<&'a str>,
}

/// What a reply on connector `id` is posted with: its network, API address and token.
pub async fn reply_credentials(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT network, api_url, api_token FROM social_connectors
         WHERE tenant_id = $1 AND id = $2 AND enabled AND api_url IS NOT NULL
           AND api_token IS NOT NULL",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The tenant's connectors, by name.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<ConnectorRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM social_connectors WHERE tenant_id = $1 ORDER BY lower(name)"
    );
    sqlx::query_as(&sql).bind(tenant).fetch_all(conn).await
}

/// One connector.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ConnectorRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM social_connectors WHERE tenant_id = $1 AND id = $2");
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// One connector with its secrets, locked for the call being taken (its health changes).
pub async fn for_call(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<(ConnectorRow, Vec<String>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct WithSecrets {
        #[sqlx(flatten)]
        row: ConnectorRow,
        secrets: Vec<String>,
    }
    let sql = format!(
        "SELECT {COLUMNS}, secrets FROM social_connectors WHERE tenant_id = $1 AND id = $2
         FOR UPDATE"
    );
    let found: Option<WithSecrets> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.map(|w| (w.row, w.secrets)))
}

/// Records a call taken, with the mentions it published.
pub async fn taken(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    mentions: usize,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE social_connectors SET received = received + 1, mentions = mentions + $3,
             last_received_at = $4, failures_in_row = 0
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(i64::try_from(mentions).unwrap_or(i64::MAX))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a call refused, and why (no personal data: a reason of ours, not the payload).
pub async fn refused(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    why: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE social_connectors SET last_failure = $3, last_failure_at = $4,
             failures_in_row = failures_in_row + 1
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(why)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The address the tenant's email connector receives at (replies are sent with it as
/// `Reply-To`, so the contact's answers come back through the inbound webhook), if any.
pub async fn inbound_address(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT account FROM social_connectors WHERE tenant_id = $1 AND network = 'email'
           AND enabled ORDER BY created_at LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await
}
