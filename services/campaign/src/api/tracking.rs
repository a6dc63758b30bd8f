//! Delivery tracking, behind the gateway's public `/t/...` routes (signed, expiring tokens
//! instead of API keys): the open pixel (machine opens flagged, not counted), the click
//! redirect (only to a link the message contained), one-click unsubscribe (POST, RFC 8058)
//! and the preference page (GET), and provider status callbacks (delivered, bounced hard or
//! soft, complained). Status only moves forward; a complaint or a hard bounce suppresses the
//! address at once, soft bounces after three in a row. Also a customer's messages.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::TenantId;
use crm_kafka::outbox;
use crm_service::{Code, Problem, TenantAnd};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ApiState;
use crate::domain::journeys::Channel;
use crate::domain::suppression::{channel_of, Reason};
use crate::domain::tracking::{is_machine_open, suppresses, Action, Claims, Status};
use crate::interactions::interaction;
use crate::store::messages::{self, Tracked};
use crate::store::suppressions;

/// Soft bounces in a row that suppress an address.
const SOFT_BOUNCE_THRESHOLD: u32 = 3;

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/internal/v1/track/o/{token}", get(open))
        .route("/internal/v1/track/c/{token}", get(click))
        .route(
            "/internal/v1/track/u/{token}",
            get(preferences).post(unsubscribe),
        )
        .route(
            "/internal/v1/track/status/{token}",
            axum::routing::post(status_callback),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/messages",
            get(of_customer),
        )
}

fn refused() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::InvalidToken,
        "this link is not valid or has expired",
    )
}

/// The claims of a valid token for `action`'s kind.
fn claims(s: &ApiState, token: &str, kind: fn(&Action) -> bool) -> Result<Claims, Problem> {
    let c = s
        .delivery
        .tracking
        .key
        .verify(token, Utc::now())
        .map_err(|_| refused())?;
    if !kind(&c.action) {
        return Err(refused());
    }
    Ok(c)
}

fn tenant_of(c: &Claims) -> Result<TenantId, Problem> {
    TenantId::parse(&c.tenant).map_err(|_| refused())
}

/// Records `event` on the message (forward only) and publishes what changed.
async fn record(
    s: &ApiState,
    tenant: &TenantId,
    message: Uuid,
    event: Status,
    extra: Value,
) -> Result<Option<Tracked>, Problem> {
    let mut tx = s.pool.begin().await?;
    let Some(t) = messages::track(&mut tx, tenant, message, event, Utc::now()).await? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    if t.first_of_kind {
        let mut props = json!({"message_id": message, "journey_id": t.journey_id,
                               "node": t.node, "channel": t.channel, "template": t.template});
        if let (Value::Object(p), Value::Object(x)) = (&mut props, extra) {
            p.extend(x);
        }
        out.push(interaction(
            tenant,
            event_kind(event),
            t.customer_id,
            props,
        )?);
    }
    let channel = channel_of(&t.channel);
    if let (Some(channel), Some(address)) = (channel, &t.address) {
        if suppresses(event, t.soft_bounces, SOFT_BOUNCE_THRESHOLD) {
            let reason = match event {
                Status::Complained => Reason::Complaint,
                Status::HardBounced => Reason::HardBounce,
                _ => Reason::SoftBounces,
            };
            suppressions::add(&mut tx, tenant, channel, address, reason, "tracking").await?;
        }
    }
    outbox::enqueue_all(&mut tx, &out).await?;
    tx.commit().await?;
    s.delivery.relay.notify_one();
    Ok(Some(t))
}

fn event_kind(s: Status) -> &'static str {
    match s {
        Status::Queued | Status::Sent => "message.sent",
        Status::SoftBounced => "message.soft_bounced",
        Status::Delivered => "message.delivered",
        Status::Opened => "message.opened",
        Status::Clicked => "message.clicked",
        Status::HardBounced => "message.bounced",
        Status::Complained => "message.complained",
    }
}

