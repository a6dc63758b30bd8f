//! Person names: Unicode NFC, spacing and case for display; accent-folded keys for matching.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::{squash_spaces, Checked};

/// The display form of a name: NFC, spaces collapsed, and names typed all in lower or all in
/// upper case turned to title case ("ANA MARÍA" → "Ana María"); mixed case is kept as typed
/// ("McDonald"). Invalid when nothing is left or it holds no letter.
pub fn name_display(raw: &str) -> Checked {
    let nfc: String = raw.nfc().collect();
    let spaced = squash_spaces(&nfc);
    if !spaced.chars().any(char::is_alphabetic) {
        return Checked::invalid(raw);
    }
    let has_lower = spaced.chars().any(char::is_lowercase);
    let has_upper = spaced.chars().any(char::is_uppercase);
    let value = if has_lower && has_upper {
        spaced
    } else {
        title_case(&spaced)
    };
    Checked::valid(raw, value)
}

/// Upper case after a start, space, hyphen or apostrophe; lower case elsewhere.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = matches!(c, ' ' | '-' | '\'' | '’');
    }
    out
}

/// Lower case, accents and other combining marks removed ("José" → "jose", "Ø" stays "ø").
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The matching key of a name: folded, punctuation dropped, hyphens as spaces, spaces
/// collapsed ("  O'Brien-Smith " → "obrien smith").
pub fn name_key(raw: &str) -> String {
    let folded: String = fold(raw)
        .chars()
        .filter_map(|c| match c {
            '-' | '_' | '.' | ',' | '/' => Some(' '),
            c if c.is_alphanumeric() || c.is_whitespace() => Some(c),
            _ => None,
        })
        .collect();
    squash_spaces(&folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::standardise::Quality;
    use proptest::prelude::*;

    #[test]
    fn display_forms() {
        let c = name_display("  ANA   MARÍA ");
        assert_eq!(c.value, "Ana María");
        assert_eq!(c.quality, Quality::Standardised);
        assert_eq!(name_display("McDonald").quality, Quality::Valid);
        assert_eq!(name_display("o'brien-smith").value, "O'Brien-Smith");
        // "e" + combining acute becomes the single NFC character.
        assert_eq!(name_display("Jose\u{301}").value, "José");
        let bad = name_display(" 1234 ");
        assert_eq!(
            (bad.value.as_str(), bad.quality),
            (" 1234 ", Quality::Invalid)
        );
    }

    #[test]
    fn keys_fold_accents_and_punctuation() {
        assert_eq!(name_key("José"), name_key("JOSE"));
        assert_eq!(name_key("  O'Brien-Smith "), "obrien smith");
        assert_eq!(name_key("Zoë Ångström"), "zoe angstrom");
    }

    proptest! {
        #[test]
        fn keys_are_idempotent(s in "\\PC{0,20}") {
            let k = name_key(&s);
            prop_assert_eq!(name_key(&k), k.clone());
            prop_assert!(!k.starts_with(' ') && !k.ends_with(' ') && !k.contains("  "));
        }

        #[test]
        fn display_never_loses_input(s in "\\PC{0,20}") {
            let c = name_display(&s);
            if c.quality == Quality::Invalid {
                prop_assert_eq!(c.value, s);
            } else {
                prop_assert!(!c.value.is_empty());
            }
        }
    }
}
