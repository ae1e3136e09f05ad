//! Standard Webhooks signature verification, in one reviewed place.
//!
//! A signed request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! entries. Any entry may match any configured secret (so a publisher can rotate secrets),
//! comparisons are constant time, and timestamps more than five minutes from our clock are
//! refused so that a captured request cannot be replayed later. The headers are checked
//! ([`check_headers`]) before the body is read, so a request that cannot be a valid webhook
//! never makes the server read or hold its body.

use crate::security::credentials::WebhookSecret;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a webhook timestamp may be from our clock, either way.
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a webhook's signature was refused (all become 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header is absent or not text.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// A header is present but not in the form the scheme defines.
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not a Unix timestamp in seconds")]
    BadTimestamp,
    /// The timestamp is too old or too far in the future.
    #[error("webhook-timestamp is outside the {TIMESTAMP_TOLERANCE_SECONDS} second tolerance")]
    StaleTimestamp,
    /// No signature matched any secret.
    #[error("no webhook-signature matches the publisher's secrets")]
    NoMatch,
}

/// The verified webhook headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The message id (idempotency key).
    pub id: String,
    /// The signed timestamp.
    pub timestamp: DateTime<Utc>,
}

/// Computes the `v1,<base64>` signature of a message; used by tests and the load generator.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The signature headers of a webhook, checked for everything that does not need its body:
/// present, well formed, and the timestamp within the tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    id: String,
    seconds: i64,
    candidates: Vec<Vec<u8>>,
}

/// Longest `webhook-id` accepted (it becomes an idempotency key).
pub const MAX_WEBHOOK_ID_CHARS: usize = 255;

/// Checks the three headers at instant `now`, before the body is read: a request that fails
/// here is refused without reading its body.
pub fn check_headers(
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SignedHeaders, SignatureError> {
    let id = id.filter(|v| !v.is_empty()).ok_or(SignatureError::MissingHeader("webhook-id"))?;
    if id.len() > MAX_WEBHOOK_ID_CHARS {
        return Err(SignatureError::MalformedHeader("webhook-id"));
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let seconds: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp near i64::MIN or MAX must be refused, not overflow.
    if now.timestamp().abs_diff(seconds) > TIMESTAMP_TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    DateTime::from_timestamp(seconds, 0).ok_or(SignatureError::BadTimestamp)?;
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::MalformedHeader("webhook-signature"));
    }
    Ok(SignedHeaders { id: id.to_owned(), seconds, candidates })
}

/// Checks the body against the headers' signatures with each of `secrets`.
pub fn verify_body(
    secrets: &[WebhookSecret],
    headers: SignedHeaders,
    body: &[u8],
) -> Result<VerifiedWebhook, SignatureError> {
    let mut matched = false;
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes keys of any length");
        mac.update(headers.id.as_bytes());
        mac.update(b".");
        mac.update(headers.seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for candidate in &headers.candidates {
            // `verify_slice` compares in constant time.
            if mac.clone().verify_slice(candidate).is_ok() {
                matched = true;
            }
        }
    }
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    let timestamp = DateTime::from_timestamp(headers.seconds, 0).ok_or(SignatureError::BadTimestamp)?;
    Ok(VerifiedWebhook { id: headers.id, timestamp })
}

/// Verifies a webhook against `secrets` at instant `now`: [`check_headers`], then
/// [`verify_body`].
pub fn verify(
    secrets: &[WebhookSecret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<VerifiedWebhook, SignatureError> {
    verify_body(secrets, check_headers(id, timestamp, signatures, now)?, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).unwrap()
    }

    const S1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const S2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// Found by the fuzz regression inputs: `now - timestamp` overflowed for extreme values.
    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let ts = ts.to_string();
            let refused = verify(&[secret(S1)], Some("msg_1"), Some(&ts), Some("v1,AAAA"), b"{}", now());
            assert_eq!(refused, Err(SignatureError::StaleTimestamp), "timestamp {ts}");
        }
    }

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&secret(S1).0, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn accepts_any_matching_signature_and_secret() {
        let body = b"{}";
        let ts = now().timestamp();
        let good = sign(&secret(S2).0, "msg_1", ts, body);
        let header = format!("v1,bm90IHRoaXM= {good}");
        let verified =
            verify(&[secret(S1), secret(S2)], Some("msg_1"), Some(&ts.to_string()), Some(&header), body, now())
                .unwrap();
        assert_eq!(verified.id, "msg_1");
        assert_eq!(verified.timestamp, now());
    }

    #[test]
    fn refuses_tampering_wrong_secrets_and_stale_timestamps() {
        let ts = now().timestamp();
        let sig = sign(&secret(S1).0, "msg_1", ts, b"{\"a\":1}");
        let check = |secrets: &[WebhookSecret], id: &str, ts: i64, body: &[u8]| {
            verify(secrets, Some(id), Some(&ts.to_string()), Some(&sig), body, now())
        };
        assert_eq!(check(&[secret(S1)], "msg_1", ts, b"{\"a\":2}"), Err(SignatureError::NoMatch));
        assert_eq!(check(&[secret(S2)], "msg_1", ts, b"{\"a\":1}"), Err(SignatureError::NoMatch));
        assert_eq!(check(&[secret(S1)], "msg_2", ts, b"{\"a\":1}"), Err(SignatureError::NoMatch));
        assert_eq!(check(&[secret(S1)], "msg_1", ts - 301, b"{\"a\":1}"), Err(SignatureError::StaleTimestamp));
        assert_eq!(check(&[secret(S1)], "msg_1", ts + 301, b"{\"a\":1}"), Err(SignatureError::StaleTimestamp));
        assert_eq!(check(&[], "msg_1", ts, b"{\"a\":1}"), Err(SignatureError::NoMatch));
        assert_eq!(
            verify(&[secret(S1)], None, Some("1"), Some(&sig), b"", now()),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            verify(&[secret(S1)], Some("m"), Some("soon"), Some(&sig), b"", now()),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn headers_are_checked_without_the_body() {
        let ts = now().timestamp().to_string();
        let check = |id: &str, ts: &str, sig: &str| check_headers(Some(id), Some(ts), Some(sig), now()).map(|_| ());
        assert_eq!(check("msg_1", &ts, "v1,bm90IHRoaXM="), Ok(()));
        assert_eq!(check("msg_1", &ts, "v2,bm90IHRoaXM="), Err(SignatureError::MalformedHeader("webhook-signature")));
        assert_eq!(check("msg_1", &ts, "v1,!!!"), Err(SignatureError::MalformedHeader("webhook-signature")));
        assert_eq!(check(&"m".repeat(256), &ts, "v1,bm90"), Err(SignatureError::MalformedHeader("webhook-id")));
        assert_eq!(check("msg_1", "1", "v1,bm90"), Err(SignatureError::StaleTimestamp));
        assert_eq!(
            check_headers(Some("msg_1"), None, Some("v1,bm90"), now()),
            Err(SignatureError::MissingHeader("webhook-timestamp"))
        );
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_in_the_body_is_refused(body in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<prop::sample::Index>()) {
            let ts = now().timestamp();
            let sig = sign(&secret(S1).0, "msg", ts, &body);
            let mut tampered = body.clone();
            let i = bit.index(tampered.len() * 8);
            tampered[i / 8] ^= 1 << (i % 8);
            prop_assert!(verify(&[secret(S1)], Some("msg"), Some(&ts.to_string()), Some(&sig), &body, now()).is_ok());
            prop_assert_eq!(verify(&[secret(S1)], Some("msg"), Some(&ts.to_string()), Some(&sig), &tampered, now()), Err(SignatureError::NoMatch));
        }
    }
}
