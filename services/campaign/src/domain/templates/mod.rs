//! Message templates: a subject, an HTML part and a text part, rendered with minijinja in a
//! sandbox. What a template may do is closed: no macros (the engine is built without them, so
//! the tag is a syntax error), no `include`, `import`, `from` or `extends` (refused when the
//! template is checked; the engine has no loader and no filesystem), a fixed list of filters and
//! tests (none that can build a huge string from a small template, such as `indent`,
//! `replace` or `format`, and no `safe`, so customer data is always escaped in HTML), no
//! `namespace` (nothing accumulates across loop iterations), a fuel limit on instructions, a
//! recursion limit, and a cap on the output of each part. HTML is auto-escaped; the subject and
//! the text part are not (they are not HTML), and the subject is one line (a newline in it
//! would start a new mail header).

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A template's parts, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TemplateParts)]
pub struct Parts {
    /// The subject (email) or the whole message (SMS, push title).
    pub subject: String,
    /// The HTML body (email).
    #[serde(default)]
    pub html: Option<String>,
    /// The text body (email alternative, SMS, push body).
    #[serde(default)]
    pub text: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// HTML, escaped.
    pub html: Option<String>,
    /// Text.
    pub text: Option<String>,
}

/// Bounds on templates.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest source of one part, in bytes.
    pub max_source: usize,
    /// Instructions one render may run (all parts together).
    pub fuel: u64,
    /// Longest output of one body part, in bytes.
    pub max_output: usize,
    /// Longest subject, in bytes.
    pub max_subject: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_source: 64 * 1024,
            fuel: 100_000,
            max_output: 512 * 1024,
            max_subject: 998,
        }
    }
}

