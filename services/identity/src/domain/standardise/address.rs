//! Postal address lines: a matching key with street types in one abbreviated form, so
//! "16 Wade Street" and "16 wade st." compare equal.

use super::name::name_key;

/// Street types and their abbreviation in matching keys (Australia Post, USPS and Royal Mail
/// forms; singular and plural share one).
pub const STREET_TYPES: &[(&str, &str)] = &[
    ("alley", "aly"),
    ("arcade", "arc"),
    ("avenue", "ave"),
    ("av", "ave"),
    ("boulevard", "blvd"),
    ("bvd", "blvd"),
    ("circle", "cir"),
    ("circuit", "cct"),
    ("close", "cl"),
    ("court", "ct"),
    ("crescent", "cres"),
    ("cresc", "cres"),
    ("crs", "cres"),
    ("drive", "dr"),
    ("drv", "dr"),
    ("esplanade", "esp"),
    ("freeway", "fwy"),
    ("gardens", "gdn"),
    ("garden", "gdn"),
    ("grove", "gr"),
    ("highway", "hwy"),
    ("lane", "ln"),
    ("parade", "pde"),
    ("parkway", "pkwy"),
    ("place", "pl"),
    ("plaza", "plz"),
    ("road", "rd"),
    ("square", "sq"),
    ("street", "st"),
    ("str", "st"),
    ("terrace", "tce"),
    ("terr", "tce"),
    ("track", "trk"),
    ("way", "wy"),
];

/// The matching key of an address line: [`name_key`] with every word that is a street type
/// replaced by its abbreviation.
pub fn address_key(raw: &str) -> String {
    let key = name_key(raw);
    let mut out = String::with_capacity(key.len());
    for word in key.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let short = STREET_TYPES
            .iter()
            .find(|(long, _)| *long == word)
            .map_or(word, |(_, short)| short);
        out.push_str(short);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn street_types_are_abbreviated() {
        assert_eq!(address_key("16 Wade Street"), "16 wade st");
        assert_eq!(address_key("16 wade st."), "16 wade st");
        assert_eq!(address_key("Tattersall  CRESCENT"), "tattersall cres");
        assert_eq!(address_key("streeton road"), "streeton rd");
        assert_eq!(address_key(""), "");
    }

    #[test]
    fn abbreviations_map_to_themselves() {
        for (_, short) in STREET_TYPES {
            assert_eq!(address_key(short), *short);
        }
    }
}
