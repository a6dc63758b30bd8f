//! The brand's replies to a conversation. An agent's reply (typed, or a canned reply: a stored
//! template rendered in the sandbox for the thread) is queued in the transaction that records
//! the first reply and marks the thread pending; the reply loop then sends it through the
//! thread's channel.
//!
//! Email replies go out over the SMTP relay of the journeys' channel adapter, from the
//! tenant's email channel, with `Reply-To` the email connector's inbound address (so the
//! answer comes back through the inbound webhook), `In-Reply-To` the contact's last message and
//! `References` the thread: mail clients keep one thread, and the contact's answer threads back
//! into this conversation. The reply's `Message-ID` is stored before the SMTP transaction.
//!
//! At most once, like journey messages: a reply is marked `sending` in its own commit before
//! the send and `sent` or `failed` after; one left `sending` by a crash is marked failed after
//! the lease, never sent twice. A sent reply is put on the contact's timeline
//! ([`reply_event`]) in the transaction that marks it sent.
//!
//! Replies on social threads are posted with the network's API (Mastodon `POST
//! /api/v1/statuses`, X `POST /2/tweets` or, to a direct message, `POST
//! /2/dm_conversations/with/{sender}/messages`) through the connector the contact's last message
//! came by, with its access token, as an answer to that message, through the SSRF guard.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use crm_envelope::{Envelope, Handle, Identity, TenantId, Topic};
use crm_kafka::outbox::{self, Outgoing};
use serde_json::{json, Map};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::channels::guard::Guard;
use crate::channels::provider::Provider;
use crate::channels::smtp::{message_id, Smtp};
use crate::channels::{Outbound, Send, SendError};
use crate::domain::channels::Settings;
use crate::domain::conversations::by_name;
use crate::domain::conversations::email::{bare_id, reply_subject};
use crate::domain::conversations::mention::html_to_text;
use crate::domain::conversations::network::ReplyTo;
use crate::domain::templates::{self, Limits};
use crate::interactions::SOURCE;
use crate::store::conversations::{self, ClaimedReply, MessageRow, Refused};
use crate::store::{channels, connectors, templates as template_store};

/// The longest reply, in characters.
pub const MAX_TEXT: usize = 5000;

/// What a reply says: typed text, or a canned reply (a template's key).
#[derive(Debug, Clone)]
pub enum Body {
    /// Typed by the agent.
    Text(String),
    /// A stored template, rendered for the thread (`contact`, `subject`, `author`).
    Canned(String),
}

