//! The text format of `COPY … FROM STDIN`, in which a recompute writes its new memberships.

/// Appends `value` to a `COPY` text-format row: backslash, tab, newline and carriage return
/// escaped (tenant ids hold none of them today; the escaping keeps a row whole if one ever
/// does).
pub fn copy_field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_field;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_specially() {
        let mut out = String::new();
        copy_field(&mut out, "{\"a\":\"x\\\"y\"}\tz\nw\r");
        assert_eq!(out, "{\"a\":\"x\\\\\"y\"}\\tz\\nw\\r");
    }
}
