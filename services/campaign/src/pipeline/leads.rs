//! Leads: open (assigned by the tenant's rules, with a priority), change status or owner,
//! convert into an opportunity.

use chrono::{DateTime, NaiveDate, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::opportunities::{self, OpportunityError, OpportunityRequest};
use crate::domain::offers::eligibility::DecisionProfile;
use crate::domain::pipeline::assign::{self, round_robin};
use crate::domain::pipeline::leads::{check_move, LeadSource, LeadStatus, MoveError};
use crate::domain::pipeline::priority::{priority, Priority, PriorityInputs};
use crate::domain::pipeline::settings::LeadSettings;
use crate::interactions::interaction;
use crate::store::leads::{self as store, Change, LeadRow, NewLead};
use crate::store::offers::{self, CustomerRef};
use crate::store::opportunities::OpportunityRow;

/// Why a lead call failed.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// A field is wrong: its JSON pointer and what to fix.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// No such lead.
    #[error("no such lead")]
    NotFound,
    /// The mirror knows no such customer.
    #[error("no such customer")]
    UnknownCustomer,
    /// The move is not allowed.
    #[error(transparent)]
    Move(#[from] MoveError),
    /// Converting failed.
    #[error(transparent)]
    Convert(#[from] OpportunityError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the priority of a customer's lead is computed from, besides the lead itself.
struct Facts {
    profile: DecisionProfile,
    last_event_at: Option<DateTime<Utc>>,
    predicted_value: Option<f64>,
}

async fn facts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Option<(Uuid, Facts)>, sqlx::Error> {
    let Some((id, profile)) = offers::profile(conn, tenant, &CustomerRef::Id(customer)).await?
    else {
        return Ok(None);
    };
    let (last_event_at, predicted_value): (Option<DateTime<Utc>>, Option<f64>) = sqlx::query_as(
        "SELECT last_event_at, predicted_value FROM contacts WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(Some((
        id,
        Facts {
            profile,
            last_event_at,
            predicted_value,
        },
    )))
}

fn inputs(
    f: &Facts,
    status_since: DateTime<Utc>,
    waiting: Option<DateTime<Utc>>,
) -> PriorityInputs {
    PriorityInputs {
        lead_score: f.profile.lead_score,
        predicted_value: f.predicted_value,
        last_interaction: f.last_event_at,
        status_since,
        waiting_since: waiting,
    }
}

/// The lead's priority now, explained.
pub async fn explain(
    conn: &mut PgConnection,
    tenant: &TenantId,
    lead: &LeadRow,
    now: DateTime<Utc>,
) -> Result<Priority, sqlx::Error> {
    let settings = store::settings(conn, tenant).await?;
    let facts = facts(conn, tenant, lead.customer_id).await?;
    let f = facts.map(|(_, f)| f).unwrap_or(Facts {
        profile: DecisionProfile::default(),
        last_event_at: None,
        predicted_value: None,
    });
    Ok(priority(
        &settings.priority,
        &inputs(&f, lead.status_since, lead.waiting_since),
        now,
    ))
}

/// A lead to open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadRequest {
    /// The customer (merged ids find their survivor).
    pub customer_id: Uuid,
    /// Where it came from (default `api`).
    #[serde(default = "api")]
    pub source: LeadSource,
    /// The campaign it is attributed to (1 to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Its owner; absent: the tenant's assignment rules choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn api() -> LeadSource {
    LeadSource::Api
}

/// An opened lead: the lead, whether it is new, and what to publish.
#[derive(Debug)]
pub struct Opened {
    /// The lead (an existing open one when `created` is false).
    pub lead: LeadRow,
    /// Whether this call opened it.
    pub created: bool,
    /// `lead.created`, when opened.
    pub out: Vec<Outgoing>,
}

