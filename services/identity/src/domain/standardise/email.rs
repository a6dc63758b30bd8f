//! Email addresses: trimmed, checked, domain lower-cased; a matching key that may also apply
//! provider rules (dots and `+tags` that reach the same mailbox).

use serde::{Deserialize, Serialize};

use super::Checked;

/// Whether matching keys apply mailbox provider rules (a per-tenant setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRules {
    /// The key is the address, lower-cased.
    #[default]
    Off,
    /// `+tag` suffixes dropped everywhere; dots dropped and `googlemail.com` read as
    /// `gmail.com` for Gmail, where they never change the mailbox.
    On,
}

/// Domains where dots in the local part are ignored by the provider.
const DOTLESS_DOMAINS: &[&str] = &["gmail.com", "googlemail.com"];

/// An email address in standard form (trimmed, domain lower-cased, the local part as typed):
/// only [`EmailAddress::parse`] makes one, so a function that takes it never sees an
/// unchecked string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address in standard form; `None` when `raw` does not look like `local@domain.tld`.
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        let (local, domain) = s.rsplit_once('@')?;
        let domain = domain.to_lowercase();
        (valid_local(local) && valid_domain(&domain)).then(|| Self(format!("{local}@{domain}")))
    }

    /// The standard form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The matching key: lower-cased, with `rules` applied.
    pub fn key(&self, rules: ProviderRules) -> String {
        email_key(&self.0, rules)
    }
}

/// The standard form of an email address ([`EmailAddress`]) with its quality flag; invalid
/// (kept as received) when it does not look like `local@domain.tld`.
pub fn email(raw: &str) -> Checked {
    match EmailAddress::parse(raw) {
        Some(address) => Checked::valid(raw, address.0),
        None => Checked::invalid(raw),
    }
}

/// The matching key of a standardised address: lower-cased, with `rules` applied.
fn email_key(standard: &str, rules: ProviderRules) -> String {
    let lower = standard.to_lowercase();
    if rules == ProviderRules::Off {
        return lower;
    }
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return lower;
    };
    let local = local.split('+').next().unwrap_or(local);
    if DOTLESS_DOMAINS.contains(&domain) {
        format!("{}@gmail.com", local.replace('.', ""))
    } else {
        format!("{local}@{domain}")
    }
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c) || !c.is_ascii())
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_address_becomes_an_email_address() {
        let a = EmailAddress::parse("  Ana.Lima+news@GoogleMail.com ").unwrap();
        assert_eq!(a.as_str(), "Ana.Lima+news@googlemail.com");
        assert_eq!(a.key(ProviderRules::On), "analima@gmail.com");
        assert_eq!(a.key(ProviderRules::Off), "ana.lima+news@googlemail.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@@example.com",
            "a..b@example.com",
        ] {
            assert_eq!(EmailAddress::parse(bad), None, "{bad}");
        }
    }
    use crate::domain::standardise::Quality;
    use proptest::prelude::*;

    #[test]
    fn standard_forms() {
        let c = email("  Ana.Lima+news@Example.COM ");
        assert_eq!(
            (c.value.as_str(), c.quality),
            ("Ana.Lima+news@example.com", Quality::Standardised)
        );
        assert_eq!(email("ana@example.com").quality, Quality::Valid);
        assert_eq!(email("josé@correo.es").quality, Quality::Valid);
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@-x.com",
            "ana..b@example.com",
            "ana@example.c0m",
        ] {
            let c = email(bad);
            assert_eq!(
                (c.value.as_str(), c.quality),
                (bad, Quality::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn provider_rules_in_keys() {
        let std = email("A.Lima+news@GoogleMail.com").value;
        assert_eq!(
            email_key(&std, ProviderRules::Off),
            "a.lima+news@googlemail.com"
        );
        assert_eq!(email_key(&std, ProviderRules::On), "alima@gmail.com");
        let other = email("a.lima+news@example.com").value;
        assert_eq!(email_key(&other, ProviderRules::On), "a.lima@example.com");
    }

    proptest! {
        #[test]
        fn valid_addresses_round_trip(local in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,5})?", domain in "[a-z]{1,10}\\.(com|org|es)") {
            let raw = format!("{local}@{domain}");
            let c = email(&raw);
            prop_assert_eq!(c.quality, Quality::Valid);
            prop_assert_eq!(email_key(&c.value, ProviderRules::Off), raw);
        }

        #[test]
        fn keys_are_idempotent(s in "\\PC{0,30}") {
            let c = email(&s);
            if c.is_valid() {
                let k = email_key(&c.value, ProviderRules::On);
                prop_assert_eq!(email_key(&k, ProviderRules::On), k.clone());
            }
        }
    }
}
