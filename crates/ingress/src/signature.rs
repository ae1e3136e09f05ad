//! Standard Webhooks signature verification, in one reviewed place.
//!
//! A signed request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! entries. Any entry may match any configured secret (so a publisher can rotate secrets),
//! comparisons are constant time, and timestamps more than five minutes from our clock are
//! refused so that a captured request cannot be replayed later.

use crate::directory::WebhookSecret;
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

/// Verifies a webhook against `secrets` at instant `now`.
pub fn verify(
    secrets: &[WebhookSecret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<VerifiedWebhook, SignatureError> {
    let id = id.filter(|v| !v.is_empty()).ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let seconds: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp near i64::MIN or MAX must be refused, not overflow.
    if now.timestamp().abs_diff(seconds) > TIMESTAMP_TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let at = DateTime::from_timestamp(seconds, 0).ok_or(SignatureError::BadTimestamp)?;
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    let mut matched = false;
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for candidate in &candidates {
            // `verify_slice` compares in constant time.
            if mac.clone().verify_slice(candidate).is_ok() {
                matched = true;
            }
        }
    }
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    Ok(VerifiedWebhook { id: id.to_owned(), timestamp: at })
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
