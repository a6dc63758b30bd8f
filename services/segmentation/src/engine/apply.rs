//! Writing evaluation outcomes: memberships, stages, lead scores and recheck times, set-based,
//! and the messages on `crm.segments.v1` through the outbox, in the caller's transaction.

use chrono::{DateTime, Utc};
use crm_envelope::{TenantId, Topic};
use crm_kafka::outbox::{enqueue_all, Outgoing};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::evaluate::Outcome;
use crate::domain::facts::Stored;
use crate::domain::model::TenantModel;
use crate::store::copy::copy_field;

/// Counts of what an application changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Applied {
    /// Customers evaluated.
    pub customers: u64,
    /// Segment entries.
    pub entered: u64,
    /// Segment exits.
    pub exited: u64,
    /// Stage changes.
    pub stage_changes: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, o: Self) {
        self.customers += o.customers;
        self.entered += o.entered;
        self.exited += o.exited;
        self.stage_changes += o.stage_changes;
    }
}

/// A message for `crm.segments.v1` about `customer`.
pub(crate) fn message(
    tenant: &TenantId,
    kind: &str,
    customer: Uuid,
    properties: serde_json::Value,
) -> Result<Outgoing, sqlx::Error> {
    Outgoing::domain(
        Topic::Segments,
        tenant,
        kind,
        customer,
        "segmentation",
        properties,
    )
}

/// `segment.entered` / `segment.exited` for `customer`.
pub(crate) fn membership_message(
    tenant: &TenantId,
    model: &TenantModel,
    customer: Uuid,
    segment: Uuid,
    entered: bool,
    reason: &str,
) -> Result<Outgoing, sqlx::Error> {
    let (name, version) = model
        .segments
        .iter()
        .find(|s| s.id == segment)
        .map_or((None, None), |s| (Some(s.name.as_str()), Some(s.version)));
    let kind = if entered {
        "segment.entered"
    } else {
        "segment.exited"
    };
    message(
        tenant,
        kind,
        customer,
        json!({"segment_id": segment, "segment_name": name, "version": version, "reason": reason}),
    )
}

/// How [`apply`] writes new memberships (messages are packed into a few outbox rows either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// `INSERT`s of arrays, tolerant of a membership already there: the stream's few rows.
    Statements,
    /// `COPY … FROM STDIN`: a recompute's thousands of entries. They must be new, which
    /// they are when computed against memberships loaded under the customers' row locks.
    Copy,
}

/// Writes `outcomes` (each with what was stored before and the reason its messages carry) and
/// enqueues their messages.
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &TenantModel,
    outcomes: &[(Outcome, Stored, &str)],
    now: DateTime<Utc>,
    writes: Writes,
) -> Result<Applied, sqlx::Error> {
    let mut applied = Applied::default();
    let (mut in_seg, mut in_cust, mut out_seg, mut out_cust) = (vec![], vec![], vec![], vec![]);
    let mut messages = Vec::new();
    let (mut ids, mut stages, mut stage_changed, mut scores, mut qualified, mut rechecks) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut t_cust, mut t_from, mut t_to) = (vec![], vec![], vec![]);
    for (o, stored, reason) in outcomes {
        let reason = *reason;
        applied.customers += 1;
        if !o.changes_anything(stored) {
            continue;
        }
        for s in &o.entered {
            in_seg.push(*s);
            in_cust.push(o.customer_id);
            messages.push(membership_message(
                tenant,
                model,
                o.customer_id,
                *s,
                true,
                reason,
            )?);
        }
        for s in &o.exited {
            out_seg.push(*s);
            out_cust.push(o.customer_id);
            messages.push(membership_message(
                tenant,
                model,
                o.customer_id,
                *s,
                false,
                reason,
            )?);
        }
        applied.entered += o.entered.len() as u64;
        applied.exited += o.exited.len() as u64;
        if let Some(was) = o.stage_was {
            applied.stage_changes += 1;
            t_cust.push(o.customer_id);
            t_from.push(was.map(|s| s.as_str()));
            t_to.push(o.stage.as_str());
            messages.push(message(
                tenant,
                "lifecycle.changed",
                o.customer_id,
                json!({"from": was.map(|s| s.as_str()), "to": o.stage.as_str(), "reason": reason}),
            )?);
        }
        let (score, is_qualified) = o
            .lead
            .as_ref()
            .map_or((stored.lead_score, stored.lead_qualified), |l| {
                (l.total, l.qualified)
            });
        if is_qualified != stored.lead_qualified {
            let kind = if is_qualified {
                "lead.qualified"
            } else {
                "lead.unqualified"
            };
            messages.push(message(
                tenant,
                kind,
                o.customer_id,
                json!({"lead_score": score}),
            )?);
        }
        ids.push(o.customer_id);
        stages.push(o.stage.as_str());
        stage_changed.push(o.stage_was.is_some());
        scores.push(score);
        qualified.push(is_qualified);
        rechecks.push(o.recheck_at);
    }
    if !in_seg.is_empty() && writes == Writes::Copy {
        let stamp = now.to_rfc3339();
        let mut text = String::with_capacity(in_seg.len() * 100);
        for (s, c) in in_seg.iter().zip(&in_cust) {
            copy_field(&mut text, tenant.as_str());
            text.push_str(&format!("\t{s}\t{c}\t{stamp}\n"));
        }
        let mut copy = conn
            .copy_in_raw(
                "COPY memberships (tenant_id, segment_id, customer_id, entered_at) FROM STDIN",
            )
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
    } else if !in_seg.is_empty() {
        sqlx::query(
            "INSERT INTO memberships (tenant_id, segment_id, customer_id, entered_at)
             SELECT $1, s, c, $4 FROM unnest($2::uuid[], $3::uuid[]) AS x(s, c) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(&in_seg)
        .bind(&in_cust)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if !out_seg.is_empty() {
        sqlx::query(
            "DELETE FROM memberships m USING unnest($2::uuid[], $3::uuid[]) AS x(s, c)
             WHERE m.tenant_id = $1 AND m.segment_id = x.s AND m.customer_id = x.c",
        )
        .bind(tenant.as_str())
        .bind(&out_seg)
        .bind(&out_cust)
        .execute(&mut *conn)
        .await?;
    }
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE customer_activity a SET stage = x.stage,
                 stage_since = CASE WHEN x.changed THEN $7 ELSE a.stage_since END,
                 lead_score = x.score, lead_qualified = x.qualified, recheck_at = x.recheck
             FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::float8[], $6::bool[], $8::timestamptz[])
                  AS x(id, stage, changed, score, qualified, recheck)
             WHERE a.tenant_id = $1 AND a.customer_id = x.id",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .bind(&stages)
        .bind(&stage_changed)
        .bind(&scores)
        .bind(&qualified)
        .bind(now)
        .bind(&rechecks)
        .execute(&mut *conn)
        .await?;
    }
    if !t_cust.is_empty() {
        sqlx::query(
            "INSERT INTO stage_transitions (tenant_id, customer_id, from_stage, to_stage, at)
             SELECT $1, c, f, t, $5 FROM unnest($2::uuid[], $3::text[], $4::text[]) AS x(c, f, t)",
        )
        .bind(tenant.as_str())
        .bind(&t_cust)
        .bind(&t_from)
        .bind(&t_to)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    enqueue_all(conn, &messages).await?;
    Ok(applied)
}
