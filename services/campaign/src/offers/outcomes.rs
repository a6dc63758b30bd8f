//! Outcomes of a decision's offers (impression, click, accept, reject), reported through the
//! API or tracked as events (`Offer Viewed`, `Offer Clicked`, `Offer Accepted`,
//! `Offer Rejected` with `decision_id` and `offer_id`). Each is recorded once per kind; a new
//! one feeds the caps, the budget and the propensity model, is published as `offer.<kind>` on
//! `crm.interactions.v1` (the timeline), and an acceptance of an offer with a loyalty reward
//! sends an `Offer Reward Granted` event on `crm.ingest.v1` for the programme to earn on.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Identity, TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::interactions::{interaction, SOURCE};
use crate::store::decisions::{self, OutcomeKind};
use crate::store::{contacts, offers};

/// An outcome as a caller reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    /// One of the decision's offers.
    pub offer_id: Uuid,
    /// What happened.
    pub kind: OutcomeKind,
    /// When (default: now); not in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// Why an outcome was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such decision for this tenant.
    #[error("no such decision")]
    UnknownDecision,
    /// The offer was not part of the decision's answer.
    #[error("the offer was not offered by this decision")]
    NotOffered,
    /// The time is later than now.
    #[error("`at` is in the future")]
    Future,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What recording did.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// Whether it was new (a repeated report changes nothing).
    pub recorded: bool,
    /// Events to publish in the same transaction.
    pub out: Vec<Outgoing>,
}

/// The outcome a tracked event reports, if it is one (`Offer Viewed` … with `decision_id` and
/// `offer_id` properties).
pub fn from_event(name: &str, properties: &Map<String, Value>) -> Option<(Uuid, OutcomeReport)> {
    let kind = match name {
        "Offer Viewed" => OutcomeKind::Impression,
        "Offer Clicked" => OutcomeKind::Click,
        "Offer Accepted" => OutcomeKind::Accept,
        "Offer Rejected" | "Offer Dismissed" => OutcomeKind::Reject,
        _ => return None,
    };
    let id = |k: &str| {
        properties
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    Some((
        id("decision_id")?,
        OutcomeReport {
            offer_id: id("offer_id")?,
            kind,
            at: None,
        },
    ))
}

/// Records `report` for `decision` (in the caller's transaction), with the events to publish.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    decision: Uuid,
    report: &OutcomeReport,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Reported, ReportError> {
    let at = report.at.unwrap_or(now);
    if at > now + chrono::Duration::seconds(60) {
        return Err(ReportError::Future);
    }
    let (d, cohort) = decisions::get(&mut *conn, tenant, decision)
        .await?
        .ok_or(ReportError::UnknownDecision)?;
    if !d.offers.iter().any(|o| o.offer_id == report.offer_id) {
        return Err(ReportError::NotOffered);
    }
    let offer = offers::get(&mut *conn, tenant, report.offer_id).await?;
    let cost = offer.as_ref().map_or(0.0, |o| o.definition.cost);
    let customer = d.customer_id;
    let mut out = Vec::new();
    // A click or an acceptance implies the offer was seen: the model's evidence stays
    // consistent (never more acceptances than impressions) whatever the caller reports.
    let mut kinds = Vec::new();
    if matches!(report.kind, OutcomeKind::Click | OutcomeKind::Accept) {
        kinds.push((OutcomeKind::Impression, "implied"));
    }
    kinds.push((report.kind, source));
    let mut recorded = false;
    for (kind, src) in kinds {
        let fresh = decisions::record_outcome(
            &mut *conn,
            tenant,
            decision,
            customer,
            &cohort,
            report.offer_id,
            kind,
            cost,
            src,
            at,
        )
        .await?;
        if !fresh {
            continue;
        }
        recorded = kind == report.kind;
        out.push(interaction(
            tenant,
            event_kind(kind),
            customer,
            json!({"decision_id": decision, "offer_id": report.offer_id,
                   "placement": d.placement, "source": src}),
        )?);
        if kind == OutcomeKind::Accept {
            if let Some(reward) = offer.as_ref().and_then(|o| o.definition.reward.clone()) {
                let reach = contacts::reach(&mut *conn, tenant, customer).await?;
                let props = json!({"points": reward.points, "reward_key": reward.reward_key,
                                   "decision_id": decision, "offer_id": report.offer_id});
                if let Some(m) = reward_event(tenant, decision, report.offer_id, reach, props)? {
                    out.push(m);
                }
            }
        }
    }
    Ok(Reported { recorded, out })
}

/// The interaction kind of an outcome.
pub fn event_kind(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Impression => "offer.impression",
        OutcomeKind::Click => "offer.clicked",
        OutcomeKind::Accept => "offer.accepted",
        OutcomeKind::Reject => "offer.rejected",
    }
}

/// `Offer Reward Granted` on `crm.ingest.v1`, keyed by decision and offer (identity dedupes a
/// replay), for a customer with an identifier ingest accepts.
fn reward_event(
    tenant: &TenantId,
    decision: Uuid,
    offer: Uuid,
    reach: Option<contacts::Reach>,
    properties: Value,
) -> Result<Option<Outgoing>, sqlx::Error> {
    let Some(reach) = reach.filter(|r| r.user_id.is_some() || r.anonymous_id.is_some()) else {
        tracing::warn!(%decision, %offer, "the customer has no user_id or anonymous_id: the reward is not sent");
        return Ok(None);
    };
    let now = Utc::now();
    let envelope = Envelope {
        id: format!("offer-reward:{decision}:{offer}"),
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some("Offer Reward Granted".to_owned()),
        occurred_at: now,
        received_at: now,
        source: SOURCE.to_owned(),
        identity: Identity {
            user_id: reach.user_id,
            anonymous_id: reach.anonymous_id,
            ..Identity::default()
        },
        customer_id: None,
        traits: Map::new(),
        properties: properties.as_object().cloned().unwrap_or_default(),
        context: Map::new(),
    };
    Outgoing::new(Topic::Ingest, &envelope)
        .map(Some)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_offer_events_are_outcomes() {
        let d = Uuid::from_u128(1);
        let o = Uuid::from_u128(2);
        let props = json!({"decision_id": d, "offer_id": o});
        let props = props.as_object().unwrap();
        let (decision, r) = from_event("Offer Accepted", props).unwrap();
        assert_eq!((decision, r.offer_id, r.kind), (d, o, OutcomeKind::Accept));
        assert_eq!(
            from_event("Offer Viewed", props).unwrap().1.kind,
            OutcomeKind::Impression
        );
        assert!(from_event("Order Completed", props).is_none());
        let partial = json!({"decision_id": d}).as_object().cloned().unwrap();
        assert!(from_event("Offer Clicked", &partial).is_none());
    }
}
