//! `messages`: every message a journey sends or skips, one row per step key (instance, node,
//! occurrence), so a retried step makes no second message. The delivery loop claims `queued`
//! rows whose time has come with `FOR UPDATE SKIP LOCKED`, marks each `sending` in its own
//! commit before the SMTP (or HTTP) transaction and `sent` after it; a row a crash left
//! `sending` is never sent again (at most once, see docs/campaign.md).

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::gate::caps::Sent;
use crate::domain::suppression::channel_of;
use crate::domain::tracking::Status;

/// A message about to be recorded.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The step key: `instance:node:occurrence`, or the API call's key for a test send.
    pub send_key: &'a str,
    /// The customer (nil for a test send to an address).
    pub customer: Uuid,
    /// The journey, instance and node that sent it.
    pub journey: Option<(Uuid, Uuid, &'a str)>,
    /// The channel (`email`, `sms`, `push`, `webhook`).
    pub channel: &'a str,
    /// The template's key, or the webhook channel's.
    pub template: &'a str,
    /// Its type for caps.
    pub message_type: &'a str,
    /// Exempt from caps and quiet hours.
    pub transactional: bool,
    /// The journey's priority.
    pub priority: i32,
    /// Where it goes (email address, phone), if known.
    pub address: Option<&'a str>,
    /// What the send gate needs when it runs at delivery (see [`Start::AwaitingProfile`]).
    pub gate: GateInputs<'a>,
    /// The placement whose best offer the message shows, decided when it is sent.
    pub offer_placement: Option<&'a str>,
    /// The survey the message links to (`survey_url`).
    pub survey_id: Option<Uuid>,
}

/// What the send gate reads that is not the customer's: kept with a message whose gate runs at
/// delivery.
#[derive(Debug, Clone, Copy)]
pub struct GateInputs<'a> {
    /// The consent purpose of its template.
    pub purpose: &'a str,
    /// The journey's control group, in percent.
    pub holdout_percent: u8,
    /// The journey's time zone (for customers without one).
    pub time_zone: &'a str,
    /// The send node's own quiet-hours choice (`None`: the tenant's).
    pub quiet: Option<crate::domain::gate::quiet::Policy>,
}

/// How a new message starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// Sent by the delivery loop once `not_before` has passed.
    Queued {
        /// Not before (the end of quiet hours, or now).
        not_before: DateTime<Utc>,
    },
    /// Refused by the gate, with the reason.
    Skipped(&'a str),
    /// Campaign has not heard of the customer's profile yet (the trigger overtook it on
    /// another topic): queued until `not_before`, and the gate runs at delivery.
    AwaitingProfile {
        /// When to look again.
        not_before: DateTime<Utc>,
    },
}

/// Records `m`; its id, or `None` when its send key was recorded before.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    m: &NewMessage<'_>,
    start: Start<'_>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let (status, reason, not_before, pending) = match start {
        Start::Queued { not_before } => ("queued", None, not_before, false),
        Start::Skipped(reason) => ("skipped", Some(reason), Utc::now(), false),
        Start::AwaitingProfile { not_before } => ("queued", None, not_before, true),
    };
    let (journey, instance, node) = match m.journey {
        Some((j, i, n)) => (Some(j), Some(i), Some(n)),
        None => (None, None, None),
    };
    let id: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO messages (tenant_id, id, send_key, customer_id, journey_id, instance_id, node,
             channel, template, message_type, transactional, priority, status, skip_reason,
             address, not_before, gate_pending, purpose, holdout_percent, time_zone,
             quiet_policy, offer_placement, survey_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21, $22, $23)
         ON CONFLICT (tenant_id, send_key) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(m.send_key)
    .bind(m.customer)
    .bind(journey)
    .bind(instance)
    .bind(node)
    .bind(m.channel)
    .bind(m.template)
    .bind(m.message_type)
    .bind(m.transactional)
    .bind(m.priority)
    .bind(status)
    .bind(reason)
    .bind(m.address)
    .bind(not_before)
    .bind(pending)
    .bind(m.gate.purpose)
    .bind(i32::from(m.gate.holdout_percent))
    .bind(m.gate.time_zone)
    .bind(m.gate.quiet.map(|q| match q {
        crate::domain::gate::quiet::Policy::Defer => "defer",
        crate::domain::gate::quiet::Policy::Drop => "drop",
    }))
    .bind(m.offer_placement)
    .bind(m.survey_id)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(|(id,)| id))
}

