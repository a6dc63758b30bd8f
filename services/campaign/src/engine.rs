//! Advancing an instance: runs nodes from where the instance stands until it must wait or
//! ends, inside the caller's transaction. Each node's effect is returned once (its step key is
//! recorded in the same transaction), so the caller puts the effects in its outbox in that
//! transaction and a retried advance after a crash returns nothing twice. Journeys have no
//! loops (checked when saved), so a node runs at most once per instance: occurrence 1.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journeys::step::{step, Effect, Facts, Step};
use crate::domain::journeys::Journey;
use crate::store::instances;

/// Where an advance left the instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Waiting at `node` until the timer fires.
    Waiting {
        /// The node it waits at.
        node: String,
        /// When its timer fires.
        until: DateTime<Utc>,
    },
    /// Ended.
    Exited,
}

/// One instance, as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The instance.
    pub id: Uuid,
    /// The journey (salt of its splits).
    pub journey_id: Uuid,
    /// The customer.
    pub customer: Uuid,
}

/// Runs `journey` for the instance from `node`; the effects to apply (each with the node that
/// made it, part of its step key) and where it stopped.
pub async fn advance(
    conn: &mut PgConnection,
    instance: Instance<'_>,
    journey: &Journey,
    mut node: String,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Result<(Vec<(String, Effect)>, Outcome), sqlx::Error> {
    let mut effects = Vec::new();
    let (tenant, id) = (instance.tenant, instance.id);
    // A journey has at most `nodes.len()` nodes on any path.
    for _ in 0..=journey.nodes.len() {
        match step(
            journey,
            instance.journey_id,
            &node,
            instance.customer,
            facts,
            now,
        ) {
            Step::Go { effect, arm, next } => {
                if instances::first_step(conn, tenant, id, &node, 1).await? {
                    effects.extend(effect.map(|e| (node.clone(), e)));
                }
                instances::move_to(conn, tenant, id, &next, arm.as_deref()).await?;
                node = next;
            }
            Step::Timer { at, next } if at <= now => {
                instances::move_to(conn, tenant, id, &next, None).await?;
                node = next;
            }
            Step::Timer { at, next } => {
                instances::schedule(conn, tenant, id, at, &next).await?;
                return Ok((effects, Outcome::Waiting { node, until: at }));
            }
            Step::Await {
                deadline,
                timeout_next,
                ..
            } => {
                instances::schedule(conn, tenant, id, deadline, &timeout_next).await?;
                return Ok((
                    effects,
                    Outcome::Waiting {
                        node,
                        until: deadline,
                    },
                ));
            }
            Step::Exit => {
                instances::exit(conn, tenant, id, "completed", now).await?;
                return Ok((effects, Outcome::Exited));
            }
        }
    }
    // Unreachable for a checked journey (no loops); end the instance rather than spin.
    instances::exit(conn, tenant, id, "loop", now).await?;
    Ok((effects, Outcome::Exited))
}
