//! Social listening: a network's webhook call for a tenant's connector is verified with the
//! connector's secrets (the newest or, during a rotation, the previous one), read into
//! normalised mentions, matched against the connector's tracked terms, and each match
//! published as a `Social Mention` event on `crm.ingest.v1` in the transaction that records
//! the call in the connector's health. A refused call (bad signature, unreadable payload) is
//! recorded too, so a dead or misconfigured channel shows red instead of going quiet.
//!
//! A direct message, or a negative mention, opens (or joins) the contact's conversation thread
//! (a negative public mention at high priority, urgent at -0.6 or below); any other mention
//! joins a thread already open with the contact. Both in the same transaction.
//!
//! Each mention carries its sentiment (`crm-sentiment`: the score from -1 to 1, its label, the
//! language scored and the lexicon's version), which loyalty's positive-mention bonus reads.
//!
//! The event's id is the connector and the post's id on the network: a call the network
//! retries publishes events identity has already applied, and nothing happens twice. Its
//! identity is the author's handle, with `social:<network>:<handle>` as anonymous id (the
//! ingest topic's key, so one author's mentions stay in order).

use chrono::Utc;
use crm_envelope::{Envelope, Handle, Identity, TenantId, Topic};
use crm_kafka::outbox::{self, Outgoing};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::conversations::by_name;
use crate::domain::conversations::mention::Mention;
use crate::domain::conversations::network::Network;
use crate::domain::conversations::threads;
use crate::interactions::SOURCE;
use crate::store::connectors;
use crate::store::conversations::{self, Inbound};

/// The event a mention becomes.
pub const EVENT: &str = "Social Mention";

/// The event an email received becomes.
pub const EMAIL_EVENT: &str = "Email Received";

/// The event a text message received becomes.
pub const SMS_EVENT: &str = "SMS Received";

/// Why a call was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No such connector.
    #[error("no such connector")]
    NotFound,
    /// The connector is turned off.
    #[error("the connector is disabled")]
    Disabled,
    /// No secret of the connector signs the call.
    #[error("the signature does not verify with the connector's secret")]
    Signature,
    /// The payload is not the network's.
    #[error("{0}")]
    Payload(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a call did: mentions read and published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Mentions in the payload.
    pub read: usize,
    /// Mentions that matched a tracked term, published.
    pub published: usize,
    /// The answer the network expects instead of JSON, as (content type, body).
    pub acknowledgement: Option<(&'static str, &'static str)>,
}

fn network_of(name: &str) -> Result<&'static dyn Network, CallError> {
    by_name(name).ok_or(CallError::NotFound)
}

/// The `Social Mention` event of `m`, which matched `matched` on connector `connector`.
pub fn mention_event(
    tenant: &TenantId,
    connector: Uuid,
    m: &Mention,
    matched: &[String],
    feeling: &crm_sentiment::Sentiment,
) -> Envelope {
    let properties = json!({
        "network": m.network, "connector_id": connector, "external_id": m.external_id,
        "kind": m.kind, "text": m.text, "url": m.url, "language": m.language,
        "author_name": m.author_name, "hashtags": m.hashtags, "mentions": m.mentions,
        "matched": matched,
    });
    Envelope {
        id: format!("social:{connector}:{}", m.external_id),
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some(EVENT.to_owned()),
        occurred_at: m.posted_at,
        received_at: Utc::now(),
        source: SOURCE.to_owned(),
        identity: Identity {
            anonymous_id: Some(format!("social:{}:{}", m.network, m.handle)),
            handles: vec![Handle {
                network: m.network.clone(),
                handle: m.handle.clone().into(),
            }],
            ..Identity::default()
        },
        customer_id: None,
        traits: Map::new(),
        properties: with_sentiment(properties, feeling),
        context: Map::new(),
    }
}

/// `properties` (an object) with the sentiment fields every inbound message's event carries:
/// the score (three decimals), its label, the language scored and the lexicon's version.
fn with_sentiment(properties: Value, feeling: &crm_sentiment::Sentiment) -> Map<String, Value> {
    let mut p = match properties {
        Value::Object(p) => p,
        _ => Map::new(),
    };
    p.insert(
        "sentiment".into(),
        json!((feeling.score * 1000.0).round() / 1000.0),
    );
    p.insert("sentiment_label".into(), json!(feeling.label));
    p.insert("sentiment_language".into(), json!(feeling.language.code()));
    p.insert("sentiment_lexicon".into(), json!(feeling.lexicon));
    p
}

/// The `Email Received` event of an email the brand received: on the sender's timeline (their
/// address is the identity, `email:<address>` the anonymous id), with its subject, its text
/// and its sentiment.
pub fn email_event(
    tenant: &TenantId,
    connector: Uuid,
    m: &Mention,
    feeling: &crm_sentiment::Sentiment,
) -> Envelope {
    let subject = m.email.as_ref().and_then(|e| e.subject.clone());
    let properties = json!({
        "channel": "email", "connector_id": connector, "message_id": m.external_id,
        "subject": subject, "text": m.text,
    });
    Envelope {
        id: format!("email:{connector}:{}", m.external_id),
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some(EMAIL_EVENT.to_owned()),
        occurred_at: m.posted_at,
        received_at: Utc::now(),
        source: SOURCE.to_owned(),
        identity: Identity {
            anonymous_id: Some(format!("email:{}", m.handle)),
            email: Some(m.handle.clone().into()),
            ..Identity::default()
        },
        customer_id: None,
        traits: Map::new(),
        properties: with_sentiment(properties, feeling),
        context: Map::new(),
    }
}

