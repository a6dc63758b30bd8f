//! The identifiers an event carries, standardised, in resolution order.

use crm_envelope::Envelope;

use crate::domain::settings::Settings;
use crate::domain::standardise::{region, Checked, EmailAddress, PhoneE164, Quality};

/// One identifier: `(kind, value)`, such as `("email", "ana@example.com")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentifierKey {
    /// `user_id`, `anonymous_id`, `email`, `phone` or `handle:<network>`.
    pub kind: String,
    /// The standardised matching value (emails as their key, phones in E.164).
    pub value: String,
}

/// What standardisation made of one identifier field of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCheck {
    /// Field name (`email`, `phone`, ...).
    pub field: String,
    /// The value as received (invalid values are kept with this flag, never used to match).
    pub received: String,
    /// How it fared.
    pub quality: Quality,
}

/// The identifiers of an event, and the quality of each identifier field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Usable identifiers, most authoritative first: user_id, anonymous_id, email, phone,
    /// social handles. Junk identifiers (the tenant's blocklist) are not among them.
    pub keys: Vec<IdentifierKey>,
    /// One entry per identifier field present in the event.
    pub checks: Vec<FieldCheck>,
    /// Junk identifiers left out, by kind (values are not kept: they identify no one).
    pub blocked: Vec<String>,
}

impl Extracted {
    fn push(&mut self, settings: &Settings, kind: String, value: String) {
        if value.is_empty() {
            return;
        }
        if settings.is_blocked(&kind, &value) {
            self.blocked.push(kind);
            return;
        }
        let key = IdentifierKey { kind, value };
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Records the standardisation of one field (an identifier or a trait).
    pub fn check(&mut self, field: &str, received: &str, checked: &Checked) {
        self.checks.push(FieldCheck {
            field: field.to_owned(),
            received: received.to_owned(),
            quality: checked.quality,
        });
    }
}

/// Standardises and orders the identifiers of `envelope` under the tenant's `settings`.
pub fn identifiers_of(envelope: &Envelope, settings: &Settings) -> Extracted {
    let id = &envelope.identity;
    let mut out = Extracted::default();
    if let Some(v) = &id.user_id {
        out.push(settings, "user_id".into(), v.trim().to_owned());
    }
    if let Some(v) = &id.anonymous_id {
        out.push(settings, "anonymous_id".into(), v.trim().to_owned());
    }
    if let Some(raw) = id.email.as_deref().filter(|v| !v.trim().is_empty()) {
        let parsed = EmailAddress::parse(raw);
        let checked = Checked::of(raw, parsed.as_ref().map(EmailAddress::as_str));
        out.check("email", raw, &checked);
        if let Some(address) = parsed {
            out.push(
                settings,
                "email".into(),
                address.key(settings.email_provider_rules),
            );
        }
    }
    if let Some(raw) = id.phone.as_deref().filter(|v| !v.trim().is_empty()) {
        let default_region = settings.phone_region.as_deref().and_then(region);
        let parsed = PhoneE164::parse(raw, default_region);
        let checked = Checked::of(raw, parsed.as_ref().map(PhoneE164::as_str));
        out.check("phone", raw, &checked);
        if let Some(number) = parsed {
            out.push(settings, "phone".into(), number.as_str().to_owned());
        }
    }
    for h in &id.handles {
        let network = h.network.trim().to_lowercase();
        let handle = h.handle.trim().trim_start_matches('@').to_lowercase();
        if !network.is_empty() {
            out.push(settings, format!("handle:{network}"), handle);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_envelope::{Handle, Identity, TenantId};

    fn event(identity: Identity) -> Envelope {
        let mut e = Envelope::domain(
            TenantId::parse("t").unwrap(),
            "track",
            uuid::Uuid::nil(),
            "test",
        );
        e.identity = identity;
        e
    }

    fn pairs(x: &Extracted) -> Vec<(String, String)> {
        x.keys
            .iter()
            .map(|k| (k.kind.clone(), k.value.clone()))
            .collect()
    }

    #[test]
    fn orders_and_standardises_identifiers() {
        let settings = Settings {
            phone_region: Some("GB".into()),
            ..Settings::default()
        };
        let x = identifiers_of(
            &event(Identity {
                user_id: Some(" u1 ".into()),
                anonymous_id: Some(String::new()),
                email: Some(" Ana@Example.COM".into()),
                phone: Some("020 7946 0958".into()),
                handles: vec![Handle {
                    network: "Twitter".into(),
                    handle: "@Ana".into(),
                }],
            }),
            &settings,
        );
        assert_eq!(
            pairs(&x),
            vec![
                ("user_id".into(), "u1".into()),
                ("email".into(), "ana@example.com".into()),
                ("phone".into(), "+442079460958".into()),
                ("handle:twitter".into(), "ana".into()),
            ]
        );
        assert_eq!(x.checks[0].quality, Quality::Standardised);
    }

    #[test]
    fn invalid_and_junk_identifiers_are_flagged_not_used() {
        let x = identifiers_of(
            &event(Identity {
                user_id: None,
                anonymous_id: Some("a1".into()),
                email: Some("ana@".into()),
                phone: Some("0000000000".into()),
                handles: vec![],
            }),
            &Settings {
                phone_region: Some("US".into()),
                ..Settings::default()
            },
        );
        assert_eq!(pairs(&x), vec![("anonymous_id".into(), "a1".into())]);
        assert_eq!(x.checks[0].received, "ana@");
        assert_eq!(x.checks[0].quality, Quality::Invalid);
        let y = identifiers_of(
            &event(Identity {
                email: Some("test@test.com".into()),
                ..Identity::default()
            }),
            &Settings::default(),
        );
        assert!(y.keys.is_empty());
        assert_eq!(y.blocked, vec!["email".to_owned()]);
    }
}