/// What the customer was sent (or has queued) since `since`, transactional messages aside: the
/// history frequency caps count. A message queued for later (quiet hours) counts as sent now:
/// it will go out, and a cap must not let a second one join it; while queued, it may yield its
/// slot to a message of higher priority (its id is given for that).
pub async fn history(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    since: DateTime<Utc>,
    except: Option<Uuid>,
) -> Result<Vec<Sent>, sqlx::Error> {
    /// When, channel, type, priority, and the id while queued.
    type Row = (DateTime<Utc>, String, String, i32, Option<Uuid>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT LEAST(COALESCE(sent_at, not_before), now()), channel, message_type, priority,
                CASE WHEN status = 'queued' THEN id END
         FROM messages
         WHERE tenant_id = $1 AND customer_id = $2 AND NOT transactional
           AND status NOT IN ('skipped', 'failed') AND COALESCE(sent_at, not_before) >= $3
           AND id IS DISTINCT FROM $4",
    )
    .bind(tenant)
    .bind(customer)
    .bind(since)
    .bind(except)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(at, channel, message_type, priority, queued)| {
            let channel = channel_of(&channel)?;
            Some(Sent {
                at,
                channel,
                message_type,
                priority,
                queued,
            })
        })
        .collect())
}

/// A queued message that yielded its cap slot to one of higher priority.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Displaced {
    /// The message.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// Its journey, instance and node.
    pub journey_id: Option<Uuid>,
    /// Its instance.
    pub instance_id: Option<Uuid>,
    /// Its node.
    pub node: Option<String>,
    /// Its channel.
    pub channel: String,
    /// Its template.
    pub template: Option<String>,
    /// Its journey's priority.
    pub priority: i32,
}

/// Skips the queued messages `ids` as `frequency_cap` (they yield their slots to a message of
/// higher priority): all of them, or none when one of them is no longer queued (the delivery
/// loop took it), so the caller refuses the newcomer instead.
pub async fn displace(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<Option<Vec<Displaced>>, sqlx::Error> {
    let locked: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM messages WHERE tenant_id = $1 AND id = ANY($2) AND status = 'queued'
         FOR UPDATE",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    if locked.len() < ids.len() {
        return Ok(None);
    }
    let rows = sqlx::query_as(
        "UPDATE messages SET status = 'skipped', skip_reason = 'frequency_cap'
         WHERE tenant_id = $1 AND id = ANY($2)
         RETURNING id, customer_id, journey_id, instance_id, node, channel, template, priority",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(Some(rows))
}

/// A queued message claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The message.
    pub id: Uuid,
    /// Its send key (the `Message-ID` and the webhook id derive from it).
    pub send_key: String,
    /// The customer.
    pub customer_id: Uuid,
    /// The journey.
    pub journey_id: Option<Uuid>,
    /// The instance.
    pub instance_id: Option<Uuid>,
    /// The node.
    pub node: Option<String>,
    /// The channel.
    pub channel: String,
    /// The template (or webhook channel) key.
    pub template: Option<String>,
    /// Exempt from caps and quiet hours.
    pub transactional: bool,
    /// The address recorded when it was queued (a test send's), if any.
    pub address: Option<String>,
    /// Its type, for caps.
    pub message_type: String,
    /// The send gate runs at delivery.
    pub gate_pending: bool,
    /// The consent purpose of its template.
    pub purpose: String,
    /// The journey's control group, in percent.
    pub holdout_percent: i32,
    /// The journey's time zone.
    pub time_zone: String,
    /// How many times it was claimed for sending, this time included.
    pub attempts: i32,
    /// Its journey's priority.
    pub priority: i32,
    /// The send node's own quiet-hours choice (`defer`, `drop`; `None`: the tenant's).
    pub quiet_policy: Option<String>,
    /// The placement whose best offer the message shows.
    pub offer_placement: Option<String>,
    /// The survey the message links to.
    pub survey_id: Option<Uuid>,
}