/// The `SMS Received` event of a text message the brand received: on the sender's timeline
/// (their number is the identity, `phone:<number>` the anonymous id), with its text and its
/// sentiment.
pub fn sms_event(
    tenant: &TenantId,
    connector: Uuid,
    m: &Mention,
    feeling: &crm_sentiment::Sentiment,
) -> Envelope {
    let properties = json!({
        "channel": "sms", "connector_id": connector, "message_id": m.external_id,
        "text": m.text,
    });
    Envelope {
        id: format!("sms:{connector}:{}", m.external_id),
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some(SMS_EVENT.to_owned()),
        occurred_at: m.posted_at,
        received_at: Utc::now(),
        source: SOURCE.to_owned(),
        identity: Identity {
            anonymous_id: Some(format!("phone:{}", m.handle)),
            phone: Some(m.handle.clone().into()),
            ..Identity::default()
        },
        customer_id: None,
        traits: Map::new(),
        properties: with_sentiment(properties, feeling),
        context: Map::new(),
    }
}

/// Takes a webhook call for connector `id` of `tenant`: `header` gives the call's headers by
/// name (the network's signature header is read from it), `url` is the public address the
/// network called (with its query), `body` is the payload as received.
pub async fn receive<'h>(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
    header: impl Fn(&str) -> Option<&'h str>,
    url: &str,
    body: &[u8],
) -> Result<Taken, CallError> {
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let (row, secrets) = connectors::for_call(&mut tx, tenant, id)
        .await?
        .ok_or(CallError::NotFound)?;
    if !row.enabled {
        return Err(CallError::Disabled);
    }
    let network = network_of(&row.network)?;
    let signed = header(network.signature_header()).is_some_and(|sig| {
        secrets
            .iter()
            .any(|s| network.verify(s.as_bytes(), sig, url, body))
    });
    let read = if signed {
        network.mentions(body, &row.account).map_err(|e| {
            let reason = format!("refused a call: the payload is not a {} event", row.network);
            (CallError::Payload(e.0), reason)
        })
    } else {
        let reason = format!(
            "refused a call: no valid {} header",
            network.signature_header()
        );
        Err((CallError::Signature, reason))
    };
    let mentions = match read {
        Ok(m) => m,
        Err((why, reason)) => {
            connectors::refused(&mut tx, tenant, id, &reason, now).await?;
            tx.commit().await?;
            return Err(why);
        }
    };
    let mut out: Vec<Outgoing> = Vec::new();
    for m in &mentions {
        let matched = row.tracked.0.matches(m);
        if matched.is_empty() {
            continue;
        }
        let feeling = crm_sentiment::score(&m.text, m.language.as_deref());
        let event = match m.network.as_str() {
            "email" => email_event(tenant, id, m, &feeling),
            "sms" => sms_event(tenant, id, m, &feeling),
            _ => mention_event(tenant, id, m, &matched, &feeling),
        };
        out.push(
            Outgoing::new(Topic::Ingest, &event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
        );
        let inbound = Inbound {
            channel: &m.network,
            contact: &m.handle,
            external_id: &format!("{}:{}", m.network, m.external_id),
            text: &m.text,
            properties: json!({"connector_id": id, "url": m.url, "kind": m.kind,
                "author_id": m.author_id,
                "sentiment": event.properties.get("sentiment"),
                "sentiment_lexicon": &feeling.lexicon}),
            at: m.posted_at,
            subject: m.email.as_ref().and_then(|e| e.subject.as_deref()),
            replies_to: m.email.as_ref().map_or(&[][..], |e| &e.replies_to[..]),
        };
        let opens = threads::opens(m, feeling.score);
        conversations::receive(&mut tx, tenant, &inbound, opens, now).await?;
    }
    outbox::enqueue_all(&mut tx, &out).await?;
    connectors::taken(&mut tx, tenant, id, out.len(), now).await?;
    tx.commit().await?;
    Ok(Taken {
        read: mentions.len(),
        published: out.len(),
        acknowledgement: network.acknowledgement(),
    })
}

/// The answer to the network's challenge of connector `id`'s URL (X's CRC check), made with
/// its newest secret; `None` when its network has no challenge.
pub async fn challenge(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
    token: &str,
) -> Result<Option<Value>, CallError> {
    let mut conn = pool.acquire().await?;
    let (row, secrets) = connectors::for_call(&mut conn, tenant, id)
        .await?
        .ok_or(CallError::NotFound)?;
    let network = network_of(&row.network)?;
    let Some(secret) = secrets.first() else {
        return Err(CallError::Signature);
    };
    Ok(network.challenge(secret.as_bytes(), token))
}
