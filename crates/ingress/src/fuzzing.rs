//! The request parsers and the signature verifier the handlers run, on raw input and without a
//! server, for the cargo-fuzz targets (`crates/fuzz`) and the regression test over the inputs
//! they saved (`tests/fuzz_regressions.rs`): fuzzing the code a handler really runs, not a copy.
//! Compiled only with the `fuzzing` feature, which crates/fuzz turns on, and this crate's tests
//! through their dev-dependency on the crate itself; the service never contains it.
//!
//! Each entry point panics when an invariant breaks, which is what a fuzzer reports as a crash:
//! a parser may refuse input only with a 4xx problem+json (invariant 6); a body a parser accepts
//! is strict JSON (UTF-8, an object wherever the contract has one, no key twice in any object;
//! checked here by plain serde_json, independently of [`crate::strict_json`]); and a signature
//! must verify exactly when it was made with the secret over the same id, timestamp and body.

use crate::body::parse_json;
use crate::error::ApiError;
use crate::partner::orders::OrderRequest;
use crate::partner::subscriptions::SubscriptionPatch;
use crate::saas::{operations, subscriptions};
use crate::security::credentials::WebhookSecret;
use crate::security::signature::{self, SignatureError, TIMESTAMP_TOLERANCE_SECONDS};
use crate::webhooks;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chrono::DateTime;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// Checks that a refusal is a client error in problem+json, as every handler's would be.
fn assert_client_error<T>(result: Result<T, ApiError>) {
    if let Err(error) = result {
        let shown = error.to_string();
        let response = error.into_response();
        assert!(response.status().is_client_error(), "a parser answered {} for {shown}", response.status());
        assert_eq!(
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "a refusal that is not problem+json: {shown}"
        );
    }
}

/// Checks what every accepted body must be, with plain serde_json and none of our parsing: UTF-8,
/// one JSON value and nothing after it, an object at the top, and no key twice in any object.
/// Returns the body as a `Value` for the caller's own checks of nested objects.
fn assert_strict_json(raw: &[u8]) -> Value {
    let text = std::str::from_utf8(raw).expect("an accepted body is UTF-8");
    if let Err(e) = serde_json::from_str::<UniqueKeys>(text) {
        panic!("an accepted body has a key twice or is not JSON: {e}");
    }
    let value: Value = serde_json::from_str(text).expect("an accepted body is one JSON value");
    assert!(value.is_object(), "an accepted body is not an object: {value}");
    value
}

/// Any JSON value, refused if an object in it holds a key twice (the oracle for
/// [`assert_strict_json`]: a plain visitor over serde_json, no wrapper).
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("key {key:?} twice")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// The body of `POST /webhooks/publishers/{id}` after its signature matched.
pub fn webhook_body(raw: &[u8]) {
    let parsed = webhooks::parse_webhook(raw);
    if parsed.is_ok() {
        let value = assert_strict_json(raw);
        assert!(value["data"].is_object(), "a webhook was accepted with data that is not an object: {value}");
    }
    assert_client_error(parsed);
}

/// The same input as each SaaS Fulfillment API v2 request body: `POST
/// /api/saas/subscriptions/{id}/activate`, `PATCH /api/saas/subscriptions/{id}` and `PATCH
/// /api/saas/subscriptions/{id}/operations/{operationId}`.
pub fn saas_bodies(raw: &[u8]) {
    let activation = subscriptions::activation(parse_json(raw));
    let change = subscriptions::requested_change(parse_json(raw));
    let outcome = operations::operation_outcome(parse_json(raw));
    if activation.is_ok() || change.is_ok() || outcome.is_ok() {
        assert_strict_json(raw);
    }
    assert_client_error(activation);
    assert_client_error(change);
    assert_client_error(outcome);
}

/// The same input as every JSON request body, parsed as each contract reads it: webhooks, the
/// SaaS API bodies, partner orders and subscription patches. Whatever the bytes, parsing never
/// panics and refuses only with a 4xx problem+json; whatever is accepted is strict JSON, with
/// an object wherever that contract has one.
pub fn strict_bodies(raw: &[u8]) {
    webhook_body(raw);
    saas_bodies(raw);
    let order = parse_json::<OrderRequest>(raw);
    if order.is_ok() {
        let value = assert_strict_json(raw);
        let items = value["lineItems"].as_array().expect("an accepted order has an array of line items");
        assert!(items.iter().all(Value::is_object), "an order was accepted with a line item that is not an object");
    }
    assert_client_error(order);
    let patch = parse_json::<SubscriptionPatch>(raw);
    if patch.is_ok() {
        assert_strict_json(raw);
    }
    assert_client_error(patch);
    // Whatever a contract ignores is read and checked too.
    let ignored = parse_json::<IgnoredAny>(raw);
    if ignored.is_ok() {
        let text = std::str::from_utf8(raw).expect("an accepted body is UTF-8");
        serde_json::from_str::<UniqueKeys>(text).expect("an accepted body has no key twice");
    }
}

