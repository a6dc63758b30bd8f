//! Answers through the gateway's public `/s/{token}` route: no account, the signed link is the
//! authority. An answer is checked against its survey, recorded once per key (a personal link
//! takes one answer; a public form posted twice with the same `response_id` records one), and
//! published as a `Survey Answered` event on `crm.ingest.v1` in the same transaction: identity
//! puts it on the customer's timeline and writes the mapped answers as traits, each by its
//! rule (`context.trait_rules`).
//!
//! A personal link's answer is the customer's (verified): its event carries the identifiers
//! identity already knows the customer by. A public link's answer is anonymous: it is known by
//! the email typed into it, else by the visitor's anonymous id, never by both (a typed email
//! must not tie someone else's profile to this browser), and its event says `verified: false`,
//! so identity never lets it replace a verified trait.
//!
//! Spam: the form's honeypot field (`website`, hidden from people) filled means a robot; the
//! answer is dropped and the robot told it was taken. The gateway limits the route's rate per
//! client address.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Identity, TenantId, Topic};
use crm_kafka::outbox::{self, Outgoing};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::channels::deliver::Tracking;
use crate::domain::surveys::answer::{check, nps_category, Checked};
use crate::domain::surveys::definition::{Definition, Hidden, Question};
use crate::domain::surveys::links::{self, LinkClaims};
use crate::interactions::SOURCE;
use crate::store::contacts;
use crate::store::surveys::{self as store, NewAnswer, SurveyRow};

/// The event an answer becomes.
pub const EVENT: &str = "Survey Answered";

/// What a respondent posts.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Values by question id.
    #[serde(default)]
    pub answers: Map<String, Value>,
    /// Hidden fields by id.
    #[serde(default)]
    pub hidden: Map<String, Value>,
    /// A public form's id for this response (1 to 100 of `A-Za-z0-9_-`): a retried post
    /// records one answer.
    pub response_id: Option<String>,
    /// The visitor's anonymous id on the site (public links; not used when an email is given).
    pub anonymous_id: Option<String>,
    /// The honeypot: a field people never see, so never fill.
    pub website: Option<String>,
}

/// The survey as a respondent sees it (no trait mappings).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicSurvey {
    /// The survey's name.
    pub name: String,
    /// Its questions.
    pub questions: Vec<Question>,
    /// The ids of its hidden fields.
    pub hidden: Vec<String>,
    /// Whether the link is personal (answered once) or public.
    pub personal: bool,
}

/// What an answer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Taken {
    /// `recorded`, or `already_answered` (the link, or the response id, was answered before).
    pub status: String,
    /// What the respondent is shown.
    pub thank_you: Option<String>,
}

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Not a valid, unexpired survey link.
    #[error("this survey link is not valid or has expired")]
    Link,
    /// The survey was deleted.
    #[error("this survey no longer exists")]
    Gone,
    /// The survey takes no more answers.
    #[error("this survey is closed")]
    Closed,
    /// The answer does not fit the survey: the field's JSON pointer and why.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

