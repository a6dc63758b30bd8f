//! Conversations and social listening, the pure half (issue 18): the normalised mention every
//! network's payload is mapped to, the tenant's tracked terms and how a mention matches them
//! ([`mention`]), and the networks behind one trait ([`network`]): Mastodon's signed webhook
//! (`status.created`, [`mastodon`]), X's Account Activity webhook ([`x`]), and email received
//! through an inbound webhook ([`email`]), threaded by its `In-Reply-To` and `References`, and
//! SMS received through the SMS provider's inbound webhook ([`sms`]).

pub mod email;
pub mod health;
pub mod mastodon;
pub mod mention;
pub mod network;
pub mod sms;
pub mod threads;
pub mod x;

use email::Email;
use mastodon::Mastodon;
use network::Network;
use sms::Sms;
use x::X;

/// The networks connectors support.
pub const NETWORKS: [&str; 4] = ["mastodon", "x", "email", "sms"];

/// The network called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Network> {
    match name {
        "mastodon" => Some(&Mastodon),
        "x" => Some(&X),
        "email" => Some(&Email),
        "sms" => Some(&Sms),
        _ => None,
    }
}
