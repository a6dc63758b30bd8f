//! The identifiers an event carries, in resolution order.

use crm_envelope::Envelope;

/// One identifier: `(kind, value)`, such as `("email", "ana@example.com")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentifierKey {
    /// `user_id`, `anonymous_id`, `email`, `phone` or `handle:<network>`.
    pub kind: String,
    /// The value, trimmed (emails lower-cased).
    pub value: String,
}

/// The identifiers of `envelope`, most authoritative first: user_id, anonymous_id, email,
/// phone, social handles. Empty values are dropped. Full standardisation (E.164 phones,
/// provider rules for emails) is the next identity issue.
pub fn identifiers_of(envelope: &Envelope) -> Vec<IdentifierKey> {
    let id = &envelope.identity;
    let mut keys = Vec::new();
    let mut push = |kind: String, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            let key = IdentifierKey { kind, value };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    };
    push(
        "user_id".into(),
        id.user_id.as_deref().map(|v| v.trim().to_owned()),
    );
    push(
        "anonymous_id".into(),
        id.anonymous_id.as_deref().map(|v| v.trim().to_owned()),
    );
    push(
        "email".into(),
        id.email.as_deref().map(|v| v.trim().to_lowercase()),
    );
    push(
        "phone".into(),
        id.phone.as_deref().map(|v| v.trim().to_owned()),
    );
    for h in &id.handles {
        push(
            format!("handle:{}", h.network.trim().to_lowercase()),
            Some(h.handle.trim().to_lowercase()),
        );
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_envelope::{Handle, Identity, TenantId};

    #[test]
    fn orders_and_cleans_identifiers() {
        let mut e = Envelope::domain(
            TenantId::parse("t").unwrap(),
            "track",
            uuid::Uuid::nil(),
            "test",
        );
        e.identity = Identity {
            user_id: Some(" u1 ".into()),
            anonymous_id: Some(String::new()),
            email: Some(" Ana@Example.COM".into()),
            phone: None,
            handles: vec![Handle {
                network: "Twitter".into(),
                handle: "@Ana".into(),
            }],
        };
        let keys: Vec<(String, String)> = identifiers_of(&e)
            .into_iter()
            .map(|k| (k.kind, k.value))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("user_id".into(), "u1".into()),
                ("email".into(), "ana@example.com".into()),
                ("handle:twitter".into(), "@ana".into()),
            ]
        );
    }
}
