//! `POST /decisions`: one decision for one customer and placement. It reads the tenant's
//! catalogue, running experiments and offer statistics from memory, the customer's decision
//! profile from the part's own mirror (never another part) with the counts that must be exact
//! (caps, budgets, suppression) in one query, and stores the answer (and the customer's
//! exposure to the placement's experiment) in one statement: two round trips to PostgreSQL. A decision is not published: it is not a contact (its impression is, and is
//! published as `offer.impression`); docs/architecture.md says why.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::Catalogue;
use crate::domain::experiments::definition::{self, Subject};
use crate::domain::offers::decide::{arbitrate, eligible, in_control, reasons, Evidence};
use crate::store::decisions::{self, DecisionRecord, ExperimentPlace};
use crate::store::offers::CustomerRef;

/// Most offers one decision may ask for.
pub const MAX_LIMIT: u32 = 20;
/// Largest context, in bytes of JSON.
pub const MAX_CONTEXT: usize = 4 * 1024;

/// What a caller asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Who: `{"id": "<uuid>"}`, `{"user_id": "…"}`, `{"anonymous_id": "…"}` or
    /// `{"email": "…"}`.
    pub customer: CustomerRef,
    /// Where the offers will be shown.
    pub placement: String,
    /// Fields eligibility rules may test with `context` (`channel`, `page`, …); at most 4 KiB.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// How many offers, 1 to 20 (default 1).
    #[serde(default = "one")]
    pub limit: u32,
}

fn one() -> u32 {
    1
}

/// Why no decision was made.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The request is malformed; the pointer names the field.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The mirror has no such customer (or it was erased).
    #[error("no customer of this tenant matches")]
    UnknownCustomer,
    /// The customer was merged or erased while the decision was made; asking again decides
    /// for the survivor.
    #[error("the customer was merged or erased meanwhile")]
    Moved,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Checks a request's bounds.
pub fn check(r: &DecisionRequest) -> Result<(), DecideError> {
    let p = &r.placement;
    if p.is_empty()
        || p.len() > 100
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    {
        return Err(DecideError::Invalid(
            "/placement",
            "1 to 100 characters of letters, digits, `_`, `-`, `.` and `/`".into(),
        ));
    }
    if crate::domain::offers::catalogue::has_nul(r) {
        return Err(DecideError::Invalid(
            "",
            "text may not contain the NUL character (\\u0000)".into(),
        ));
    }
    if !(1..=MAX_LIMIT).contains(&r.limit) {
        return Err(DecideError::Invalid("/limit", format!("1 to {MAX_LIMIT}")));
    }
    if serde_json::to_vec(&r.context).map_or(usize::MAX, |v| v.len()) > MAX_CONTEXT {
        return Err(DecideError::Invalid(
            "/context",
            format!("at most {MAX_CONTEXT} bytes of JSON"),
        ));
    }
    Ok(())
}

/// Decides, stores and announces one decision.
pub async fn decide(
    pool: &PgPool,
    catalogue: &Catalogue,
    tenant: &TenantId,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<DecisionRecord, DecideError> {
    check(&request)?;
    let mut conn = pool.acquire().await?;
    let loaded = catalogue.load(&mut conn, tenant).await?;
    let stats = catalogue.stats(&mut conn, tenant).await?;
    let settings = &loaded.settings;
    // Everyone's impressions and the spent budget are read exactly, for the offers of the
    // placement that have a global cap or a budget; the customer's own counts come with them.
    let capped: Vec<Uuid> = loaded
        .offers
        .iter()
        .filter(|o| o.placements.contains(&request.placement))
        .filter(|o| o.global_cap.is_some() || o.budget.is_some())
        .map(|o| o.id)
        .collect();
    let window = now - Duration::days(i64::from(settings.arbitration.window_days));
    let (customer, profile, counts) =
        decisions::profile_and_counts(&mut conn, tenant, &request.customer, &capped, window)
            .await?
            .ok_or(DecideError::UnknownCustomer)?;
    let decision = Uuid::now_v7();
    let mut candidates = eligible(
        &loaded.offers,
        &request.placement,
        &profile,
        &request.context,
        now,
    );
    let control = in_control(tenant.as_str(), customer, settings.control_percent);
    // The experiment on the placement, if one runs: its holdout gets the fallback, an arm
    // with offers offers only those. The decisions' control group is never exposed.
    let mut place = None;
    let mut held_out = false;
    let experiment = loaded.experiments.iter().find(|(_, spec)| {
        matches!(&spec.subject, Subject::Offers { placement } if *placement == request.placement)
    });
    if let (Some((id, spec)), false) = (experiment, control) {
        let arm = definition::place(*id, spec, customer);
        held_out = arm.is_none();
        if let Some(only) = arm
            .map(|i| &spec.arms[i].offer_ids)
            .filter(|o| !o.is_empty())
        {
            candidates.retain(|o| o.fallback || only.contains(&o.id));
        }
        place = Some((*id, arm, arm.map(|i| spec.arms[i].key.clone())));
    }
    let cohort = profile.cohort();
    let evidence: HashMap<Uuid, Evidence> = candidates
        .iter()
        .filter(|o| !o.fallback)
        .map(|o| {
            let (shown, accepted) = stats
                .get(&(o.id, cohort.to_owned()))
                .copied()
                .unwrap_or_default();
            let (customer_impressions, recent_impressions, recent_rejections) =
                counts.mine.get(&o.id).copied().unwrap_or_default();
            let (impressions, spent) = counts.totals.get(&o.id).copied().unwrap_or_default();
            let e = Evidence {
                shown,
                accepted,
                customer_impressions,
                recent_impressions,
                recent_rejections,
                impressions,
                spent,
            };
            (o.id, e)
        })
        .collect();
    let limit = usize::try_from(request.limit).unwrap_or(1);
    let decided = arbitrate(
        &candidates,
        &evidence,
        settings,
        control || held_out,
        limit,
        decision,
        |o| reasons(o, &profile, &request.context),
    );
    let record = DecisionRecord {
        decision_id: decision,
        customer_id: customer,
        placement: request.placement,
        context: request.context,
        offers: decided.offers,
        excluded: decided.excluded,
        control,
        fallback_used: decided.fallback_used,
        decided_at: now,
        expires_at: now + Duration::seconds(i64::from(settings.ttl_seconds)),
        experiment: place.as_ref().map(|(id, arm, key)| ExperimentPlace {
            experiment_id: *id,
            arm: key.clone(),
            holdout: arm.is_none(),
        }),
    };
    // A merge of this customer committing meanwhile would leave the decision (and the
    // exposure) under the merged id: the statement holds the contact, and the answer is a
    // retryable conflict if it went since it was read.
    let exposure = place.map(|(id, arm, _)| (id, arm));
    if !decisions::insert(&mut conn, tenant, profile.cohort(), &record, exposure).await? {
        return Err(DecideError::Moved);
    }
    Ok(record)
}