async fn open(
    State(s): State<ApiState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let pixel = (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    );
    // The pixel is answered whatever happens: a broken image helps nobody.
    let Ok(c) = claims(&s, &token, |a| matches!(a, Action::Open)) else {
        return pixel.into_response();
    };
    let Ok(tenant) = tenant_of(&c) else {
        return pixel.into_response();
    };
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let sent_at = {
        let Ok(mut conn) = s.pool.acquire().await else {
            return pixel.into_response();
        };
        messages::sent_at(&mut conn, &tenant, c.message)
            .await
            .ok()
            .flatten()
    };
    let seconds = sent_at.map_or(0, |t| (Utc::now() - t).num_seconds());
    if is_machine_open(ua, seconds) {
        tracing::debug!(message = %c.message, "machine open flagged, not counted");
    } else if let Err(e) = record(&s, &tenant, c.message, Status::Opened, json!({})).await {
        tracing::warn!(message = %c.message, code = e.code(), "open not recorded");
    }
    pixel.into_response()
}

async fn click(State(s): State<ApiState>, Path(token): Path<String>) -> Result<Response, Problem> {
    let c = claims(&s, &token, |a| matches!(a, Action::Click { .. }))?;
    let Action::Click { url } = &c.action else {
        return Err(refused());
    };
    let tenant = tenant_of(&c)?;
    let mut conn = s.pool.acquire().await?;
    if !messages::contained(&mut conn, &tenant, c.message, url).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::UnknownLink,
            "this link is not one the message contained",
        ));
    }
    drop(conn);
    record(&s, &tenant, c.message, Status::Clicked, json!({"url": url})).await?;
    Ok(Redirect::to(url).into_response())
}

async fn preferences(
    State(s): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Html<String>, Problem> {
    claims(&s, &token, |a| matches!(a, Action::Unsubscribe))?;
    Ok(Html(
        "<!doctype html><html><body><h1>Email preferences</h1>\
         <p>You can stop receiving these messages.</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form></body></html>"
            .to_owned(),
    ))
}

async fn unsubscribe(
    State(s): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Html<String>, Problem> {
    let c = claims(&s, &token, |a| matches!(a, Action::Unsubscribe))?;
    let tenant = tenant_of(&c)?;
    let mut tx = s.pool.begin().await?;
    if let Some(t) = messages::find(&mut tx, &tenant, c.message).await? {
        let channel = channel_of(&t.channel).unwrap_or(Channel::Email);
        if let Some(address) = &t.address {
            let added = suppressions::add(
                &mut tx,
                &tenant,
                channel,
                address,
                Reason::Unsubscribe,
                "unsubscribe link",
            )
            .await?;
            if added {
                let e = interaction(
                    &tenant,
                    "message.unsubscribed",
                    t.customer_id,
                    json!({"message_id": c.message, "journey_id": t.journey_id,
                           "channel": t.channel}),
                )?;
                outbox::enqueue_all(&mut tx, &[e]).await?;
            }
        }
    }
    tx.commit().await?;
    s.delivery.relay.notify_one();
    Ok(Html(
        "<!doctype html><html><body><p>You are unsubscribed.</p></body></html>".to_owned(),
    ))
}

/// A provider's status callback: Twilio-style form (`MessageStatus`) or JSON
/// (`{"event": "delivered|bounced|complained", "bounce": "hard|soft"}`).
async fn status_callback(
    State(s): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Problem> {
    let c = claims(&s, &token, |a| matches!(a, Action::Status))?;
    let tenant = tenant_of(&c)?;
    let text = String::from_utf8_lossy(&body);
    let field = |name: &str| -> Option<String> {
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            return v.get(name).and_then(Value::as_str).map(str::to_owned);
        }
        text.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    };
    let event = match (
        field("event").or_else(|| field("MessageStatus")).as_deref(),
        field("bounce").as_deref(),
    ) {
        (Some("delivered"), _) => Status::Delivered,
        (Some("complained" | "spam"), _) => Status::Complained,
        (Some("bounced"), Some("soft")) => Status::SoftBounced,
        (Some("bounced" | "undelivered" | "failed"), _) => Status::HardBounced,
        (Some("sent" | "queued" | "accepted" | "sending"), _) => return Ok(StatusCode::NO_CONTENT),
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidBody,
                "a status callback names event (delivered, bounced with bounce hard|soft, \
                 complained) or MessageStatus",
            ))
        }
    };
    record(&s, &tenant, c.message, event, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn of_customer(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<super::bodies::MessageList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    if crate::store::contacts::find(&mut conn, &tenant, id)
        .await?
        .is_none()
    {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::ContactNotFound,
            "campaign knows no customer with this id",
        ));
    }
    let items = messages::of_customer(&mut conn, &tenant, id, 200).await?;
    Ok(Json(super::bodies::MessageList { items }))
}