/// Why a template was refused or could not render: which part, where, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{part} {line}:{column}: {message}")]
pub struct TemplateError {
    /// `subject`, `html` or `text`.
    pub part: &'static str,
    /// Stable code: `syntax`, `too_large`, `too_much_work`, `output_too_large`, `render`.
    pub code: &'static str,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

const FILTERS: &[&str] = &[
    "escape",
    "e",
    "upper",
    "lower",
    "title",
    "capitalize",
    "length",
    "count",
    "trim",
    "join",
    "default",
    "d",
    "abs",
    "int",
    "float",
    "round",
    "first",
    "last",
    "string",
    "list",
    "sort",
    "reverse",
    "unique",
    "min",
    "max",
    "sum",
    "bool",
];

/// The sandboxed engine: only the filters and tests above, HTML escaped in the `html` part.
fn environment<'s>(limits: &Limits) -> Environment<'s> {
    use minijinja::{filters as f, tests as t};
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|name| {
        if name == "html" {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(minijinja::escape_formatter);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(20);
    env.add_filter("escape", f::escape);
    env.add_filter("e", f::escape);
    env.add_filter("upper", f::upper);
    env.add_filter("lower", f::lower);
    env.add_filter("title", f::title);
    env.add_filter("capitalize", f::capitalize);
    env.add_filter("length", f::length);
    env.add_filter("count", f::length);
    env.add_filter("trim", f::trim);
    env.add_filter("join", f::join);
    env.add_filter("default", f::default);
    env.add_filter("d", f::default);
    env.add_filter("abs", f::abs);
    env.add_filter("int", f::int);
    env.add_filter("float", f::float);
    env.add_filter("round", f::round);
    env.add_filter("first", f::first);
    env.add_filter("last", f::last);
    env.add_filter("string", f::string);
    env.add_filter("list", f::list);
    env.add_filter("sort", f::sort);
    env.add_filter("reverse", f::reverse);
    env.add_filter("unique", f::unique);
    env.add_filter("min", f::min);
    env.add_filter("max", f::max);
    env.add_filter("sum", f::sum);
    env.add_filter("bool", f::bool);
    env.add_test("defined", t::is_defined);
    env.add_test("undefined", t::is_undefined);
    env.add_test("none", t::is_none);
    env.add_test("number", t::is_number);
    env.add_test("string", t::is_string);
    env.add_test("true", t::is_true);
    env.add_test("false", t::is_false);
    env.add_test("odd", t::is_odd);
    env.add_test("even", t::is_even);
    env.add_test("eq", t::is_eq);
    env.add_test("ne", t::is_ne);
    env.add_test("lt", t::is_lt);
    env.add_test("le", t::is_le);
    env.add_test("gt", t::is_gt);
    env.add_test("ge", t::is_ge);
    env.add_test("in", t::is_in);
    env.add_test("startingwith", t::is_startingwith);
    env.add_test("endingwith", t::is_endingwith);
    env.add_function("range", minijinja::functions::range);
    env
}

/// The parts that are present, with their names.
fn present(parts: &Parts) -> Vec<(&'static str, &str)> {
    let mut out = vec![("subject", parts.subject.as_str())];
    if let Some(h) = &parts.html {
        out.push(("html", h.as_str()));
    }
    if let Some(t) = &parts.text {
        out.push(("text", t.as_str()));
    }
    out
}

/// Checks that every part compiles within the limits (when a template is saved).
pub fn check(parts: &Parts, limits: &Limits) -> Result<(), TemplateError> {
    let env = environment(limits);
    compile_all(&env, parts, limits).map(|_| ())
}

/// Every present part checked and compiled in `env`, in order.
fn compile_all<'e, 's>(
    env: &'e Environment<'s>,
    parts: &'s Parts,
    limits: &Limits,
) -> Result<Vec<(&'static str, &'s str, minijinja::Template<'e, 's>)>, TemplateError> {
    if parts.html.is_none() && parts.text.is_none() {
        return Err(TemplateError {
            part: "text",
            code: "syntax",
            line: 0,
            column: 0,
            message: "give an `html` part, a `text` part or both".into(),
        });
    }
    let mut compiled = Vec::new();
    for (name, source) in present(parts) {
        if source.len() > limits.max_source {
            return Err(TemplateError {
                part: name,
                code: "too_large",
                line: 0,
                column: 0,
                message: format!("at most {} bytes", limits.max_source),
            });
        }
        if let Some((offset, tag)) = forbidden_tag(source) {
            let (line, column) = position(source, offset);
            return Err(TemplateError {
                part: name,
                code: "syntax",
                line,
                column,
                message: format!(
                    "`{tag}` is not available in templates: a template is self-contained"
                ),
            });
        }
        let template = env
            .template_from_named_str(name, source)
            .map_err(|e| error(name, source, &e, limits))?;
        compiled.push((name, source, template));
    }
    Ok(compiled)
}

/// The first `{% include %}`, `import`, `from` or `extends` tag: its offset and name.
fn forbidden_tag(source: &str) -> Option<(usize, &'static str)> {
    const TAGS: [&str; 4] = ["include", "import", "from", "extends"];
    let mut from = 0;
    while let Some(i) = source.get(from..).and_then(|s| s.find("{%")) {
        let at = from + i;
        let rest = source.get(at + 2..).unwrap_or("");
        let word = rest
            .trim_start_matches(['-', '+'])
            .trim_start()
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        if let Some(tag) = TAGS.iter().find(|t| **t == word) {
            return Some((at, tag));
        }
        from = at + 2;
    }
    None
}

/// Renders every part with `context` (the customer's traits, segments, loyalty fields…).
pub fn render(parts: &Parts, context: &Value, limits: &Limits) -> Result<Rendered, TemplateError> {
    let env = environment(limits);
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (name, source, template) in compile_all(&env, parts, limits)? {
        let cap = if name == "subject" {
            limits.max_subject * 4
        } else {
            limits.max_output
        };
        let mut sink = Capped::new(cap);
        template
            .render_captured_to(context, &mut sink)
            .map_err(|e| error(name, source, &e, limits))?;
        out.push((name, String::from_utf8_lossy(&sink.buf).into_owned()));
    }
    let mut rendered = Rendered {
        subject: String::new(),
        html: None,
        text: None,
    };
    for (name, body) in out {
        match name {
            "subject" => {
                let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
                if line.len() > limits.max_subject {
                    return Err(TemplateError {
                        part: "subject",
                        code: "output_too_large",
                        line: 0,
                        column: 0,
                        message: format!(
                            "the subject renders to more than {} bytes",
                            limits.max_subject
                        ),
                    });
                }
                rendered.subject = line;
            }
            "html" => rendered.html = Some(body),
            _ => rendered.text = Some(body),
        }
    }
    Ok(rendered)
}

/// A writer that fails past `cap` bytes, so a template cannot produce unbounded output.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
        }
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A minijinja error as a [`TemplateError`] with line and column.
fn error(part: &'static str, source: &str, e: &minijinja::Error, limits: &Limits) -> TemplateError {
    let (line, column) = match e.range() {
        Some(r) => position(source, r.start),
        None => (e.line().unwrap_or(0), 0),
    };
    let (code, message) = match e.kind() {
        ErrorKind::SyntaxError => ("syntax", e.detail().unwrap_or("syntax error").to_owned()),
        ErrorKind::OutOfFuel => (
            "too_much_work",
            format!(
                "the template runs more than {} instructions (a loop too long?)",
                limits.fuel
            ),
        ),
        ErrorKind::WriteFailure => (
            "output_too_large",
            format!(
                "the {part} part renders to more than {} bytes",
                limits.max_output
            ),
        ),
        ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction => (
            "syntax",
            format!(
                "{} (allowed filters: {}; functions: range)",
                e.detail().unwrap_or("not available in templates"),
                FILTERS.join(", ")
            ),
        ),
        _ => (
            "render",
            e.detail()
                .map_or_else(|| e.kind().to_string(), str::to_owned),
        ),
    };
    TemplateError {
        part,
        code,
        line,
        column,
        message,
    }
}

/// 1-based line and column of byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset.min(source.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
