//! The per-subscription hash chain that makes edits to the log evident.
//!
//! `hash(event) = SHA-256(previous_hash || "\n" || envelope)`, hex, where `previous_hash` is
//! the hash of the subscription's previous event, or [`GENESIS_HASH`] for its first. Editing an
//! event's bytes changes its hash; rewriting the hash breaks the next event's `previous_hash`.

use sha2::{Digest, Sha256};

/// `previous_hash` of a subscription's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of an event stored as `envelope` after an event hashed `previous_hash`.
pub fn event_hash(previous_hash: &str, envelope: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous_hash.as_bytes());
    h.update(b"\n");
    h.update(envelope.as_bytes());
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_previous_hash_and_every_byte() {
        let a = event_hash(GENESIS_HASH, "{\"a\":1}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, event_hash(GENESIS_HASH, "{\"a\":2}"));
        assert_ne!(a, event_hash(&a, "{\"a\":1}"));
        assert_eq!(a, event_hash(GENESIS_HASH, "{\"a\":1}"));
    }
}