/// Why a reply was not queued.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// No such thread.
    #[error("no conversation with this id for this tenant")]
    NotFound,
    /// The thread is resolved.
    #[error("the conversation is resolved: a reply needs an open thread")]
    Resolved,
    /// No template has the canned reply's key.
    #[error("no template with key {0}")]
    NoTemplate(String),
    /// The reply is empty, too long, or its template failed to render.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn checked(text: String) -> Result<String, ReplyError> {
    let text = text.trim().to_owned();
    if text.is_empty() || text.chars().count() > MAX_TEXT || text.contains('\0') {
        return Err(ReplyError::Invalid(format!(
            "a reply is 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(text)
}

/// Queues `author`'s reply on thread `id`.
pub async fn reply(
    pool: &PgPool,
    limits: &Limits,
    tenant: &TenantId,
    id: Uuid,
    body: Body,
    author: &str,
) -> Result<MessageRow, ReplyError> {
    let mut tx = pool.begin().await?;
    let thread = conversations::get(&mut tx, tenant, id, true)
        .await?
        .ok_or(ReplyError::NotFound)?;
    let (text, template) = match body {
        Body::Text(t) => (checked(t)?, None),
        Body::Canned(key) => {
            let tpl = template_store::get(&mut tx, tenant, &key)
                .await?
                .ok_or_else(|| ReplyError::NoTemplate(key.clone()))?;
            let context = json!({"contact": thread.contact, "subject": thread.subject,
                                 "author": author, "channel": thread.channel});
            let rendered = templates::render(&tpl.parts, &context, limits).map_err(|e| {
                ReplyError::Invalid(format!(
                    "the template {key} failed to render its {} part: {}",
                    e.part, e.code
                ))
            })?;
            let text = match (rendered.text, rendered.html) {
                (Some(t), _) if !t.trim().is_empty() => t,
                (_, Some(h)) => html_to_text(&h),
                _ => String::new(),
            };
            (checked(text)?, Some(key))
        }
    };
    let properties = json!({"template": template});
    let queued =
        conversations::queue_reply(&mut tx, tenant, id, author, &text, &properties, Utc::now())
            .await?;
    let row = match queued {
        Ok(row) => row,
        Err(Refused::NotFound) => return Err(ReplyError::NotFound),
        Err(Refused::Resolved) => return Err(ReplyError::Resolved),
    };
    tx.commit().await?;
    Ok(row)
}

/// A `track` event named `name` about the thread with `contact` on `channel`, for the contact's
/// timeline: on `crm.ingest.v1` with the contact's identity as the inbound messages carry it (the
/// address, the number, or the network handle, with the same anonymous id), so identity files
/// it with the same customer. Campaign does not know which customer a handle is; identity does,
/// which is why these are not `crm.interactions.v1` events.
pub fn contact_event(
    tenant: &TenantId,
    id: String,
    name: &str,
    (channel, contact): (&str, &str),
    properties: Map<String, serde_json::Value>,
    at: DateTime<Utc>,
) -> Envelope {
    let identity = match channel {
        "email" => Identity {
            anonymous_id: Some(format!("email:{contact}")),
            email: Some(contact.to_owned().into()),
            ..Identity::default()
        },
        "sms" => Identity {
            anonymous_id: Some(format!("phone:{contact}")),
            phone: Some(contact.to_owned().into()),
            ..Identity::default()
        },
        network => Identity {
            anonymous_id: Some(format!("social:{network}:{contact}")),
            handles: vec![Handle {
                network: network.to_owned(),
                handle: contact.to_owned().into(),
            }],
            ..Identity::default()
        },
    };
    Envelope {
        id,
        tenant_id: tenant.clone(),
        kind: "track".to_owned(),
        name: Some(name.to_owned()),
        occurred_at: at,
        received_at: at,
        source: SOURCE.to_owned(),
        identity,
        customer_id: None,
        traits: Map::new(),
        properties,
        context: Map::new(),
    }
}

/// The event that puts a sent reply on the contact's timeline: `Conversation Reply Sent`
/// ([`contact_event`]). Keyed by the reply: sent once.
pub fn reply_event(tenant: &TenantId, r: &ClaimedReply, at: DateTime<Utc>) -> Envelope {
    let mut properties = Map::new();
    properties.insert("channel".into(), json!(r.channel));
    properties.insert("conversation_id".into(), json!(r.conversation_id));
    properties.insert("reply_id".into(), json!(r.id));
    properties.insert("text".into(), json!(r.text));
    contact_event(
        tenant,
        format!("reply:{}", r.id),
        REPLY_EVENT,
        (&r.channel, &r.contact),
        properties,
        at,
    )
}

/// The event a sent reply becomes.
pub const REPLY_EVENT: &str = "Conversation Reply Sent";

/// What the reply loop needs.
#[derive(Clone)]
pub struct Replies {
    /// The part's database.
    pub pool: PgPool,
    /// The SMTP relay.
    pub smtp: Smtp,
    /// How long a reply may stay `sending` before it counts as interrupted.
    pub lease: Duration,
    /// The SSRF guard of calls to the networks' APIs.
    pub guard: Guard,
    /// Wakes the outbox relay when a sent reply's event is queued.
    pub relay: Arc<Notify>,
}

impl Replies {
    /// Claims and sends one batch; how many were claimed.
    pub async fn send_batch(&self, limit: i64) -> Result<usize, sqlx::Error> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        conversations::abandon_interrupted_replies(&mut tx, now, self.lease).await?;
        let claimed = conversations::claim_replies(&mut tx, now, limit).await?;
        tx.commit().await?;
        for r in &claimed {
            let Ok(tenant) = TenantId::parse(&r.tenant_id) else {
                // Never stored by this part; the lease marks it failed.
                tracing::warn!(reply = %r.id, "a claimed reply has no valid tenant id");
                continue;
            };
            let outcome = self.send_one(&tenant, r).await?;
            let mut tx = self.pool.begin().await?;
            conversations::finish_reply(
                &mut tx,
                &tenant,
                r.conversation_id,
                r.id,
                outcome.as_ref().err().map(String::as_str),
            )
            .await?;
            if outcome.is_ok() {
                let event = reply_event(&tenant, r, Utc::now());
                let out = Outgoing::new(Topic::Ingest, &event)
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                outbox::enqueue_all(&mut tx, &[out]).await?;
            }
            tx.commit().await?;
            if outcome.is_ok() {
                self.relay.notify_one();
            }
        }
        Ok(claimed.len())
    }

    /// Sends one reply: `Err` holds why it failed.
    async fn send_one(
        &self,
        tenant: &TenantId,
        r: &ClaimedReply,
    ) -> Result<Result<(), String>, sqlx::Error> {
        match r.channel.as_str() {
            "email" => {}
            "sms" => return self.send_sms(tenant, r).await,
            _ => return self.post_on_network(tenant, r).await,
        }
        let mut conn = self.pool.acquire().await?;
        let Some((settings, _)) = channels::of_kind(&mut conn, tenant, "email").await? else {
            return Ok(Err(
                "the tenant has no email channel to send from (PUT /v1/channels/{key})".into(),
            ));
        };
        let Settings::Email {
            from,
            from_name,
            reply_to,
        } = settings.settings
        else {
            return Ok(Err("the tenant's email channel has no sender".into()));
        };
        let inbound = connectors::inbound_address(&mut conn, tenant).await?;
        let ids = conversations::thread_ids(&mut conn, tenant, r.conversation_id).await?;
        let prefix = "email:";
        let in_reply_to = ids
            .iter()
            .rev()
            .find(|(direction, _)| direction == "in")
            .and_then(|(_, id)| id.strip_prefix(prefix))
            .map(str::to_owned);
        let mut references: Vec<String> = ids
            .iter()
            .filter_map(|(_, id)| id.strip_prefix(prefix).map(str::to_owned))
            .collect();
        if references.len() > 20 {
            references.drain(1..references.len() - 19);
        }
        let send_key = format!("{}:reply:{}", tenant.as_str(), r.id);
        let own_id = bare_id(&message_id(&send_key, &from));
        conversations::set_reply_id(
            &mut conn,
            tenant,
            r.conversation_id,
            r.id,
            &format!("{prefix}{own_id}"),
        )
        .await?;
        drop(conn);
        let outbound = Outbound {
            send_key,
            to: r.contact.clone(),
            from,
            from_name,
            reply_to: inbound.or(reply_to),
            subject: reply_subject(r.subject.as_deref()),
            html: None,
            text: Some(r.text.clone()),
            // A one-to-one answer, not marketing: no unsubscribe link.
            unsubscribe: None,
            in_reply_to,
            references,
        };
        Ok(match self.smtp.send(&outbound).await {
            Ok(_) => Ok(()),
            Err(SendError::Permanent(e)) => Err(format!("refused by the mail server: {e}")),
            Err(SendError::Transient(e)) => Err(format!(
                "the mail server could not be reached ({e}): reply again once it is back"
            )),
        })
    }
}

impl Replies {
    /// A reply on an SMS thread: sent to the contact's number through the tenant's SMS channel
    /// (the journeys' provider adapter), from its sender number.
    async fn send_sms(
        &self,
        tenant: &TenantId,
        r: &ClaimedReply,
    ) -> Result<Result<(), String>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let Some((settings, secrets)) = channels::of_kind(&mut conn, tenant, "sms").await? else {
            return Ok(Err(
                "the tenant has no SMS channel to send from (PUT /v1/channels/{key})".into(),
            ));
        };
        drop(conn);
        let Settings::Sms { url, account, from } = settings.settings else {
            return Ok(Err("the tenant's SMS channel has no provider".into()));
        };
        let provider = Provider {
            url,
            account,
            token: secrets.first().cloned().unwrap_or_default(),
            status_callback: None,
            guard: self.guard,
        };
        let outbound = Outbound {
            send_key: format!("{}:reply:{}", tenant.as_str(), r.id),
            to: r.contact.clone(),
            from,
            from_name: None,
            reply_to: None,
            subject: String::new(),
            html: None,
            text: Some(r.text.clone()),
            unsubscribe: None,
            in_reply_to: None,
            references: Vec::new(),
        };
        Ok(match provider.send(&outbound).await {
            Ok(accepted) => {
                if let Some(sid) = accepted.provider_id {
                    let mut conn = self.pool.acquire().await?;
                    let external = format!("sms:{sid}");
                    conversations::set_reply_id(
                        &mut conn,
                        tenant,
                        r.conversation_id,
                        r.id,
                        &external,
                    )
                    .await?;
                }
                Ok(())
            }
            Err(SendError::Permanent(e)) => Err(format!("refused by the SMS provider: {e}")),
            Err(SendError::Transient(e)) => Err(format!(
                "the SMS provider could not be reached ({e}): reply again once it is back"
            )),
        })
    }

    /// A reply on a social thread: posted with the network's API through the connector the
    /// contact's last message came by, as an answer to that message.
    async fn post_on_network(
        &self,
        tenant: &TenantId,
        r: &ClaimedReply,
    ) -> Result<Result<(), String>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let Some((external_id, properties)) =
            conversations::last_inbound(&mut conn, tenant, r.conversation_id).await?
        else {
            return Ok(Err(
                "the thread has no message of the contact's to answer".into()
            ));
        };
        let connector = properties
            .get("connector_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|c| c.parse::<Uuid>().ok());
        let Some(connector) = connector else {
            return Ok(Err("the contact's message names no connector".into()));
        };
        let Some((network_name, api_url, token)) =
            connectors::reply_credentials(&mut conn, tenant, connector).await?
        else {
            return Ok(Err(format!(
                "the connector has no api_url and api_token to post replies with \
                 (PATCH /v1/connectors/{connector})"
            )));
        };
        drop(conn);
        let Some(network) = by_name(&network_name) else {
            return Ok(Err(format!("no network called {network_name}")));
        };
        let message_id = external_id
            .strip_prefix(&format!("{network_name}:"))
            .unwrap_or(&external_id);
        let to = ReplyTo {
            handle: &r.contact,
            message_id,
            author_id: properties
                .get("author_id")
                .and_then(serde_json::Value::as_str),
            direct: properties.get("kind").and_then(serde_json::Value::as_str)
                == Some("direct_message"),
        };
        let call = match network.reply(&api_url, &to, &r.text) {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let client = match self.guard.client(&call.url).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("the network's API address is refused: {e}"))),
        };
        let answer = client
            .post(&call.url)
            .bearer_auth(token)
            // Mastodon takes one status per key: a retried post is not a second reply.
            .header("Idempotency-Key", r.id.to_string())
            .json(&call.body)
            .send()
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                return Ok(Err(format!(
                    "the network's API could not be reached ({e}): reply again later"
                )))
            }
        };
        let status = answer.status();
        if !status.is_success() {
            return Ok(Err(format!("the network's API answered {status}")));
        }
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        if let Some(id) = network.reply_id(&body) {
            let mut conn = self.pool.acquire().await?;
            let external = format!("{network_name}:{id}");
            conversations::set_reply_id(&mut conn, tenant, r.conversation_id, r.id, &external)
                .await?;
        }
        Ok(Ok(()))
    }
}

/// The reply loop: sends queued replies when woken, or every `idle`, until shutdown.
pub async fn run(
    replies: Replies,
    wake: Arc<Notify>,
    idle: StdDuration,
    shutdown: CancellationToken,
) {
    loop {
        let sent = replies.send_batch(50).await;
        if shutdown.is_cancelled() {
            return;
        }
        match sent {
            Ok(n) if n >= 50 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sending conversation replies failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
