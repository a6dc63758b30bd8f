//! Phone numbers to E.164 (`+441632960961`), with libphonenumber's metadata: a number without
//! an international prefix is read in the tenant's default region.

use phonenumber::country::Id;
use phonenumber::Mode;

use super::Checked;

/// Parses a region code such as `GB` or `es`; `None` when unknown.
pub fn region(code: &str) -> Option<Id> {
    code.trim().to_uppercase().parse().ok()
}

/// A phone number in E.164 form (`+441632960961`): only [`PhoneE164::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// The E.164 form of `raw`, read in `default_region` when it has no `+` or `00` prefix;
    /// `None` when it is not a valid number of any region.
    pub fn parse(raw: &str, default_region: Option<Id>) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return None;
        }
        let international = trimmed
            .strip_prefix("00")
            .map_or_else(|| trimmed.to_owned(), |rest| format!("+{rest}"));
        let region = if international.starts_with('+') {
            None
        } else {
            default_region
        };
        match phonenumber::parse(region, &international) {
            Ok(number) if phonenumber::is_valid(&number) => {
                Some(Self(number.format().mode(Mode::E164).to_string()))
            }
            _ => None,
        }
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The E.164 form of `raw` ([`PhoneE164`]) with its quality flag; invalid (kept as received)
/// when it is not a valid number of any region.
pub fn phone(raw: &str, default_region: Option<Id>) -> Checked {
    match PhoneE164::parse(raw, default_region) {
        Some(number) => Checked::valid(raw, number.0),
        None => Checked::invalid(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::standardise::Quality;

    #[test]
    fn only_a_valid_number_becomes_a_phone_e164() {
        let n = PhoneE164::parse("612 34 56 78", region("ES")).unwrap();
        assert_eq!(n.as_str(), "+34612345678");
        assert_eq!(PhoneE164::parse("612 34 56 78", None), None);
        assert_eq!(PhoneE164::parse("12", region("GB")), None);
        assert_eq!(PhoneE164::parse("", region("GB")), None);
    }

    #[test]
    fn national_and_international_forms() {
        let gb = region("gb");
        assert!(gb.is_some());
        for raw in ["020 7946 0958", "+44 20 7946 0958", "0044 20-7946-0958"] {
            let c = phone(raw, gb);
            assert_eq!(c.value, "+442079460958", "{raw}");
        }
        let es = region("ES");
        assert_eq!(phone("612 34 56 78", es).value, "+34612345678");
        // The default region does not apply to a number with its own country code.
        assert_eq!(phone("+34 612 34 56 78", gb).value, "+34612345678");
        assert_eq!(phone("+34612345678", None).quality, Quality::Valid);
    }

    #[test]
    fn invalid_numbers_are_kept() {
        for bad in ["000", "12", "not a phone", "", "020 7946 0958"] {
            // The last: a national number with no region to read it in.
            let c = phone(bad, None);
            assert_eq!(
                (c.value.as_str(), c.quality),
                (bad, Quality::Invalid),
                "{bad}"
            );
        }
        assert_eq!(region("XX"), None);
    }
}