/// Opens a lead for the customer unless one from the source is open (or `origin` opened one),
/// assigned by the tenant's rules unless the request names an owner. `None` when the
/// tenant's settings turn score leads off.
pub async fn open(
    conn: &mut PgConnection,
    tenant: &TenantId,
    request: &LeadRequest,
    origin: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<Opened>, LeadError> {
    if let Some(c) = &request.campaign {
        if c.trim().is_empty() || c.chars().count() > 200 || c.contains('\0') {
            return Err(LeadError::Invalid(
                "/campaign".into(),
                "1 to 200 characters, not blank".into(),
            ));
        }
    }
    if let Some(o) = &request.owner {
        if !assign::is_owner(o) {
            return Err(LeadError::Invalid(
                "/owner".into(),
                "1 to 200 characters, not blank".into(),
            ));
        }
    }
    let settings = store::settings(conn, tenant).await?;
    if request.source == LeadSource::Score && !settings.leads_from_score {
        return Ok(None);
    }
    let (customer, facts) = facts(conn, tenant, request.customer_id)
        .await?
        .ok_or(LeadError::UnknownCustomer)?;
    let (owner, rule) = match &request.owner {
        Some(o) => (Some(o.clone()), None),
        None => assign_owner(conn, tenant, &settings, &facts.profile).await?,
    };
    let score = priority(&settings.priority, &inputs(&facts, now, Some(now)), now).score;
    let new = NewLead {
        id: Uuid::now_v7(),
        customer,
        source: request.source,
        campaign: request.campaign.as_deref(),
        origin,
        owner: owner.as_deref().map(|o| (o, rule.as_deref())),
        priority: score,
    };
    let (lead, created) = store::open(conn, tenant, &new, actor, now).await?;
    let mut out = Vec::new();
    if created {
        out.push(interaction(
            tenant,
            "lead.created",
            lead.customer_id,
            json!({"lead_id": lead.id, "source": lead.source, "campaign": lead.campaign,
                   "status": lead.status, "owner": lead.owner, "assigned_by": lead.assigned_by,
                   "priority": lead.priority}),
        )?);
    }
    Ok(Some(Opened { lead, created, out }))
}

/// The owner the tenant's rules give a lead of this customer, and the rule's name; `None`
/// when no rule applies or the rule's team is at capacity.
async fn assign_owner(
    conn: &mut PgConnection,
    tenant: &TenantId,
    settings: &LeadSettings,
    profile: &DecisionProfile,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    // Saved settings were checked; a rule that no longer parses applies to nobody.
    let Ok(conditions) = assign::check(&settings.assignment) else {
        return Ok((None, None));
    };
    let Some(i) = assign::rule_for(&conditions, profile) else {
        return Ok((None, None));
    };
    let rule = &settings.assignment[i];
    let last = store::last_turn(conn, tenant, &rule.name).await?;
    let open = store::open_counts(conn, tenant, &rule.team).await?;
    let Some(owner) = round_robin(&rule.team, last.as_deref(), &open, rule.capacity) else {
        tracing::info!(rule = %rule.name, "every owner of the rule's team is at capacity; the lead stays new");
        return Ok((None, Some(rule.name.clone())));
    };
    store::take_turn(conn, tenant, &rule.name, owner).await?;
    Ok((Some(owner.to_owned()), Some(rule.name.clone())))
}

/// A change of a lead's status or owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    /// The new status (`new`, `assigned`, `working`, `disqualified`; conversion has its own
    /// route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LeadStatus>,
    /// The new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why it is disqualified: one of the tenant's disqualify reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A changed lead and what to publish.
#[derive(Debug)]
pub struct Changed {
    /// The lead after the change.
    pub lead: LeadRow,
    /// `lead.status_changed` when the status or the owner changed.
    pub out: Vec<Outgoing>,
}

/// Changes a lead's status or owner.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    patch: &LeadPatch,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Changed, LeadError> {
    if let Some(o) = &patch.owner {
        if !assign::is_owner(o) {
            return Err(LeadError::Invalid(
                "/owner".into(),
                "1 to 200 characters, not blank".into(),
            ));
        }
    }
    let before = store::lock(conn, tenant, id)
        .await?
        .ok_or(LeadError::NotFound)?;
    let owner = patch.owner.clone().or_else(|| before.owner.clone());
    // Naming an owner for a new lead assigns it.
    let to = patch.status.unwrap_or(match (before.status, &patch.owner) {
        (LeadStatus::New, Some(_)) => LeadStatus::Assigned,
        (s, _) => s,
    });
    let settings = store::settings(conn, tenant).await?;
    check_move(
        before.status,
        to,
        owner.as_deref(),
        patch.reason.as_deref(),
        &settings.disqualify_reasons,
    )?;
    apply(
        conn,
        tenant,
        &before,
        to,
        owner.as_deref(),
        patch.reason.as_deref(),
        None,
        &settings,
        actor,
        now,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: &LeadRow,
    to: LeadStatus,
    owner: Option<&str>,
    reason: Option<&str>,
    opportunity: Option<Uuid>,
    settings: &LeadSettings,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Changed, LeadError> {
    let facts = facts(conn, tenant, before.customer_id).await?;
    let waiting = if to.untouched() {
        before.waiting_since
    } else {
        None
    };
    let since = if to == before.status {
        before.status_since
    } else {
        now
    };
    let score = facts.map_or(0.0, |(_, f)| {
        priority(&settings.priority, &inputs(&f, since, waiting), now).score
    });
    let c = Change {
        status: to,
        owner,
        reason: reason.filter(|_| to == LeadStatus::Disqualified),
        opportunity,
        priority: score,
    };
    let lead = store::change(conn, tenant, before, &c, actor, now).await?;
    let mut out = Vec::new();
    if lead.status != before.status || lead.owner != before.owner {
        out.push(interaction(
            tenant,
            "lead.status_changed",
            lead.customer_id,
            json!({"lead_id": lead.id, "from": before.status, "to": lead.status,
                   "owner": lead.owner, "reason": lead.disqualify_reason,
                   "opportunity_id": lead.opportunity_id}),
        )?);
    }
    Ok(Changed { lead, out })
}

/// What converting a lead creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    /// The pipeline (default: the tenant's oldest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<Uuid>,
    /// What is being sold.
    pub name: String,
    /// The amount (default 0).
    #[serde(default)]
    pub amount: f64,
    /// ISO 4217 (default: the pipeline's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// When it is expected to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_close: Option<NaiveDate>,
    /// The customer's account (company).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// A converted lead and its opportunity.
#[derive(Debug)]
pub struct Converted {
    /// The lead, now `converted`.
    pub lead: LeadRow,
    /// The opportunity it became.
    pub opportunity: OpportunityRow,
    /// `lead.status_changed` and `opportunity.created`.
    pub out: Vec<Outgoing>,
}

/// Converts an open lead: opens its opportunity (owned by the lead's owner) and closes the
/// lead as `converted`. Converting again answers the same opportunity.
pub async fn convert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    request: &ConvertRequest,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Converted, LeadError> {
    let before = store::lock(conn, tenant, id)
        .await?
        .ok_or(LeadError::NotFound)?;
    let origin = format!("lead:{id}");
    if before.status == LeadStatus::Disqualified {
        return Err(MoveError::Closed(before.status.as_str()).into());
    }
    let o = OpportunityRequest {
        pipeline_id: request.pipeline_id,
        customer_id: before.customer_id,
        name: request.name.clone(),
        amount: request.amount,
        currency: request.currency.clone(),
        stage: None,
        probability: None,
        expected_close: request.expected_close,
        owner: before.owner.clone(),
        account: request.account.clone(),
    };
    let opened = opportunities::open(conn, tenant, &o, Some(id), Some(&origin), actor, now).await?;
    let mut out = opened.out;
    let lead = if before.status == LeadStatus::Converted {
        before
    } else {
        let settings = store::settings(conn, tenant).await?;
        let changed = apply(
            conn,
            tenant,
            &before,
            LeadStatus::Converted,
            before.owner.as_deref(),
            None,
            Some(opened.opportunity.id),
            &settings,
            actor,
            now,
        )
        .await?;
        out.extend(changed.out);
        changed.lead
    };
    Ok(Converted {
        lead,
        opportunity: opened.opportunity,
        out,
    })
}

/// Recomputes the priority of up to `batch` open leads whose priority is older than `every`
/// (it moves with time: recency decays, status age grows, an SLA is breached), in one
/// transaction; how many.
pub async fn refresh_priorities(
    pool: &sqlx::PgPool,
    every: chrono::Duration,
    batch: i64,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stale = store::stale_priorities(&mut tx, now - every, batch).await?;
    let mut settings: std::collections::HashMap<String, LeadSettings> = Default::default();
    let mut rows = Vec::with_capacity(stale.len());
    for s in stale {
        if !settings.contains_key(&s.tenant_id) {
            let loaded = match TenantId::parse(&s.tenant_id) {
                Ok(t) => store::settings(&mut tx, &t).await?,
                Err(_) => LeadSettings::default(),
            };
            settings.insert(s.tenant_id.clone(), loaded);
        }
        let weights = settings
            .get(&s.tenant_id)
            .map(|t| t.priority.clone())
            .unwrap_or_default();
        let x = PriorityInputs {
            lead_score: s.lead_score,
            predicted_value: s.predicted_value,
            last_interaction: s.last_event_at,
            status_since: s.status_since,
            waiting_since: s.waiting_since,
        };
        rows.push((s.tenant_id, s.id, priority(&weights, &x, now).score));
    }
    store::store_priorities(&mut tx, &rows, now).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// Runs [`refresh_priorities`] until `shutdown`: at once while there are stale leads, every
/// `idle` otherwise.
pub async fn run_refresh(
    pool: sqlx::PgPool,
    every: chrono::Duration,
    idle: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    const BATCH: i64 = 500;
    loop {
        let done = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = refresh_priorities(&pool, every, BATCH, Utc::now()) => r,
        };
        match done {
            Ok(n) if i64::try_from(n).unwrap_or(0) >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "refreshing lead priorities failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