/// Claims up to `limit` queued messages due at `now` and marks them `sending` (this
/// transaction commits that before anything is sent). Replicas skip each other's rows.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE messages m SET status = 'sending', sending_at = $1, attempts = m.attempts + 1
         FROM (SELECT tenant_id, id FROM messages WHERE status = 'queued' AND not_before <= $1
               ORDER BY priority DESC, not_before LIMIT $2 FOR UPDATE SKIP LOCKED) due
         WHERE m.tenant_id = due.tenant_id AND m.id = due.id
         RETURNING m.tenant_id, m.id, m.send_key, m.customer_id, m.journey_id, m.instance_id,
             m.node, m.channel, m.template, m.transactional, m.address, m.message_type,
             m.gate_pending, m.purpose, m.holdout_percent, m.time_zone, m.attempts, m.priority,
             m.quiet_policy, m.offer_placement, m.survey_id",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// What happened to a claimed message.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Accepted by the server or provider.
    Sent {
        /// Where it went.
        address: &'a str,
        /// Email subject.
        subject: Option<&'a str>,
        /// Links it contained.
        links: &'a [String],
        /// The provider's id (SMTP answer, provider message id).
        provider_id: Option<&'a str>,
    },
    /// Refused before sending (consent withdrawn meanwhile, suppressed, no address, a template
    /// error).
    Skipped(&'a str),
    /// Failed for good (after retries, or a permanent refusal).
    Failed(&'a str),
    /// Failed for now: queued again at `retry_at`.
    Retry {
        /// When.
        retry_at: DateTime<Utc>,
        /// What went wrong.
        error: &'a str,
    },
}

/// Records the outcome of a claimed (`sending`) message; `false` when it was not `sending`.
pub async fn finish(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    outcome: &Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let q = match outcome {
        Outcome::Sent {
            address,
            subject,
            links,
            provider_id,
        } => sqlx::query(
            "UPDATE messages SET status = 'sent', sent_at = $3, address = $4, subject = $5,
                 links = $6, provider_id = $7
             WHERE tenant_id = $1 AND id = $2 AND status = 'sending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .bind(*address)
        .bind(*subject)
        .bind(*links)
        .bind(*provider_id),
        Outcome::Skipped(reason) => sqlx::query(
            "UPDATE messages SET status = 'skipped', skip_reason = $3
             WHERE tenant_id = $1 AND id = $2 AND status = 'sending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(*reason),
        Outcome::Failed(error) => sqlx::query(
            "UPDATE messages SET status = 'failed', last_error = $3
             WHERE tenant_id = $1 AND id = $2 AND status = 'sending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(*error),
        Outcome::Retry { retry_at, error } => sqlx::query(
            "UPDATE messages SET status = 'queued', not_before = $3, last_error = $4
             WHERE tenant_id = $1 AND id = $2 AND status = 'sending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(*retry_at)
        .bind(*error),
    };
    Ok(q.execute(conn).await?.rows_affected() == 1)
}

/// Messages a crash left `sending` for longer than `lease`: marked `skipped` with reason
/// `send_interrupted` (never sent again: at most once); returned for their interactions.
pub async fn abandon_interrupted(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE messages SET status = 'skipped', skip_reason = 'send_interrupted'
         WHERE status = 'sending' AND sending_at < $1
         RETURNING tenant_id, id, send_key, customer_id, journey_id, instance_id, node, channel,
             template, transactional, address, message_type, gate_pending, purpose,
             holdout_percent, time_zone, attempts, priority, quiet_policy, offer_placement,
             survey_id",
    )
    .bind(now - lease)
    .fetch_all(conn)
    .await
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageRow {
    /// Its id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The journey.
    pub journey_id: Option<Uuid>,
    /// The node.
    pub node: Option<String>,
    /// The channel.
    pub channel: String,
    /// The template.
    pub template: Option<String>,
    /// Its status.
    pub status: String,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// Subject (email).
    pub subject: Option<String>,
    /// Queued at.
    pub created_at: DateTime<Utc>,
    /// Sent at.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The customer's messages, newest first.
pub async fn of_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, journey_id, node, channel, template, status, skip_reason,
             subject, created_at, sent_at
         FROM messages WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(customer)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Messages of erased customers: address, subject and links are cleared (the counts stay,
/// with no link to a person once the instances are gone).
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET address = NULL, subject = NULL, links = '{}',
             status = CASE WHEN status IN ('queued', 'sending') THEN 'skipped' ELSE status END,
             skip_reason = CASE WHEN status IN ('queued', 'sending') THEN 'erased' ELSE skip_reason END
         WHERE tenant_id = $1 AND customer_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Messages of `merged` now belong to `survivor` (caps count them together).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queued messages of an instance that exits are dropped (`skipped`, `exited`): an exit
/// cancels what its waits had planned.
pub async fn cancel_for_instance(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'skipped', skip_reason = 'exited'
         WHERE tenant_id = $1 AND instance_id = $2 AND status = 'queued'",
    )
    .bind(tenant)
    .bind(instance)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The instance's messages that were opened or clicked: (node, opened, clicked).
pub async fn engagement(
    conn: &mut PgConnection,
    tenant: &TenantId,
    instance: Uuid,
) -> Result<Vec<(String, bool, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT node, opened_at IS NOT NULL, clicked_at IS NOT NULL FROM messages
         WHERE tenant_id = $1 AND instance_id = $2 AND node IS NOT NULL
           AND (opened_at IS NOT NULL OR clicked_at IS NOT NULL)",
    )
    .bind(tenant)
    .bind(instance)
    .fetch_all(conn)
    .await
}

/// A message as tracking sees it, after an event was recorded.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The customer.
    pub customer_id: Uuid,
    /// The journey.
    pub journey_id: Option<Uuid>,
    /// The node.
    pub node: Option<String>,
    /// The channel.
    pub channel: String,
    /// The template.
    pub template: Option<String>,
    /// Where it went.
    pub address: Option<String>,
    /// The first event of this kind for the message (publish it once).
    pub first_of_kind: bool,
    /// Soft bounces of the address in a row, this one included.
    pub soft_bounces: u32,
}

type TrackRow = (
    Uuid,
    Option<Uuid>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The message's status string for a tracking status.
pub fn status_str(s: Status) -> &'static str {
    match s {
        Status::Queued => "queued",
        Status::Sent => "sent",
        Status::SoftBounced => "soft_bounced",
        Status::Delivered => "delivered",
        Status::Opened => "opened",
        Status::Clicked => "clicked",
        Status::HardBounced => "bounced",
        Status::Complained => "complained",
    }
}

fn status_of(s: &str) -> Option<Status> {
    Some(match s {
        "queued" | "sending" => Status::Queued,
        "sent" => Status::Sent,
        "soft_bounced" => Status::SoftBounced,
        "delivered" => Status::Delivered,
        "opened" => Status::Opened,
        "clicked" => Status::Clicked,
        "bounced" => Status::HardBounced,
        "complained" => Status::Complained,
        _ => return None,
    })
}

/// Records tracking `event` on message `id`: the status moves only forward (events in any
/// order end the same), opens and clicks keep their first time. `None` for no such message.
pub async fn track(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    event: Status,
    now: DateTime<Utc>,
) -> Result<Option<Tracked>, sqlx::Error> {
    let row: Option<TrackRow> = sqlx::query_as(
        "SELECT customer_id, journey_id, node, channel, template, address, status, opened_at,
             clicked_at
         FROM messages WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((customer_id, journey_id, node, channel, template, address, status, opened, clicked)) =
        row
    else {
        return Ok(None);
    };
    let current = status_of(&status);
    let next = current.map(|c| c.advance(event));
    let first_of_kind = match event {
        Status::Opened => opened.is_none() && clicked.is_none(),
        Status::Clicked => clicked.is_none(),
        _ => current.is_some_and(|c| c.advance(event) != c),
    };
    sqlx::query(
        "UPDATE messages SET status = COALESCE($3, status),
             opened_at = CASE WHEN $4 THEN COALESCE(opened_at, $6) ELSE opened_at END,
             clicked_at = CASE WHEN $5 THEN COALESCE(clicked_at, $6) ELSE clicked_at END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(next.map(status_str))
    .bind(matches!(event, Status::Opened | Status::Clicked))
    .bind(matches!(event, Status::Clicked))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let soft_bounces = if event == Status::SoftBounced {
        let r: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND address = $2
               AND status = 'soft_bounced'
               AND sent_at > COALESCE((SELECT max(sent_at) FROM messages WHERE tenant_id = $1
                   AND address = $2 AND status IN ('delivered', 'opened', 'clicked')), 'epoch')",
        )
        .bind(tenant)
        .bind(&address)
        .fetch_one(&mut *conn)
        .await?;
        u32::try_from(r.0).unwrap_or(u32::MAX)
    } else {
        0
    };
    Ok(Some(Tracked {
        customer_id,
        journey_id,
        node,
        channel,
        template,
        address,
        first_of_kind,
        soft_bounces,
    }))
}

/// The message, as tracking sees it, without recording anything.
pub async fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Tracked>, sqlx::Error> {
    let row: Option<TrackRow> = sqlx::query_as(
        "SELECT customer_id, journey_id, node, channel, template, address, status, opened_at,
             clicked_at
         FROM messages WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(customer_id, journey_id, node, channel, template, address, ..)| Tracked {
            customer_id,
            journey_id,
            node,
            channel,
            template,
            address,
            first_of_kind: false,
            soft_bounces: 0,
        },
    ))
}

/// When the message was sent, if it was.
pub async fn sent_at(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let r: Option<(Option<DateTime<Utc>>,)> =
        sqlx::query_as("SELECT sent_at FROM messages WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(r.and_then(|(t,)| t))
}

/// Records the links of message `id`, rendered and about to be sent: a click can come before
/// the send is recorded (mail security scanners follow links the moment a mail arrives).
pub async fn record_links(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    links: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET links = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(links)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the message contained `url` (a click redirects only to those).
pub async fn contained(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    url: &str,
) -> Result<bool, sqlx::Error> {
    let r: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM messages WHERE tenant_id = $1 AND id = $2 AND $3 = ANY(links)",
    )
    .bind(tenant)
    .bind(id)
    .bind(url)
    .fetch_optional(conn)
    .await?;
    Ok(r.is_some())
}
