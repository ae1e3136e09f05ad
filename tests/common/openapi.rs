//! A strict validator for responses against `specs/saasapi.v2.json` and
//! `specs/meteringapi.v1.json`: it resolves `$ref`s and checks types, enums, formats (`uuid`,
//! `date-time`, `uri`, `int32`), and, stricter than JSON Schema's default, refuses properties
//! the spec does not declare, so a response is "exactly per the spec's schemas". The one
//! allowance: an error body (4xx) may also carry RFC 9457's members (`type`, `title`,
//! `status`, `detail`), because every error this service sends is a problem document too.
#![allow(dead_code)]

use serde_json::Value;

pub struct Spec {
    doc: Value,
}

impl Spec {
    /// The SaaS Fulfillment API v2.
    pub fn load() -> Spec {
        Self::load_file("saasapi.v2.json")
    }

    /// The Marketplace Metering Service API v1.
    pub fn metering() -> Spec {
        Self::load_file("meteringapi.v1.json")
    }

    fn load_file(name: &str) -> Spec {
        let path = format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).expect("spec file is in the repository");
        Spec { doc: serde_json::from_str(&text).expect("spec is JSON") }
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        let op = &self.doc["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "the spec has no {method} {path}");
        op
    }

    /// Asserts that `status` is declared for the operation and, when the spec gives the
    /// response a schema, that `body` satisfies it.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let responses = &self.operation(method, path)["responses"];
        let response = &responses[status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which the spec does not declare (declared: {:?})",
            responses.as_object().map(|r| r.keys().collect::<Vec<_>>())
        );
        match response["content"]["application/json"]["schema"].as_object() {
            Some(schema) => {
                let mut errors = Vec::new();
                let mut body = body.clone();
                if let (true, Some(object)) = (status >= 400, body.as_object_mut()) {
                    for member in ["type", "title", "status", "detail"] {
                        object.remove(member);
                    }
                }
                let body = &body;
                self.validate(&Value::Object(schema.clone()), body, "$", &mut errors);
                assert!(
                    errors.is_empty(),
                    "{method} {path} {status} body does not match the spec:\n{}\nbody: {body:#}",
                    errors.join("\n")
                );
            }
            None => assert!(
                status >= 400 || body.is_null(),
                "{method} {path} {status} declares no body, but one was sent: {body}"
            ),
        }
    }

    /// Validates `value` against the named component schema.
    pub fn validate_schema(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate(&serde_json::json!({"$ref": format!("#/components/schemas/{name}")}), value, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local reference");
                self.resolve(self.doc.pointer(pointer).unwrap_or_else(|| panic!("unresolvable {r}")))
            }
            None => schema,
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or(if schema.get("properties").is_some() {
            "object"
        } else {
            ""
        });
        match ty {
            "object" => {
                let Some(object) = value.as_object() else {
                    return errors.push(format!("{at}: expected an object, got {value}"));
                };
                let properties = schema["properties"].as_object().cloned().unwrap_or_default();
                for (key, v) in object {
                    match properties.get(key) {
                        Some(p) => self.validate(p, v, &format!("{at}.{key}"), errors),
                        None => errors.push(format!("{at}.{key}: not a property of the spec's schema")),
                    }
                }
                for required in schema["required"].as_array().into_iter().flatten() {
                    let name = required.as_str().unwrap_or_default();
                    if !object.contains_key(name) {
                        errors.push(format!("{at}.{name}: required but missing"));
                    }
                }
            }
            "array" => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(&schema["items"], item, &format!("{at}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            "string" => {
                let Some(s) = value.as_str() else {
                    return errors.push(format!("{at}: expected a string, got {value}"));
                };
                if let Some(allowed) = schema["enum"].as_array() {
                    if !allowed.iter().any(|a| a == value) {
                        errors.push(format!("{at}: {s:?} is not one of {allowed:?}"));
                    }
                }
                let ok = match schema["format"].as_str() {
                    Some("uuid") => uuid::Uuid::parse_str(s).is_ok(),
                    Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    Some("uri") => s.starts_with("https://") || s.starts_with("http://"),
                    Some("email") => s.contains('@'),
                    _ => true,
                };
                if !ok {
                    errors.push(format!("{at}: {s:?} is not a valid {}", schema["format"]));
                }
            }
            "integer" => match value.as_i64() {
                Some(n) if schema["format"] == "int32" && i32::try_from(n).is_err() => {
                    errors.push(format!("{at}: {n} does not fit int32"))
                }
                Some(_) => {}
                None => errors.push(format!("{at}: expected an integer, got {value}")),
            },
            "number" if !value.is_number() => errors.push(format!("{at}: expected a number, got {value}")),
            "boolean" if !value.is_boolean() => errors.push(format!("{at}: expected a boolean, got {value}")),
            _ => {}
        }
    }
}
