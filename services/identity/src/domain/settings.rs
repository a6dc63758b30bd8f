//! Per-tenant identity settings: survivorship, email provider rules, phone region, junk
//! identifiers and identifier caps. Stored as JSON in `identity_settings`; a tenant without a
//! row gets the defaults.

use serde::{Deserialize, Serialize};

use crate::domain::standardise::{region, ProviderRules};
use crate::domain::survivorship::Survivorship;

/// An identifier that never identifies anyone (a placeholder typed into a form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedIdentifier {
    /// Identifier kind (`email`, `phone`, ...).
    pub kind: String,
    /// Its standardised value.
    pub value: String,
}

/// A tenant's identity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(as = IdentitySettings)]
pub struct Settings {
    /// How traits of two profiles (or a profile and an event) combine.
    pub survivorship: Survivorship,
    /// Sources from most to least trusted, for `most_trusted_source`.
    pub source_trust: Vec<String>,
    /// Provider rules (Gmail dots, `+tags`) in email matching keys.
    pub email_provider_rules: ProviderRules,
    /// ISO region used to read phone numbers written without a country code (`GB`, `ES`).
    pub phone_region: Option<String>,
    /// Junk identifiers of this tenant, beside the built-in ones.
    pub blocklist: Vec<BlockedIdentifier>,
    /// Most identifiers of one kind a customer may hold; a link beyond it is not made and the
    /// customers go to review instead of merging.
    pub max_identifiers_per_kind: u32,
    /// Days a customer's events stay on the timeline (default 730).
    pub timeline_retention_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            survivorship: Survivorship::MostRecent,
            source_trust: Vec::new(),
            email_provider_rules: ProviderRules::Off,
            phone_region: None,
            blocklist: Vec::new(),
            max_identifiers_per_kind: 10,
            timeline_retention_days: 730,
        }
    }
}

impl Settings {
    /// Checks values serde cannot: the phone region and the cap.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(code) = &self.phone_region {
            if region(code).is_none() {
                return Err(format!(
                    "phone_region {code:?} is not an ISO 3166 region code such as GB or ES"
                ));
            }
        }
        if !(1..=1000).contains(&self.max_identifiers_per_kind) {
            return Err("max_identifiers_per_kind must be between 1 and 1000".into());
        }
        if !(1..=36_500).contains(&self.timeline_retention_days) {
            return Err("timeline_retention_days must be between 1 and 36500".into());
        }
        Ok(())
    }

    /// Whether `(kind, value)` is a junk identifier, built in or of this tenant.
    pub fn is_blocked(&self, kind: &str, value: &str) -> bool {
        builtin_junk(kind, value)
            || self
                .blocklist
                .iter()
                .any(|b| b.kind == kind && b.value.eq_ignore_ascii_case(value))
    }
}

/// Placeholder emails and phone numbers seen in every real customer base.
fn builtin_junk(kind: &str, value: &str) -> bool {
    match kind {
        "email" => {
            let Some((local, domain)) = value.rsplit_once('@') else {
                return false;
            };
            let local = local.to_lowercase();
            let domain_name = domain.split('.').next().unwrap_or("");
            const PLACEHOLDERS: &[&str] = &[
                "test",
                "none",
                "noemail",
                "no-email",
                "no.email",
                "nomail",
                "null",
                "unknown",
                "asdf",
                "na",
                "n/a",
                "email",
                "noreply",
                "no-reply",
                "donotreply",
                "x",
                "a",
            ];
            let placeholder = PLACEHOLDERS.contains(&local.as_str());
            // "test@test.com", "none@none.com": a placeholder at its own name is junk anywhere;
            // no-reply style addresses are never a person.
            (placeholder && (domain_name == local || local.contains("reply")))
                || local.contains("noreply")
                || local.contains("no-reply")
                || local.contains("donotreply")
        }
        "phone" => {
            let digits: Vec<u8> = value.bytes().filter(u8::is_ascii_digit).collect();
            let Some(national) = digits.get(digits.len().saturating_sub(8)..) else {
                return false;
            };
            let same = national.windows(2).all(|w| w[0] == w[1]);
            let ascending = national
                .windows(2)
                .all(|w| w[1] == w[0] + 1 || (w[0] == b'9' && w[1] == b'0'));
            digits.len() >= 7 && (same || ascending)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_identifiers() {
        let s = Settings::default();
        for (kind, value) in [
            ("email", "test@test.com"),
            ("email", "none@none.org"),
            ("email", "noreply@shop.example"),
            ("phone", "+440000000000"),
            ("phone", "+11234567890"),
            ("phone", "99999999"),
        ] {
            assert!(s.is_blocked(kind, value), "{kind} {value}");
        }
        for (kind, value) in [
            ("email", "ana@example.com"),
            ("email", "test@example.com"),
            ("phone", "+442079460958"),
            ("user_id", "0000000000"),
        ] {
            assert!(!s.is_blocked(kind, value), "{kind} {value}");
        }
        let s = Settings {
            blocklist: vec![BlockedIdentifier {
                kind: "email".into(),
                value: "info@acme.com".into(),
            }],
            ..Settings::default()
        };
        assert!(s.is_blocked("email", "Info@acme.com"));
    }

    #[test]
    fn settings_json_is_closed_and_checked() {
        let s: Settings = serde_json::from_str(r#"{"phone_region": "GB"}"#).unwrap();
        assert_eq!(s.max_identifiers_per_kind, 10);
        s.validate().unwrap();
        assert!(serde_json::from_str::<Settings>(r#"{"phone_regio": "GB"}"#).is_err());
        let bad: Settings = serde_json::from_str(r#"{"phone_region": "XX"}"#).unwrap();
        assert!(bad.validate().unwrap_err().contains("XX"));
    }
}
