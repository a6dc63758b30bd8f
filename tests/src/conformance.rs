//! Every answer the integration tests get through the suite's helpers is checked against the
//! gateway's own `/openapi.json`: a 2xx the operation does not document, or a JSON body its
//! schema refuses, fails the test that received it. The parts own the shapes of their answers
//! (`crm_<part>::bodies`); this is what proves the document names the types they really serve,
//! across every test, not only the requests an API fuzzer happens to make valid.

use serde_json::{json, Value};

/// The operations of one OpenAPI document, ready to check answers against.
pub struct Conformance {
    doc: Value,
    operations: Vec<Operation>,
}

/// One documented operation.
struct Operation {
    method: String,
    template: String,
    /// The path's segments; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
}

impl Operation {
    fn matches(&self, method: &str, segments: &[&str]) -> bool {
        self.method == method
            && self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s))
    }

    fn parameters(&self) -> usize {
        self.segments.iter().filter(|s| s.is_none()).count()
    }
}

impl Conformance {
    /// The operations of `doc` (an OpenAPI 3.1 document).
    pub fn new(doc: Value) -> Self {
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                let segments = template
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                operations.push(Operation {
                    method: method.to_ascii_lowercase(),
                    template: template.clone(),
                    segments,
                });
            }
        }
        Self { doc, operations }
    }

    /// The documented operation `method path` falls under (the most specific), if any.
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let method = method.to_ascii_lowercase();
        self.operations
            .iter()
            .filter(|o| o.matches(&method, &segments))
            .min_by_key(|o| o.parameters())
    }

    /// What is wrong with an answer of `status` with `body` to `method path`, if anything.
    /// Paths the document does not name (tracking links, health) are not checked.
    pub fn problem(&self, method: &str, path: &str, status: u16, body: &[u8]) -> Option<String> {
        let op = self.operation(method, path)?;
        let at = format!("{} {} ({method} {path})", op.method, op.template);
        let response =
            &self.doc["paths"][&op.template][&op.method]["responses"][status.to_string()];
        if response.is_null() {
            return (200..300)
                .contains(&status)
                .then(|| format!("{at}: answered {status}, which the document does not list"));
        }
        let content = response["content"].as_object()?;
        let (content_type, media) = content.iter().next()?;
        if body.is_empty() {
            return Some(format!(
                "{at}: {status} documents {content_type} but the body is empty"
            ));
        }
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Some(format!("{at}: {status} body is not JSON: {e}")),
        };
        let mut schema = media["schema"].clone();
        match schema.as_object_mut() {
            Some(s) => {
                s.insert("components".into(), self.doc["components"].clone());
            }
            None => return None,
        }
        let validator = match jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
        {
            Ok(v) => v,
            Err(e) => return Some(format!("{at}: the documented schema does not compile: {e}")),
        };
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        (!errors.is_empty()).then(|| {
            format!(
                "{at}: the {status} body breaks its documented schema: {errors:#?}\nbody: {}",
                json!(instance)
            )
        })
    }

    /// Panics with [`Self::problem`]'s finding.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &[u8]) {
        if let Some(p) = self.problem(method, path, status, body) {
            panic!("answer does not conform to /openapi.json: {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "paths": {
                "/v1/things/{id}": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"content": {"application/problem+json": {"schema": {"type": "object"}}}}
                }}},
                "/v1/things/special": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"type": "array"}}}}
                }}},
                "/v1/things/{id}/ping": {"post": {"responses": {"204": {"description": "ok"}}}}
            },
            "components": {"schemas": {"Thing": {
                "type": "object", "required": ["id", "n"],
                "properties": {"id": {"type": "string", "format": "uuid"}, "n": {"type": "integer", "minimum": 0}}
            }}}
        })
    }

    #[test]
    fn conforming_answers_pass_and_others_are_named() {
        let c = Conformance::new(doc());
        let good = br#"{"id": "0192f0c4-7b1e-7c3a-9d3e-2f1a0b1c2d3e", "n": 3, "extra": true}"#;
        assert_eq!(c.problem("GET", "/v1/things/abc?x=1", 200, good), None);
        let bad = br#"{"id": "not-a-uuid", "n": -1}"#;
        let p = c.problem("GET", "/v1/things/abc", 200, bad).unwrap();
        assert!(p.contains("breaks its documented schema"), "{p}");
        let missing = br#"{"n": 1}"#;
        assert!(c.problem("GET", "/v1/things/abc", 200, missing).is_some());
        // The literal segment wins over the parameter.
        assert_eq!(c.problem("GET", "/v1/things/special", 200, b"[1]"), None);
        // An undocumented 2xx is a finding; an undocumented error is not checked.
        assert!(c.problem("GET", "/v1/things/abc", 201, good).is_some());
        assert_eq!(c.problem("GET", "/v1/things/abc", 409, b"{}"), None);
        // No content documented: nothing to check; an unknown path is not checked.
        assert_eq!(c.problem("POST", "/v1/things/abc/ping", 204, b""), None);
        assert_eq!(c.problem("GET", "/t/o/token", 200, b"GIF89a"), None);
    }
}
