//! The SSRF guard of outbound HTTP (webhooks, providers): the target's host is resolved once,
//! every address it resolves to must be public (`crate::signing::is_public`) unless the
//! deployment allows private targets (campaign's `CRM_CAMPAIGN__ALLOW_PRIVATE_TARGETS`, for local
//! receivers in tests), and the request is pinned to the address checked, so a second DNS
//! answer (rebinding) cannot send it elsewhere. Redirects are not followed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::signing::is_public;

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not an http(s) URL with a host.
    #[error("not an http or https URL with a host")]
    BadUrl,
    /// The host does not resolve.
    #[error("the host does not resolve")]
    Unresolved,
    /// It resolves to a private, loopback or otherwise internal address.
    #[error("the target resolves to a private or internal address, which is refused")]
    Private,
}

/// Outbound HTTP with the guard.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// Whether private and loopback targets are allowed.
    pub allow_private: bool,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Guard {
    /// A client pinned to the checked address of `url`'s host.
    pub async fn client(&self, url: &str) -> Result<reqwest::Client, GuardError> {
        let parsed = url::Url::parse(url).map_err(|_| GuardError::BadUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(GuardError::BadUrl);
        }
        let host = parsed.host_str().ok_or(GuardError::BadUrl)?.to_owned();
        let port = parsed.port_or_known_default().ok_or(GuardError::BadUrl)?;
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|_| GuardError::Unresolved)?
            .collect();
        let Some(first) = addrs.first().copied() else {
            return Err(GuardError::Unresolved);
        };
        if !self.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(GuardError::Private);
        }
        reqwest::Client::builder()
            .resolve(&bare, first)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .build()
            .map_err(|_| GuardError::BadUrl)
    }
}
