//! The counts of a journey's report, read from its instances and messages in a few grouped
//! queries (every query filtered by tenant and journey).

use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// A count by one or two labels.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ReportCount)]
pub struct Count {
    /// The first label (node, reason, arm, status…).
    pub key: Option<String>,
    /// The second label, where there is one.
    pub detail: Option<String>,
    /// How many.
    pub count: i64,
}

/// Everything the report counts.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Instances by arm (null: before any split) and whether held out: (arm, held_out, n, converted).
    pub entered: Vec<(Option<String>, bool, i64, i64)>,
    /// Live instances by the node they stand at.
    pub at_node: Vec<Count>,
    /// Ended instances by exit reason.
    pub exited: Vec<Count>,
    /// Messages by node and status (`sent`, `delivered`, `opened`, `clicked`, …).
    pub messages: Vec<Count>,
    /// Skipped messages by node and reason.
    pub skipped: Vec<Count>,
}

/// The counts of journey `journey`.
pub async fn counts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    journey: Uuid,
) -> Result<Counts, sqlx::Error> {
    let entered: Vec<(Option<String>, bool, i64, i64)> = sqlx::query_as(
        "SELECT arm, held_out, count(*), count(goal_at) FROM journey_instances
         WHERE tenant_id = $1 AND journey_id = $2 GROUP BY arm, held_out ORDER BY arm, held_out",
    )
    .bind(tenant)
    .bind(journey)
    .fetch_all(&mut *conn)
    .await?;
    let grouped = |sql: &'static str| sqlx::query_as::<_, Count>(sql).bind(tenant).bind(journey);
    let at_node = grouped(
        "SELECT node AS key, NULL::text AS detail, count(*) AS count FROM journey_instances
         WHERE tenant_id = $1 AND journey_id = $2 AND status = 'active' GROUP BY node ORDER BY node",
    )
    .fetch_all(&mut *conn)
    .await?;
    let exited = grouped(
        "SELECT exit_reason AS key, NULL::text AS detail, count(*) AS count FROM journey_instances
         WHERE tenant_id = $1 AND journey_id = $2 AND status = 'exited'
         GROUP BY exit_reason ORDER BY exit_reason",
    )
    .fetch_all(&mut *conn)
    .await?;
    let messages = grouped(
        "SELECT node AS key, status AS detail, count(*) AS count FROM messages
         WHERE tenant_id = $1 AND journey_id = $2 AND status <> 'skipped'
         GROUP BY node, status ORDER BY node, status",
    )
    .fetch_all(&mut *conn)
    .await?;
    let skipped = grouped(
        "SELECT node AS key, skip_reason AS detail, count(*) AS count FROM messages
         WHERE tenant_id = $1 AND journey_id = $2 AND status = 'skipped'
         GROUP BY node, skip_reason ORDER BY node, skip_reason",
    )
    .fetch_all(conn)
    .await?;
    Ok(Counts {
        entered,
        at_node,
        exited,
        messages,
        skipped,
    })
}

/// A customer's journeys: (instance, journey, version, status, node, arm, entered, exited,
/// exit reason, goal reached), newest first.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InstanceRow {
    /// The instance.
    pub id: Uuid,
    /// The journey.
    pub journey_id: Uuid,
    /// The version it runs.
    pub version: i32,
    /// `active` or `exited`.
    pub status: String,
    /// Where it stands.
    pub node: String,
    /// The split arm it took.
    pub arm: Option<String>,
    /// In the journey's control group.
    pub held_out: bool,
    /// Entered.
    pub entered_at: chrono::DateTime<chrono::Utc>,
    /// Exited.
    pub exited_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why.
    pub exit_reason: Option<String>,
    /// Goal reached.
    pub goal_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The customer's journeys, newest first.
pub async fn of_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<InstanceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, journey_id, version, status, node, arm, held_out, entered_at, exited_at,
             exit_reason, goal_at
         FROM journey_instances WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY entered_at DESC, id DESC LIMIT 200",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(conn)
    .await
}