/// One Standard Webhooks verification with fuzzer-chosen parts.
#[derive(Debug)]
struct SignatureCase<'a> {
    secret: &'a [u8],
    id: String,
    timestamp: String,
    signatures: String,
    body: &'a [u8],
    /// Our clock, in Unix seconds (always a valid instant).
    now: i64,
}

impl<'a> SignatureCase<'a> {
    /// Reads raw fuzzer bytes: two bytes of clock skew (a signed 16-bit number of seconds), then
    /// secret, `webhook-id`, `webhook-timestamp` and `webhook-signature` separated by NUL bytes,
    /// then the body. Our clock is the timestamp plus the skew when that is a valid instant, so
    /// honest signatures are checked both inside and outside the tolerance.
    fn from_bytes(data: &'a [u8]) -> Option<Self> {
        let (skew, rest) = data.split_first_chunk::<2>()?;
        let skew = i64::from(i16::from_le_bytes(*skew));
        let mut parts = rest.splitn(5, |b| *b == 0);
        let secret = parts.next()?;
        let mut text = || parts.next().map(|p| String::from_utf8_lossy(p).into_owned());
        let (id, timestamp, signatures) = (text()?, text()?, text()?);
        let body = parts.next().unwrap_or_default();
        // Our clock is a real instant: near the timestamp when that is one, else a fixed day.
        let now = timestamp
            .trim()
            .parse::<i64>()
            .ok()
            .map(|t| t.saturating_add(skew))
            .filter(|t| DateTime::from_timestamp(*t, 0).is_some())
            .unwrap_or(1_700_000_000 + skew);
        Some(SignatureCase { secret, id, timestamp, signatures, body, now })
    }
}

/// Verifies arbitrary headers (which must never panic), then checks the verifier against the
/// signer: a signature made over the same id, timestamp and body verifies exactly when the id is
/// present and the timestamp within tolerance, and the same signature over a changed body never
/// verifies. See `SignatureCase::from_bytes` for how `data` is read.
pub fn signature(data: &[u8]) {
    let Some(case) = SignatureCase::from_bytes(data) else { return };
    let mut key = case.secret.to_vec();
    key.resize(key.len().max(24), 0);
    let secrets = [WebhookSecret(key.clone())];
    let now = DateTime::from_timestamp(case.now, 0).expect("from_bytes keeps the clock valid");
    let arbitrary =
        signature::verify(&secrets, Some(&case.id), Some(&case.timestamp), Some(&case.signatures), case.body, now);
    if let Ok(verified) = &arbitrary {
        // Whatever was accepted must be what an honest signer produced for these parts.
        let expected = signature::sign(&key, &case.id, verified.timestamp.timestamp(), case.body);
        assert!(case.signatures.split(' ').any(|s| s == expected), "accepted a signature the secret never made");
    }

    let Ok(seconds) = case.timestamp.trim().parse::<i64>() else { return };
    let honest = signature::sign(&key, &case.id, seconds, case.body);
    let result = signature::verify(&secrets, Some(&case.id), Some(&case.timestamp), Some(&honest), case.body, now);
    let fresh = case.now.checked_sub(seconds).is_some_and(|d| d.abs() <= TIMESTAMP_TOLERANCE_SECONDS)
        && DateTime::from_timestamp(seconds, 0).is_some();
    match (case.id.is_empty(), fresh) {
        (true, _) => assert_eq!(result, Err(SignatureError::MissingHeader("webhook-id"))),
        (false, true) => assert!(result.is_ok(), "an honest signature was refused: {result:?}"),
        (false, false) => assert!(result.is_err(), "a stale timestamp was accepted"),
    }
    let mut tampered = case.body.to_vec();
    tampered.push(b' ');
    let result = signature::verify(&secrets, Some(&case.id), Some(&case.timestamp), Some(&honest), &tampered, now);
    assert!(result.is_err(), "a signature verified over a changed body");
}
