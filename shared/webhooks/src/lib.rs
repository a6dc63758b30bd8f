//! Outbound webhooks as the Standard Webhooks specification has them, in one place for every
//! part that calls out: the journeys' webhook channel (campaign) and, next, the gateway's
//! webhook subscriptions.
//!
//! - [`signing`]: `whsec_` secrets, `v1,` HMAC-SHA256 signatures (several during a rotation),
//!   verification, the retry schedule and what an answer means, the public-address check.
//! - [`guard`]: the SSRF guard (resolve once, refuse private addresses, pin the request to
//!   the checked address, follow no redirect).
//! - [`call`]: one signed call through the guard.

#![forbid(unsafe_code)]

pub mod call;
pub mod guard;
pub mod signing;
