//! The billing event schemas checked into `specs/billing/`, compiled once, so every test that
//! reads billing events also proves they match the published consumer contract.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// (type name, schema text), one per billing event type.
pub const SCHEMAS: [(&str, &str); 8] = [
    ("billing.started", include_str!("../../specs/billing/billing.started.schema.json")),
    ("billing.quantity_changed", include_str!("../../specs/billing/billing.quantity_changed.schema.json")),
    ("billing.plan_changed", include_str!("../../specs/billing/billing.plan_changed.schema.json")),
    ("billing.stopped", include_str!("../../specs/billing/billing.stopped.schema.json")),
    ("billing.renewed", include_str!("../../specs/billing/billing.renewed.schema.json")),
    ("billing.suspended", include_str!("../../specs/billing/billing.suspended.schema.json")),
    ("billing.resumed", include_str!("../../specs/billing/billing.resumed.schema.json")),
    ("billing.usage", include_str!("../../specs/billing/billing.usage.schema.json")),
];

fn validators() -> &'static BTreeMap<&'static str, jsonschema::Validator> {
    static VALIDATORS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(name, text)| {
                let schema: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} schema is JSON: {e}"));
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("{name} schema compiles: {e}"));
                (*name, validator)
            })
            .collect()
    })
}

/// Why `event` does not match the schema of its `type` (empty when it does).
pub fn violations(event: &Value) -> Vec<String> {
    let Some(kind) = event["type"].as_str() else {
        return vec!["no string `type`".into()];
    };
    let Some(validator) = validators().get(kind) else {
        return vec![format!("no schema for type {kind:?} in specs/billing/")];
    };
    validator.iter_errors(event).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

/// Panics, naming the violations, when `event` does not match its schema.
pub fn assert_matches_schema(event: &Value) {
    let problems = violations(event);
    assert!(problems.is_empty(), "billing event does not match its schema: {problems:?}\n{event:#}");
}
