use proptest::prelude::*;
use serde_json::json;

use super::*;

fn parts(subject: &str, html: &str, text: &str) -> Parts {
    Parts {
        subject: subject.into(),
        html: Some(html.into()),
        text: Some(text.into()),
    }
}

fn customer() -> Value {
    json!({
        "traits": {"first_name": "Ana <b>", "plan": "pro"},
        "segments": ["buyers"],
        "loyalty": {"tier": "gold", "balance": 1200},
    })
}

#[test]
fn parts_render_with_escaping_by_kind() {
    let p = parts(
        "Hi {{ traits.first_name }},\n your {{ loyalty.tier }} perks",
        "<p>Hello {{ traits.first_name }}</p>{% if 'buyers' in segments %}<p>Thanks!</p>{% endif %}",
        "Hello {{ traits.first_name }}, {{ loyalty.balance }} points. {{ traits.missing | default('friend') }}",
    );
    let r = render(&p, &customer(), &Limits::default()).unwrap();
    assert_eq!(r.subject, "Hi Ana <b>, your gold perks");
    assert_eq!(
        r.html.as_deref(),
        Some("<p>Hello Ana &lt;b&gt;</p><p>Thanks!</p>")
    );
    assert_eq!(
        r.text.as_deref(),
        Some("Hello Ana <b>, 1200 points. friend")
    );
}

#[test]
fn errors_say_which_part_and_where() {
    let p = parts("ok", "<p>\n  {{ traits.first_name }\n</p>", "t");
    let e = check(&p, &Limits::default()).unwrap_err();
    assert_eq!((e.part, e.code, e.line), ("html", "syntax", 2), "{e}");
    assert!(e.column > 0, "{e}");
    let p = parts("{{ traits | indent(1000000000) }}", "h", "t");
    let e = render(&p, &customer(), &Limits::default()).unwrap_err();
    assert_eq!((e.part, e.code), ("subject", "syntax"), "{e}");
    assert!(e.message.contains("allowed filters"), "{e}");
}

#[test]
fn hostile_templates_are_refused_or_cut_off() {
    let l = Limits::default();
    let cases = [
        // No includes, imports, macros or files: not even in the grammar.
        ("{% include '/etc/passwd' %}", "syntax"),
        ("{% import 'x' as y %}", "syntax"),
        ("{% extends 'base' %}", "syntax"),
        ("{% macro boom(n) %}{{ boom(n) }}{% endmacro %}{{ boom(1) }}", "syntax"),
        // Nothing accumulates across iterations.
        ("{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "syntax"),
        // Loops run out of fuel.
        ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", "too_much_work"),
        // Output is capped.
        ("{% for a in range(20000) %}{{ 'y' * 100 }}{% endfor %}", "output_too_large"),
        // No `safe`: customer data stays escaped.
        ("{{ traits.first_name | safe }}", "syntax"),
        // No way to reach Rust internals or the environment.
        ("{{ config }}{{ env }}{{ environ }}", "ok"),
        ("{{ self.__init__ }}", "render"),
    ];
    for (html, code) in cases {
        let p = parts("s", html, "t");
        match render(&p, &customer(), &l) {
            Ok(r) => {
                assert_eq!(code, "ok", "{html} rendered");
                assert_eq!(r.html.as_deref(), Some(""), "{html}");
            }
            Err(e) => assert_eq!(e.code, code, "{html}: {e}"),
        }
    }
    let huge = "x".repeat(l.max_source + 1);
    assert_eq!(
        check(&parts("s", &huge, "t"), &l).unwrap_err().code,
        "too_large"
    );
}

#[test]
fn a_subject_is_one_line_and_bounded() {
    let p = parts("Line one\r\nBcc: victim@example.com", "h", "t");
    let r = render(&p, &customer(), &Limits::default()).unwrap();
    assert_eq!(r.subject, "Line one Bcc: victim@example.com");
    assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    let p = parts("{{ 'z' * 2000 }}", "h", "t");
    let e = render(&p, &customer(), &Limits::default()).unwrap_err();
    assert_eq!((e.part, e.code), ("subject", "output_too_large"), "{e}");
}

#[test]
fn positions_are_one_based() {
    assert_eq!(position("ab\ncd", 0), (1, 1));
    assert_eq!(position("ab\ncd", 4), (2, 2));
    assert_eq!(position("", 10), (1, 1));
}

proptest! {
    #[test]
    fn any_source_renders_or_fails_with_a_code_never_a_panic(src in "[{}%#a-z '|().~*0-9\\n]{0,120}") {
        let p = parts("s", &src, "t");
        if let Err(e) = render(&p, &customer(), &Limits::default()) {
            prop_assert!(["syntax", "too_large", "too_much_work", "output_too_large", "render"].contains(&e.code));
        }
    }
}
