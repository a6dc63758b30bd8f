//! Opportunities: open one in a pipeline, change it (stage, amount, owner, close date), win or
//! lose it (a lost reason of the pipeline's list is required).

use chrono::{DateTime, NaiveDate, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::pipeline::assign::is_owner;
use crate::domain::pipeline::pipelines::{is_currency, PipelineSpec};
use crate::interactions::interaction;
use crate::store::offers::{self, CustomerRef};
use crate::store::opportunities::{self as store, NewOpportunity, OpportunityRow, Update};
use crate::store::pipelines;

/// Largest amount.
pub const MAX_AMOUNT: f64 = 1e15;

/// Why an opportunity call failed.
#[derive(Debug, thiserror::Error)]
pub enum OpportunityError {
    /// A field is wrong: its JSON pointer and what to fix.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// Closing as lost needs a reason of the pipeline's list.
    #[error("a lost opportunity needs `lost_reason`, one of: {0}")]
    LostReason(String),
    /// No such opportunity.
    #[error("no such opportunity")]
    NotFound,
    /// No such pipeline (or the tenant has none).
    #[error("no such pipeline")]
    NoPipeline,
    /// The mirror knows no such customer.
    #[error("no such customer")]
    UnknownCustomer,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn invalid(path: &str, message: &str) -> OpportunityError {
    OpportunityError::Invalid(path.into(), message.into())
}

/// An opportunity to open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityRequest {
    /// The pipeline (default: the tenant's oldest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<Uuid>,
    /// The customer (merged ids find their survivor).
    pub customer_id: Uuid,
    /// What is being sold (1 to 200 characters).
    pub name: String,
    /// The amount, 0 or more (default 0), kept to the cent.
    #[serde(default)]
    pub amount: f64,
    /// ISO 4217 (default: the pipeline's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The stage to start in (default: the pipeline's first open stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Chance to win, 0 to 100 (default: the stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<u8>,
    /// When it is expected to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_close: Option<NaiveDate>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The customer's account (company), 1 to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

fn check_text(path: &str, v: Option<&str>) -> Result<(), OpportunityError> {
    match v {
        Some(t) if t.trim().is_empty() || t.chars().count() > 200 || t.contains('\0') => {
            Err(invalid(path, "1 to 200 characters, not blank"))
        }
        _ => Ok(()),
    }
}

fn check_amount(amount: f64) -> Result<(), OpportunityError> {
    if !(amount.is_finite() && (0.0..=MAX_AMOUNT).contains(&amount)) {
        return Err(invalid("/amount", "from 0 to 10^15"));
    }
    Ok(())
}

async fn pipeline(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Option<Uuid>,
) -> Result<(Uuid, PipelineSpec), OpportunityError> {
    let row = match id {
        Some(id) => pipelines::get(conn, tenant, id).await?,
        None => pipelines::list(conn, tenant).await?.into_iter().next(),
    };
    row.map(|r| (r.id, r.definition))
        .ok_or(OpportunityError::NoPipeline)
}

/// An opened opportunity and what to publish.
#[derive(Debug)]
pub struct Opened {
    /// The opportunity (the one `origin` opened before, when `created` is false).
    pub opportunity: OpportunityRow,
    /// Whether this call opened it.
    pub created: bool,
    /// `opportunity.created`, when opened.
    pub out: Vec<Outgoing>,
}

/// Opens an opportunity in its pipeline's first open stage (or the one named).
pub async fn open(
    conn: &mut PgConnection,
    tenant: &TenantId,
    r: &OpportunityRequest,
    lead: Option<Uuid>,
    origin: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Opened, OpportunityError> {
    check_text("/name", Some(&r.name))?;
    check_text("/account", r.account.as_deref())?;
    check_amount(r.amount)?;
    if r.owner.as_deref().is_some_and(|o| !is_owner(o)) {
        return Err(invalid("/owner", "1 to 200 characters, not blank"));
    }
    let (pipeline_id, spec) = pipeline(conn, tenant, r.pipeline_id).await?;
    let currency = r.currency.clone().unwrap_or_else(|| spec.currency.clone());
    if !is_currency(&currency) {
        return Err(invalid(
            "/currency",
            "an ISO 4217 code of three capital letters",
        ));
    }
    let stage = match &r.stage {
        Some(key) => spec.stage(key).map(|(_, s)| s),
        None => spec.first_open(),
    }
    .filter(|s| !s.closed())
    .ok_or_else(|| {
        invalid(
            "/stage",
            "an open stage (neither won nor lost) of the pipeline",
        )
    })?;
    let probability = r.probability.unwrap_or(stage.probability);
    if probability > 100 {
        return Err(invalid("/probability", "0 to 100"));
    }
    let (customer, _) = offers::profile(conn, tenant, &CustomerRef::Id(r.customer_id))
        .await?
        .ok_or(OpportunityError::UnknownCustomer)?;
    let new = NewOpportunity {
        id: Uuid::now_v7(),
        pipeline: pipeline_id,
        customer,
        account: r.account.as_deref(),
        name: &r.name,
        amount: r.amount,
        currency: &currency,
        stage: (&stage.key, probability),
        expected_close: r.expected_close,
        owner: r.owner.as_deref(),
        lead,
        origin,
    };
    let (opportunity, created) = store::open(conn, tenant, &new, actor, now).await?;
    let mut out = Vec::new();
    if created {
        out.push(interaction(
            tenant,
            "opportunity.created",
            opportunity.customer_id,
            json!({"opportunity_id": opportunity.id, "pipeline_id": opportunity.pipeline_id,
                   "name": opportunity.name, "stage": opportunity.stage,
                   "amount": opportunity.amount, "currency": opportunity.currency,
                   "owner": opportunity.owner, "lead_id": opportunity.lead_id}),
        )?);
    }
    Ok(Opened {
        opportunity,
        created,
        out,
    })
}

/// A change to an opportunity; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityPatch {
    /// Move to this stage (a won stage wins it, a lost one loses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Required to enter a lost stage: one of the pipeline's lost reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_reason: Option<String>,
    /// Chance to win, 0 to 100 (default on a stage change: the new stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<u8>,
    /// The amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    /// When it is expected to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_close: Option<NaiveDate>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What is being sold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// A changed opportunity, what to publish, and the journey trigger it fires (`opportunity.won`
/// or `opportunity.lost`) with its properties.
#[derive(Debug)]
pub struct Changed {
    /// After the change.
    pub opportunity: OpportunityRow,
    /// `opportunity.stage_changed`, then `opportunity.won` or `opportunity.lost`.
    pub out: Vec<Outgoing>,
    /// The event name and properties journeys may start on.
    pub trigger: Option<(&'static str, serde_json::Map<String, serde_json::Value>)>,
}

/// Changes an opportunity.
pub async fn change(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    p: &OpportunityPatch,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Changed, OpportunityError> {
    check_text("/name", p.name.as_deref())?;
    check_text("/account", p.account.as_deref())?;
    if let Some(a) = p.amount {
        check_amount(a)?;
    }
    if p.owner.as_deref().is_some_and(|o| !is_owner(o)) {
        return Err(invalid("/owner", "1 to 200 characters, not blank"));
    }
    if p.probability.is_some_and(|v| v > 100) {
        return Err(invalid("/probability", "0 to 100"));
    }
    let before = store::lock(conn, tenant, id)
        .await?
        .ok_or(OpportunityError::NotFound)?;
    let (_, spec) = pipeline(conn, tenant, Some(before.pipeline_id)).await?;
    let key = p.stage.as_deref().unwrap_or(&before.stage);
    let (_, stage) = spec
        .stage(key)
        .ok_or_else(|| invalid("/stage", &format!("no stage `{key}` in the pipeline")))?;
    let moved = stage.key != before.stage;
    let status = if stage.won {
        "won"
    } else if stage.lost {
        "lost"
    } else {
        "open"
    };
    let lost_reason = if stage.lost {
        let given = p.lost_reason.as_deref().or(if moved {
            None
        } else {
            before.lost_reason.as_deref()
        });
        match given {
            Some(r) if spec.lost_reasons.iter().any(|x| x == r) => Some(r),
            _ => return Err(OpportunityError::LostReason(spec.lost_reasons.join(", "))),
        }
    } else {
        None
    };
    let probability = p.probability.unwrap_or(if moved {
        stage.probability
    } else {
        u8::try_from(before.probability).unwrap_or(0)
    });
    let u = Update {
        stage: &stage.key,
        status,
        probability: if stage.won {
            100
        } else if stage.lost {
            0
        } else {
            probability
        },
        lost_reason,
        amount: p.amount.unwrap_or(before.amount),
        expected_close: p.expected_close.or(before.expected_close),
        owner: p.owner.as_deref().or(before.owner.as_deref()),
        name: p.name.as_deref().unwrap_or(&before.name),
        account: p.account.as_deref().or(before.account.as_deref()),
    };
    let after = store::update(conn, tenant, &before, &u, actor, now).await?;
    let mut out = Vec::new();
    let mut trigger = None;
    if moved {
        let base = json!({"opportunity_id": after.id, "pipeline_id": after.pipeline_id,
            "name": after.name, "from": before.stage, "to": after.stage,
            "amount": after.amount, "currency": after.currency, "owner": after.owner,
            "lost_reason": after.lost_reason,
            "seconds_in_stage": (now - before.stage_since).num_seconds()});
        out.push(interaction(
            tenant,
            "opportunity.stage_changed",
            after.customer_id,
            base.clone(),
        )?);
        if after.status != before.status && after.status != "open" {
            let kind = if after.status == "won" {
                "opportunity.won"
            } else {
                "opportunity.lost"
            };
            out.push(interaction(tenant, kind, after.customer_id, base.clone())?);
            if let serde_json::Value::Object(props) = base {
                trigger = Some((kind, props));
            }
        }
    }
    Ok(Changed {
        opportunity: after,
        out,
        trigger,
    })
}
