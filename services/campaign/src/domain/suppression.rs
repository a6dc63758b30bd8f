//! The suppression list's values: which address a suppression names (normalised per channel,
//! so `Ana@Example.com` and `ana@example.com` are one entry) and why it exists.

use serde::{Deserialize, Serialize};

use crate::domain::journeys::Channel;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SuppressionReason)]
pub enum Reason {
    /// The recipient unsubscribed.
    Unsubscribe,
    /// The address does not exist.
    HardBounce,
    /// The recipient marked a message as spam.
    Complaint,
    /// Soft bounces past the tenant's threshold.
    SoftBounces,
    /// Added by hand.
    Manual,
}

impl Reason {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsubscribe => "unsubscribe",
            Reason::HardBounce => "hard_bounce",
            Reason::Complaint => "complaint",
            Reason::SoftBounces => "soft_bounces",
            Reason::Manual => "manual",
        }
    }
}

/// The channel as stored.
pub fn channel_str(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Push => "push",
    }
}

/// The channel stored as `s`, if it names one.
pub fn channel_of(s: &str) -> Option<Channel> {
    match s {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        "push" => Some(Channel::Push),
        _ => None,
    }
}

/// The address in the form the list keeps, or why it is not one: an email lower-cased (the
/// list must match however it was typed), an E.164 phone number for SMS, a device token for
/// push (1 to 4,096 visible characters).
pub fn normalise(channel: Channel, raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    match channel {
        Channel::Email => {
            let (local, domain) = s.rsplit_once('@').ok_or("an email address has an `@`")?;
            if local.is_empty()
                || !domain.contains('.')
                || s.len() > 254
                || s.contains(char::is_whitespace)
            {
                return Err("not an email address such as ana@example.com");
            }
            Ok(s.to_lowercase())
        }
        Channel::Sms => {
            let digits = s
                .strip_prefix('+')
                .ok_or("an SMS address is E.164: `+` and 8 to 15 digits")?;
            if (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
            {
                Ok(s.to_owned())
            } else {
                Err("an SMS address is E.164: `+` and 8 to 15 digits")
            }
        }
        Channel::Push => {
            if s.is_empty() || s.len() > 4096 || s.chars().any(char::is_control) {
                Err("a push address is a device token of 1 to 4,096 visible characters")
            } else {
                Ok(s.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_per_channel() {
        assert_eq!(
            normalise(Channel::Email, " Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        assert!(normalise(Channel::Email, "ana").is_err());
        assert!(normalise(Channel::Email, "ana@localhost").is_err());
        assert_eq!(
            normalise(Channel::Sms, "+34612345678").unwrap(),
            "+34612345678"
        );
        assert!(normalise(Channel::Sms, "612345678").is_err());
        assert!(normalise(Channel::Sms, "+3461234567a").is_err());
        assert!(normalise(Channel::Push, "").is_err());
        assert!(normalise(Channel::Push, "tok\n").is_ok());
        assert!(normalise(Channel::Push, "to\u{0}k").is_err());
    }
}
