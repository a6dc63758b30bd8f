//! `journey_instances`, `journey_timers`, `journey_steps`: each customer's way through a
//! journey version, survives any restart. Entry follows the journey's re-entry rule with one
//! live instance per entry key (a unique index, so two replicas entering the same customer at
//! once make one instance); due timers are claimed with `FOR UPDATE SKIP LOCKED`, so replicas
//! share them and a claim rolled back (a crash) is claimed again; a step key per (instance,
//! node, occurrence) applies each step once. Exiting deletes the pending timer at once.
//! Instances follow merges (the survivor keeps one per journey) and erasure.

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journeys::{Entry, Reentry};

/// A timer whose time has come, claimed by this transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// The tenant.
    pub tenant: TenantId,
    /// The instance.
    pub instance: Uuid,
    /// The node to run.
    pub node: String,
    /// When it was due.
    pub due_at: DateTime<Utc>,
}

/// What entering a journey needs.
#[derive(Debug, Clone)]
pub struct Entrant<'a> {
    /// The journey.
    pub journey: Uuid,
    /// The published version it enters.
    pub version: i32,
    /// The customer.
    pub customer: Uuid,
    /// The entry key (the customer id, or an event property's value).
    pub entry_key: &'a str,
    /// The journey's first node.
    pub start: &'a str,
}

/// Enters the customer when the re-entry rule allows; the new instance's id, or `None`.
pub async fn enter(
    conn: &mut PgConnection,
    tenant: &TenantId,
    who: &Entrant<'_>,
    rule: &Entry,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let last: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT status, exited_at FROM journey_instances
         WHERE tenant_id = $1 AND journey_id = $2 AND entry_key = $3
         ORDER BY entered_at DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(who.journey)
    .bind(who.entry_key)
    .fetch_optional(&mut *conn)
    .await?;
    let allowed = match (&last, rule.reentry) {
        (None, _) => true,
        (Some(_), Reentry::Never) => false,
        (Some((status, _)), Reentry::AfterExit) if status == "active" => false,
        (Some((_, exited)), Reentry::AfterExit) => match (rule.cooldown_hours, exited) {
            (Some(h), Some(at)) => *at + Duration::hours(i64::from(h)) <= now,
            _ => true,
        },
    };
    if !allowed {
        return Ok(None);
    }
    let id: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO journey_instances
             (tenant_id, id, journey_id, version, customer_id, entry_key, node, entered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, journey_id, entry_key) WHERE status = 'active' DO NOTHING
         RETURNING id",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(who.journey)
    .bind(who.version)
    .bind(who.customer)
    .bind(who.entry_key)
    .bind(who.start)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(|(id,)| id))
}

/// Sets (or replaces) the instance's pending timer and records the node it will run.
pub async fn schedule(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    due_at: DateTime<Utc>,
    node: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO journey_timers (tenant_id, instance_id, due_at, node) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, instance_id) DO UPDATE SET due_at = EXCLUDED.due_at, node = EXCLUDED.node",
    )
    .bind(tenant)
    .bind(instance)
    .bind(due_at)
    .bind(node)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due timers for this transaction (others skip them); they are gone
/// once it commits, and back if it rolls back.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueTimer>, sqlx::Error> {
    let rows: Vec<(TenantId, Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM journey_timers t USING (
             SELECT tenant_id, instance_id FROM journey_timers WHERE due_at <= $1
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
         WHERE t.tenant_id = due.tenant_id AND t.instance_id = due.instance_id
         RETURNING t.tenant_id, t.instance_id, t.node, t.due_at",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, instance, node, due_at)| DueTimer {
            tenant,
            instance,
            node,
            due_at,
        })
        .collect())
}

