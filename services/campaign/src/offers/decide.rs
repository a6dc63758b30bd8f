//! `POST /decisions`: one decision for one customer and placement. It reads the customer's
//! decision profile from the part's own mirror (never another part), the tenant's catalogue
//! and running experiments from memory, and the counts arbitration needs in one query; it
//! stores the answer (and the customer's exposure to the placement's experiment) in one
//! transaction. A decision is not published: it is not a contact (its impression is, and is
//! published as `offer.impression`); docs/architecture.md says why.

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::Catalogue;
use crate::domain::experiments::definition::{self, Subject};
use crate::domain::offers::decide::{arbitrate, eligible, in_control};
use crate::store::decisions::{self, DecisionRecord, ExperimentPlace};
use crate::store::experiments;
use crate::store::offers::{self, CustomerRef};

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
    let (customer, profile) = offers::profile(&mut conn, tenant, &request.customer)
        .await?
        .ok_or(DecideError::UnknownCustomer)?;
    let loaded = catalogue.load(&mut conn, tenant).await?;
    let settings = loaded.settings;
    let decision = Uuid::now_v7();
    let candidates = eligible(
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
    let mut candidates = candidates;
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
            candidates.retain(|(o, _)| o.fallback || only.contains(&o.id));
        }
        place = Some((*id, arm, arm.map(|i| spec.arms[i].key.clone())));
    }
    let arbitrated: Vec<Uuid> = candidates
        .iter()
        .filter(|(o, _)| !o.fallback)
        .map(|(o, _)| o.id)
        .collect();
    let evidence = if control || held_out {
        Default::default()
    } else {
        let window = now - Duration::days(i64::from(settings.arbitration.window_days));
        decisions::evidence(
            &mut conn,
            tenant,
            customer,
            profile.cohort(),
            &arbitrated,
            window,
        )
        .await?
    };
    let limit = usize::try_from(request.limit).unwrap_or(1);
    let decided = arbitrate(
        &candidates,
        &evidence,
        &settings,
        control || held_out,
        limit,
        decision,
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
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // The decision is a record of an answer already computed: `decisions::insert` lets its
    // commit skip the WAL flush (a crash of PostgreSQL itself may lose the last fraction of a
    // second of decisions; a crash of this part loses nothing, the commit is in PostgreSQL).
    // Outcomes, which spend caps and budgets, keep the synchronous commit. docs/campaign.md.
    // A merge of this customer committing meanwhile would leave the decision (and the
    // exposure) under the merged id: hold the contact, and answer a retryable conflict if it
    // went since it was read.
    if !decisions::insert(&mut tx, tenant, profile.cohort(), &record).await? {
        return Err(DecideError::Moved);
    }
    if let Some((id, arm, _)) = place {
        experiments::expose(&mut tx, tenant, id, customer, arm, now).await?;
    }
    tx.commit().await?;
    Ok(record)
}
