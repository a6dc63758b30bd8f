//! Survey links (pure: the deployment's tracking key signs them): a signed, expiring token in the path of the gateway's public `/s/{token}`
//! route. A personal link names its customer (the answer is theirs, verified, and one per
//! link); a public link names none (each response is an answer of its own, anonymous).

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use uuid::Uuid;

use crate::domain::tracking::{Action, Claims, TokenError, TrackingKey};

/// The longest a link lives.
pub const MAX_DAYS: i64 = 365;

/// A survey link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its id (the answer key of a personal link).
    pub id: Uuid,
    /// The token.
    pub token: String,
    /// The public URL.
    pub url: String,
    /// Until when it is taken.
    pub expires_at: DateTime<Utc>,
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The link's id.
    pub link: Uuid,
    /// The survey.
    pub survey: Uuid,
    /// The customer of a personal link.
    pub customer: Option<Uuid>,
}

/// How long the survey link of a journey message lives.
pub const MESSAGE_DAYS: i64 = 30;

/// A link to `survey` of `tenant` under `base_url` (the gateway's public address), for
/// `customer` when personal, valid for `days`.
pub fn issue(
    key: &TrackingKey,
    base_url: &str,
    tenant: &TenantId,
    survey: Uuid,
    customer: Option<Uuid>,
    days: i64,
    now: DateTime<Utc>,
) -> Link {
    issue_as(
        key,
        base_url,
        tenant,
        Uuid::now_v7(),
        survey,
        customer,
        days,
        now,
    )
}

/// [`issue`] with the link's id given: a journey message's link has the message's id, so a
/// message's survey is answered once however often it is rendered.
#[allow(clippy::too_many_arguments)]
pub fn issue_as(
    key: &TrackingKey,
    base_url: &str,
    tenant: &TenantId,
    id: Uuid,
    survey: Uuid,
    customer: Option<Uuid>,
    days: i64,
    now: DateTime<Utc>,
) -> Link {
    let expires_at = now + Duration::days(days.clamp(1, MAX_DAYS));
    let token = key.issue(&Claims {
        tenant: tenant.as_str().to_owned(),
        message: id,
        action: Action::Survey { survey, customer },
        expires: expires_at.timestamp(),
    });
    let url = format!("{}/s/{token}", base_url.trim_end_matches('/'));
    Link {
        id,
        token,
        url,
        expires_at,
    }
}

/// The claims of a valid survey token.
pub fn verify(
    key: &TrackingKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LinkClaims, TokenError> {
    let c = key.verify(token, now)?;
    let Action::Survey { survey, customer } = c.action else {
        return Err(TokenError::Malformed);
    };
    let tenant = TenantId::parse(&c.tenant).map_err(|_| TokenError::Malformed)?;
    Ok(LinkClaims {
        tenant,
        link: c.message,
        survey,
        customer,
    })
}
