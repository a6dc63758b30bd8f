//! Phone numbers to E.164 (`+441632960961`), with libphonenumber's metadata: a number without
//! an international prefix is read in the tenant's default region.

use phonenumber::country::Id;
use phonenumber::Mode;

use super::Checked;

/// Parses a region code such as `GB` or `es`; `None` when unknown.
pub fn region(code: &str) -> Option<Id> {
    code.trim().to_uppercase().parse().ok()
}

/// The E.164 form of `raw`, read in `default_region` when it has no `+` or `00` prefix.
/// Invalid (kept as received) when it is not a valid number of any region.
pub fn phone(raw: &str, default_region: Option<Id>) -> Checked {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 40 {
        return Checked::invalid(raw);
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
            Checked::valid(raw, number.format().mode(Mode::E164).to_string())
        }
        _ => Checked::invalid(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::standardise::Quality;

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
