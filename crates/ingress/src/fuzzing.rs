//! The request parsers and the signature verifier the handlers run, on raw input and without a
//! server, for the cargo-fuzz targets (`crates/fuzz`) and the regression test over the inputs
//! they saved (`tests/fuzz_regressions.rs`): fuzzing the code a handler really runs, not a copy.
//!
//! Each entry point panics when an invariant breaks, which is what a fuzzer reports as a crash:
//! a parser may refuse input only with a 4xx problem+json (invariant 6), and a signature must
//! verify exactly when it was made with the secret over the same id, timestamp and body.

use crate::body::parse_json;
use crate::directory::WebhookSecret;
use crate::error::ApiError;
use crate::saas::{operations, subscriptions};
use crate::signature::{self, SignatureError, TIMESTAMP_TOLERANCE_SECONDS};
use crate::webhooks;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chrono::DateTime;

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

/// The body of `POST /webhooks/publishers/{id}` after its signature matched.
pub fn webhook_body(raw: &[u8]) {
    assert_client_error(webhooks::parse_webhook(raw));
}

/// The same input as each SaaS Fulfillment API v2 request body: `POST
/// /api/saas/subscriptions/{id}/activate`, `PATCH /api/saas/subscriptions/{id}` and `PATCH
/// /api/saas/subscriptions/{id}/operations/{operationId}`.
pub fn saas_bodies(raw: &[u8]) {
    assert_client_error(subscriptions::activation(parse_json(raw)));
    assert_client_error(subscriptions::requested_change(parse_json(raw)));
    assert_client_error(operations::operation_outcome(parse_json(raw)));
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