/// Records step (instance, node, occurrence); `false` when it was applied before.
pub async fn first_step(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    node: &str,
    occurrence: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO journey_steps (tenant_id, instance_id, node, occurrence) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(instance)
    .bind(node)
    .bind(occurrence)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the instance with `reason` and cancels its pending timer; `false` when it had ended.
pub async fn exit(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query(
        "UPDATE journey_instances SET status = 'exited', exited_at = $4, exit_reason = $3
         WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(tenant)
    .bind(instance)
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM journey_timers WHERE tenant_id = $1 AND instance_id = $2")
        .bind(tenant)
        .bind(instance)
        .execute(conn)
        .await?;
    Ok(ended.rows_affected() == 1)
}

/// The customer's live instances: (instance, journey).
pub async fn live_of(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, journey_id FROM journey_instances
         WHERE tenant_id = $1 AND customer_id = $2 AND status = 'active' ORDER BY id",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(conn)
    .await
}

/// `merged` folds into `survivor`: where both have a live instance of a journey, the
/// survivor's stays and the merged one's exits (`merged`); the rest move to the survivor.
pub async fn follow_merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let theirs = live_of(conn, tenant, merged).await?;
    let ours: Vec<Uuid> = live_of(conn, tenant, survivor)
        .await?
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    for (instance, journey) in theirs {
        if ours.contains(&journey) {
            exit(conn, tenant, instance, "merged", now).await?;
        }
    }
    let (m, s) = (merged.to_string(), survivor.to_string());
    sqlx::query(
        "UPDATE journey_instances SET customer_id = $3,
             entry_key = CASE WHEN entry_key = $4 THEN $5 ELSE entry_key END
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .bind(&m)
    .bind(&s)
    .execute(conn)
    .await?;
    Ok(())
}

/// Erased customers: their instances, timers and steps are deleted.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM journey_instances WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the instance to `node` (and records the split arm it took, if any).
pub async fn move_to(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    node: &str,
    arm: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE journey_instances SET node = $3, arm = COALESCE($4, arm)
         WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(tenant)
    .bind(instance)
    .bind(node)
    .bind(arm)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live instance as the runner needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Live {
    /// The instance.
    pub id: Uuid,
    /// Its journey.
    pub journey_id: Uuid,
    /// The version it runs.
    pub version: i32,
    /// The customer.
    pub customer_id: Uuid,
    /// The node it stands at (a wait's node while it waits).
    pub node: String,
    /// When it entered.
    pub entered_at: DateTime<Utc>,
    /// Event names seen since.
    pub seen: Vec<String>,
    /// When it reached the goal.
    pub goal_at: Option<DateTime<Utc>>,
}

const LIVE: &str = "SELECT id, journey_id, version, customer_id, node, entered_at, seen, goal_at
     FROM journey_instances WHERE tenant_id = $1";

/// The customer's live instances, locked for this transaction (a timer firing for one of
/// them waits until the event's effects are committed).
pub async fn live_locked(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<Live>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{LIVE} AND customer_id = $2 AND status = 'active' ORDER BY id FOR UPDATE"
    ))
    .bind(tenant)
    .bind(customer)
    .fetch_all(conn)
    .await
}

/// One live instance, locked, if it is still live.
pub async fn live_one(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
) -> Result<Option<Live>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{LIVE} AND id = $2 AND status = 'active' FOR UPDATE"
    ))
    .bind(tenant)
    .bind(instance)
    .fetch_optional(conn)
    .await
}

/// Records that the instance saw event `name` (for `event_seen` branches; at most 200 names).
pub async fn saw(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE journey_instances SET seen = array_append(seen, $3)
         WHERE tenant_id = $1 AND id = $2 AND NOT ($3 = ANY(seen)) AND cardinality(seen) < 200",
    )
    .bind(tenant)
    .bind(instance)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the goal reached at `at`; `false` when it was reached before.
pub async fn reach_goal(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE journey_instances SET goal_at = $3
         WHERE tenant_id = $1 AND id = $2 AND goal_at IS NULL",
    )
    .bind(tenant)
    .bind(instance)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the instance as one of the journey's control group (counted, never messaged).
pub async fn mark_held_out(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE journey_instances SET held_out = true WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(instance)
        .execute(conn)
        .await?;
    Ok(())
}

/// Cancels the instance's pending timer (what it waited for happened).
pub async fn cancel_timer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM journey_timers WHERE tenant_id = $1 AND instance_id = $2")
        .bind(tenant)
        .bind(instance)
        .execute(conn)
        .await?;
    Ok(())
}

/// The live ones of `instances` (tenant, id), locked, in one query.
pub async fn live_many(
    conn: &mut PgConnection,
    instances: &[(TenantId, Uuid)],
) -> Result<Vec<(TenantId, Live)>, sqlx::Error> {
    let tenants: Vec<&str> = instances.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<Uuid> = instances.iter().map(|(_, i)| *i).collect();
    let rows: Vec<LiveRow> = sqlx::query_as(
        "SELECT i.tenant_id, i.id, i.journey_id, i.version, i.customer_id, i.node, i.entered_at,
             i.seen, i.goal_at
         FROM journey_instances i
         JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON i.tenant_id = k.t AND i.id = k.id
         WHERE i.status = 'active' ORDER BY i.tenant_id, i.id FOR UPDATE OF i",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.tenant_id,
                Live {
                    id: r.id,
                    journey_id: r.journey_id,
                    version: r.version,
                    customer_id: r.customer_id,
                    node: r.node,
                    entered_at: r.entered_at,
                    seen: r.seen,
                    goal_at: r.goal_at,
                },
            )
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct LiveRow {
    tenant_id: TenantId,
    id: Uuid,
    journey_id: Uuid,
    version: i32,
    customer_id: Uuid,
    node: String,
    entered_at: DateTime<Utc>,
    seen: Vec<String>,
    goal_at: Option<DateTime<Utc>>,
}

/// Moves the journey's live instances to version `to`, those standing at a node that version
/// has (`nodes`); the others stay on their version. (moved, left).
pub async fn migrate(
    conn: &mut PgConnection,
    tenant: &TenantId,
    journey: Uuid,
    to: i32,
    nodes: &[String],
) -> Result<(u64, u64), sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE journey_instances SET version = $3
         WHERE tenant_id = $1 AND journey_id = $2 AND status = 'active' AND version <> $3
           AND node = ANY($4)",
    )
    .bind(tenant)
    .bind(journey)
    .bind(to)
    .bind(nodes)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let (left,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM journey_instances
         WHERE tenant_id = $1 AND journey_id = $2 AND status = 'active' AND version <> $3",
    )
    .bind(tenant)
    .bind(journey)
    .bind(to)
    .fetch_one(conn)
    .await?;
    Ok((moved, u64::try_from(left).unwrap_or(0)))
}
