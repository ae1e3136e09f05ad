//! The secrets we keep and the secrets we hand out, and the one way each is compared.
//!
//! In: configured API keys and tokens, read once at start-up by [`crate::directory`], and
//! webhook secrets in their `whsec_` form; at request time, the key or token a caller presents.
//! Out: [`CredentialDigest`]s (only the SHA-256 of a key is kept, so neither a memory dump nor a
//! log line holds one), [`WebhookSecret`]s (kept decoded, since they are HMAC keys), the owner a
//! presented credential belongs to ([`owner_of`]), and fresh unguessable tokens
//! ([`random_token`]: session ids, CSRF tokens, authorization codes).
//!
//! Every comparison is constant time and looks at every candidate, so the time an answer takes
//! says nothing about how close a guess came or whose key it nearly was. `Debug` output of a
//! secret is redacted.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Shortest accepted API key or token: anything shorter is guessable.
pub const MIN_CREDENTIAL_CHARS: usize = 16;

/// SHA-256 of a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialDigest([u8; 32]);

impl CredentialDigest {
    /// Digest of a presented or configured credential.
    pub fn of(secret: &str) -> Self {
        CredentialDigest(Sha256::digest(secret.as_bytes()).into())
    }

    /// Digest of a configured credential, refused when it is shorter than
    /// [`MIN_CREDENTIAL_CHARS`].
    pub fn configured(secret: &str) -> Result<Self, String> {
        if secret.chars().count() < MIN_CREDENTIAL_CHARS {
            return Err(format!("is shorter than {MIN_CREDENTIAL_CHARS} characters"));
        }
        Ok(CredentialDigest::of(secret))
    }

    /// Constant-time comparison.
    fn matches(&self, other: &CredentialDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for CredentialDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialDigest(<redacted>)")
    }
}

/// The owner (partner, publisher, billing consumer) one of whose `digests` is the digest of
/// `presented`, comparing against every owner's every digest in constant time per comparison
/// (no early exit on the first byte that differs, nor on the first match).
pub fn owner_of<'a, T>(
    owners: impl IntoIterator<Item = &'a T>,
    digests: impl Fn(&T) -> &[CredentialDigest],
    presented: &str,
) -> Option<&'a T> {
    let presented = CredentialDigest::of(presented);
    let mut found = None;
    for owner in owners {
        for digest in digests(owner) {
            if digest.matches(&presented) {
                found = Some(owner);
            }
        }
    }
    found
}

/// A Standard Webhooks signing secret (`whsec_` + base64), decoded.
#[derive(Clone)]
pub struct WebhookSecret(pub(crate) Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Parses the `whsec_<base64>` form used by Standard Webhooks.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix("whsec_").ok_or("must start with whsec_")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("is not valid base64 after whsec_: {e}"))?;
        if bytes.len() < 24 {
            return Err(format!("must decode to at least 24 bytes, got {}", bytes.len()));
        }
        Ok(WebhookSecret(bytes))
    }
}

/// 32 random bytes, URL-safe base64: session ids, CSRF tokens and authorization codes.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a submitted token equals the expected one, in time independent of where they differ.
pub(crate) fn tokens_match(expected: &str, submitted: &str) -> bool {
    expected.len() == submitted.len() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("abc", ""));
    }

    #[test]
    fn a_random_token_holds_256_bits() {
        assert_eq!(random_token().len(), 43, "256 bits in unpadded base64");
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn configured_credentials_must_not_be_guessable() {
        assert_eq!(CredentialDigest::configured("short"), Err("is shorter than 16 characters".into()));
        assert_eq!(CredentialDigest::configured("sixteen_chars_ok"), Ok(CredentialDigest::of("sixteen_chars_ok")));
    }
}
