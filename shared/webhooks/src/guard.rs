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
    /// Resolves `url`'s host and checks every address: the host and the address to pin.
    async fn check(&self, url: &str) -> Result<(String, SocketAddr), GuardError> {
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
        Ok((bare, first))
    }

    fn build(&self, host: &str, addr: SocketAddr) -> Result<reqwest::Client, GuardError> {
        reqwest::Client::builder()
            .resolve(host, addr)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .build()
            .map_err(|_| GuardError::BadUrl)
    }

    /// A client pinned to the checked address of `url`'s host.
    pub async fn client(&self, url: &str) -> Result<reqwest::Client, GuardError> {
        let (host, addr) = self.check(url).await?;
        self.build(&host, addr)
    }
}

/// Clients pinned by a [`Guard`], kept per host and checked address so that deliveries to the
/// same endpoint reuse their connections (and their TLS set-up). The host is still resolved
/// and checked on every call: a host that moves to another address gets a new client, and one
/// that moves to a private address is refused.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: std::sync::Mutex<std::collections::HashMap<(String, SocketAddr), reqwest::Client>>,
}

/// Most clients a cache keeps before it starts afresh.
const CACHE_LIMIT: usize = 1_000;

impl ClientCache {
    /// A client for `url` through `guard`, from the cache when its host still resolves to the
    /// address it was pinned to.
    pub async fn client(&self, guard: &Guard, url: &str) -> Result<reqwest::Client, GuardError> {
        let (host, addr) = guard.check(url).await?;
        let key = (host, addr);
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        let client = guard.build(&key.0, addr)?;
        let mut clients = self.lock();
        if clients.len() >= CACHE_LIMIT {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, SocketAddr), reqwest::Client>>
    {
        // A panic while holding the lock leaves a map that is still valid.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow_private: bool) -> Guard {
        Guard {
            allow_private,
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn private_targets_are_refused_through_the_cache_too() {
        let cache = ClientCache::default();
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/",
            "http://169.254.169.254/",
        ] {
            assert_eq!(
                guard(false).client(url).await.unwrap_err(),
                GuardError::Private
            );
            assert_eq!(
                cache.client(&guard(false), url).await.unwrap_err(),
                GuardError::Private
            );
        }
        assert_eq!(
            guard(false).client("ftp://example.com/").await.unwrap_err(),
            GuardError::BadUrl
        );
        assert!(cache
            .client(&guard(true), "http://127.0.0.1:9/x")
            .await
            .is_ok());
        assert!(cache
            .client(&guard(true), "http://127.0.0.1:9/y")
            .await
            .is_ok());
        assert_eq!(cache.lock().len(), 1, "one client per host and address");
    }
}