async fn open_survey(
    pool: &PgPool,
    tracking: &Tracking,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(LinkClaims, SurveyRow), AnswerError> {
    let claims = links::verify(&tracking.key, token, now).map_err(|_| AnswerError::Link)?;
    let mut conn = pool.acquire().await?;
    let survey = store::get(&mut conn, &claims.tenant, claims.survey)
        .await?
        .ok_or(AnswerError::Gone)?;
    if survey.status != "open" {
        return Err(AnswerError::Closed);
    }
    Ok((claims, survey))
}

/// The survey a link opens, as the respondent sees it.
pub async fn show(
    pool: &PgPool,
    tracking: &Tracking,
    token: &str,
    now: DateTime<Utc>,
) -> Result<PublicSurvey, AnswerError> {
    let (claims, survey) = open_survey(pool, tracking, token, now).await?;
    let Definition {
        questions, hidden, ..
    } = survey.definition.0;
    Ok(PublicSurvey {
        name: survey.name,
        questions: questions
            .into_iter()
            .map(|q| Question { mapping: None, ..q })
            .collect(),
        hidden: hidden.into_iter().map(|h: Hidden| h.id).collect(),
        personal: claims.customer.is_some(),
    })
}

fn id_ok(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
}

/// Takes an answer posted through link `token`.
pub async fn take(
    pool: &PgPool,
    tracking: &Tracking,
    token: &str,
    sub: &Submission,
    now: DateTime<Utc>,
) -> Result<Taken, AnswerError> {
    let (claims, survey) = open_survey(pool, tracking, token, now).await?;
    let thank_you = survey.definition.thank_you.clone();
    if sub.website.as_deref().is_some_and(|w| !w.trim().is_empty()) {
        tracing::info!(survey = %survey.id, "a filled honeypot: the answer is dropped as spam");
        return Ok(Taken {
            status: "recorded".into(),
            thank_you,
        });
    }
    if sub.response_id.as_deref().is_some_and(|r| !id_ok(r, 100)) {
        return Err(AnswerError::Invalid(
            "/response_id".into(),
            "1 to 100 of A-Z, a-z, 0-9, _ - : .".into(),
        ));
    }
    if sub.anonymous_id.as_deref().is_some_and(|a| !id_ok(a, 200)) {
        return Err(AnswerError::Invalid(
            "/anonymous_id".into(),
            "1 to 200 of A-Z, a-z, 0-9, _ - : .".into(),
        ));
    }
    let checked = check(&survey.definition, &sub.answers, &sub.hidden)
        .map_err(|(path, why)| AnswerError::Invalid(path, why))?;
    let tenant = &claims.tenant;
    let answer_id = Uuid::now_v7();
    let verified = claims.customer.is_some();
    let key = match (claims.customer, &sub.response_id) {
        (Some(_), _) => claims.link.to_string(),
        (None, Some(r)) => format!("{}:{r}", claims.link),
        (None, None) => format!("{}:{answer_id}", claims.link),
    };
    let mut tx = pool.begin().await?;
    let identity = match claims.customer {
        Some(customer) => {
            let reach = contacts::reach(&mut tx, tenant, customer).await?;
            let reach = reach.unwrap_or_default();
            Identity {
                user_id: reach.user_id,
                anonymous_id: reach.anonymous_id,
                email: reach.email.map(Into::into),
                ..Identity::default()
            }
        }
        None => anonymous_identity(&checked, sub.anonymous_id.as_deref(), answer_id),
    };
    if identity.user_id.is_none() && identity.anonymous_id.is_none() {
        // A personal link of a customer campaign knows no user or anonymous id of (erased
        // since): the event could not be addressed.
        return Err(AnswerError::Link);
    }
    let unmapped: Map<String, Value> = checked
        .hidden
        .iter()
        .filter(|(k, _)| {
            survey
                .definition
                .hidden
                .iter()
                .any(|h| &h.id == *k && h.mapping.is_none())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let new = NewAnswer {
        survey_id: survey.id,
        survey_version: survey.version,
        id: answer_id,
        key: &key,
        customer_id: claims.customer,
        verified,
        answers: &checked.answers,
        hidden: &unmapped,
        nps: checked.nps,
        at: now,
    };
    if !store::record(&mut tx, tenant, &new).await? {
        return Ok(Taken {
            status: "already_answered".into(),
            thank_you,
        });
    }
    let event = answer_event(
        tenant, &survey, &key, answer_id, identity, &checked, &unmapped, verified, now,
    );
    let out = Outgoing::new(Topic::Ingest, &event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    outbox::enqueue_all(&mut tx, &[out]).await?;
    tx.commit().await?;
    Ok(Taken {
        status: "recorded".into(),
        thank_you,
    })
}

/// An anonymous answer's identity: the email it gives (with an anonymous id of the answer's
/// own, since events need one), else the visitor's anonymous id, else one of its own. Never the
/// visitor's id with a typed email: that would tie whoever owns the email to this browser.
fn anonymous_identity(checked: &Checked, anonymous_id: Option<&str>, answer: Uuid) -> Identity {
    let email = checked
        .traits
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.contains('@'));
    let own = format!("survey:{answer}");
    match (email, anonymous_id) {
        (Some(e), _) => Identity {
            email: Some(e.to_owned().into()),
            anonymous_id: Some(own),
            ..Identity::default()
        },
        (None, Some(a)) => Identity {
            anonymous_id: Some(a.to_owned()),
            ..Identity::default()
        },
        (None, None) => Identity {
            anonymous_id: Some(own),
            ..Identity::default()
        },
    }
}

/// The `Survey Answered` event of an answer.
#[allow(clippy::too_many_arguments)]
fn answer_event(
    tenant: &TenantId,
    survey: &SurveyRow,
    key: &str,
    answer_id: Uuid,
    identity: Identity,
    checked: &Checked,
    hidden: &Map<String, Value>,
    verified: bool,
    now: DateTime<Utc>,
) -> Envelope {
    let mut properties = Map::new();
    properties.insert("survey_id".into(), json!(survey.id));
    properties.insert("survey_name".into(), json!(survey.name));
    properties.insert("survey_version".into(), json!(survey.version));
    properties.insert("answer_id".into(), json!(answer_id));
    properties.insert("answers".into(), Value::Object(checked.answers.clone()));
    properties.insert("hidden".into(), Value::Object(hidden.clone()));
    properties.insert("verified".into(), json!(verified));
    if let Some(n) = checked.nps {
        properties.insert("nps".into(), json!(n));
        properties.insert("nps_category".into(), json!(nps_category(n)));
    }
    let mut context = Map::new();
    context.insert("trait_rules".into(), Value::Object(checked.rules.clone()));
    context.insert("verified".into(), json!(verified));
    Envelope {
        id: format!("survey:{}:{key}", survey.id),
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some(EVENT.to_owned()),
        occurred_at: now,
        received_at: now,
        source: SOURCE.to_owned(),
        identity,
        customer_id: None,
        traits: checked.traits.clone(),
        properties,
        context,
    }
}
