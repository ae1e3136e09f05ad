//! The per-subscription hash chain that makes edits to the log evident, and the one place that
//! checks it.
//!
//! `hash(event) = SHA-256(previous_hash || "\n" || envelope)`, hex, where `previous_hash` is
//! the hash of the subscription's previous event, or [`GENESIS_HASH`] for its first. Editing an
//! event's bytes changes its hash; rewriting the hash breaks the next event's `previous_hash`.
//!
//! [`ChainCheck`] holds the rules: fed links in log order, it names the first broken link of
//! every broken chain. Two readers feed it: [`check_chains`] walks any [`EventLog`] from the
//! first event (`fulfillment verify`), and the embedded log checks its tail since the last
//! verified position when it opens (`crate::checkpoint`), resuming each stream from the hash
//! of its last verified event.

use crate::{EventLog, LogError, StoredEvent};
use fulfillment_core::SubscriptionId;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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

/// The first broken link of one subscription's hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Subscription.
    pub subscription_id: SubscriptionId,
    /// Log position of the first event that does not fit.
    pub position: u64,
    /// Its place in the subscription's stream.
    pub stream_version: u64,
    /// What does not fit.
    pub reason: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "subscription {} broken at position {} (stream version {}): {}",
            self.subscription_id, self.position, self.stream_version, self.reason
        )
    }
}

/// One stored event as the chain sees it: where it is, and the bytes and hashes stored.
#[derive(Debug, Clone, Copy)]
pub struct ChainLink<'a> {
    /// Global position.
    pub position: u64,
    /// Stream.
    pub subscription_id: SubscriptionId,
    /// Place in the stream.
    pub stream_version: u64,
    /// The envelope as stored.
    pub raw: &'a str,
    /// Stored hash of the previous event of the stream.
    pub previous_hash: &'a str,
    /// Stored hash of this event.
    pub hash: &'a str,
}

impl<'a> From<&'a StoredEvent> for ChainLink<'a> {
    fn from(e: &'a StoredEvent) -> Self {
        ChainLink {
            position: e.position,
            subscription_id: e.envelope.subscription_id,
            stream_version: e.stream_version,
            raw: &e.raw,
            previous_hash: &e.previous_hash,
            hash: &e.hash,
        }
    }
}

/// The chain rules, applied to links fed in log order.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Per subscription: (last version, last hash), or `None` once broken.
    chains: HashMap<SubscriptionId, Option<(u64, String)>>,
    breaks: Vec<ChainBreak>,
    checked: u64,
}

impl ChainCheck {
    /// A check that starts every stream at its first event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a link of `subscription_id` was fed or resumed already.
    pub fn knows(&self, subscription_id: SubscriptionId) -> bool {
        self.chains.contains_key(&subscription_id)
    }

    /// Continues `subscription_id` after an event checked earlier (before a verified
    /// position): its stream version and stored hash. The event itself is trusted.
    pub fn resume(&mut self, subscription_id: SubscriptionId, stream_version: u64, hash: String) {
        self.chains.insert(subscription_id, Some((stream_version, hash)));
    }

    /// Checks the next link of its stream: in order, chained to the one before, and unedited.
    pub fn check(&mut self, link: ChainLink<'_>) {
        self.checked += 1;
        let entry = self.chains.entry(link.subscription_id).or_insert_with(|| Some((0, GENESIS_HASH.to_owned())));
        let Some((version, previous)) = entry.as_ref() else { return };
        let reason = if link.stream_version != version + 1 {
            Some(format!("stream version {} follows {version}: an event is missing", link.stream_version))
        } else if link.previous_hash != previous {
            Some("previous_hash does not match the hash of the event before it (an earlier event was edited or replaced)".to_owned())
        } else if event_hash(link.previous_hash, link.raw) != link.hash {
            Some("the stored hash does not match the event's content (this event was edited)".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.breaks.push(ChainBreak {
                    subscription_id: link.subscription_id,
                    position: link.position,
                    stream_version: link.stream_version,
                    reason,
                });
                *entry = None;
            }
            None => *entry = Some((link.stream_version, link.hash.to_owned())),
        }
    }

    /// Links checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The first break of each broken chain, in log order.
    pub fn into_breaks(mut self) -> Vec<ChainBreak> {
        self.breaks.sort_by_key(|b| b.position);
        self.breaks
    }
}

/// What [`check_chains`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    /// The first break of each broken chain, in log order.
    pub breaks: Vec<ChainBreak>,
    /// The last position checked (0 for an empty log): every event up to it was checked.
    pub checked_through: u64,
}

/// Events read per page while checking chains.
const CHAIN_PAGE: usize = 10_000;

/// Checks every subscription's hash chain in `log`, from the first event to the head.
pub async fn check_chains(log: &dyn EventLog) -> Result<ChainReport, LogError> {
    let mut check = ChainCheck::new();
    let mut position = 0;
    loop {
        let page = log.read_after(position, CHAIN_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        for e in &page {
            check.check(e.into());
        }
    }
    Ok(ChainReport { breaks: check.into_breaks(), checked_through: position })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_hash_covers_the_previous_hash_and_every_byte() {
        let a = event_hash(GENESIS_HASH, "{\"a\":1}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, event_hash(GENESIS_HASH, "{\"a\":2}"));
        assert_ne!(a, event_hash(&a, "{\"a\":1}"));
        assert_eq!(a, event_hash(GENESIS_HASH, "{\"a\":1}"));
    }

    /// A stored link, owned.
    #[derive(Clone)]
    struct Stored {
        position: u64,
        version: u64,
        raw: String,
        previous: String,
        hash: String,
    }

    /// A stream of `n` chained links at positions `first..`.
    fn stream(first: u64, n: u64) -> Vec<Stored> {
        let mut previous = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|version| {
                let raw = format!("{{\"n\":{version}}}");
                let hash = event_hash(&previous, &raw);
                let link = Stored { position: first + version - 1, version, raw, previous: previous.clone(), hash };
                previous = link.hash.clone();
                link
            })
            .collect()
    }

    fn feed(check: &mut ChainCheck, id: SubscriptionId, links: &[Stored]) {
        for l in links {
            check.check(ChainLink {
                position: l.position,
                subscription_id: id,
                stream_version: l.version,
                raw: &l.raw,
                previous_hash: &l.previous,
                hash: &l.hash,
            });
        }
    }

    #[test]
    fn an_intact_chain_has_no_break_and_each_kind_of_edit_is_named() {
        let id = SubscriptionId(Uuid::new_v4());
        let links = stream(1, 4);
        let mut check = ChainCheck::new();
        feed(&mut check, id, &links);
        assert_eq!(check.checked(), 4);
        assert!(check.into_breaks().is_empty());

        let mut edited = links.clone();
        edited[1].raw = "{\"n\":20}".into();
        let mut check = ChainCheck::new();
        feed(&mut check, id, &edited);
        let breaks = check.into_breaks();
        assert_eq!((breaks.len(), breaks[0].position, breaks[0].stream_version), (1, 2, 2));
        assert!(breaks[0].reason.contains("this event was edited"), "{}", breaks[0]);

        let mut rehashed = links.clone();
        rehashed[1].hash = event_hash(&rehashed[1].previous, "{\"n\":20}");
        rehashed[1].raw = "{\"n\":20}".into();
        let mut check = ChainCheck::new();
        feed(&mut check, id, &rehashed);
        let breaks = check.into_breaks();
        assert_eq!(breaks[0].position, 3, "the next event no longer fits: {}", breaks[0]);
        assert!(breaks[0].reason.contains("an earlier event was edited"));

        let mut check = ChainCheck::new();
        feed(&mut check, id, &[links[0].clone(), links[2].clone()]);
        assert!(check.into_breaks()[0].reason.contains("an event is missing"));
    }

    #[test]
    fn a_resumed_stream_continues_from_the_trusted_hash() {
        let id = SubscriptionId(Uuid::new_v4());
        let links = stream(1, 4);
        let mut check = ChainCheck::new();
        check.resume(id, 2, links[1].hash.clone());
        assert!(check.knows(id));
        feed(&mut check, id, &links[2..]);
        assert!(check.into_breaks().is_empty());
        // Resumed from another hash than the stored previous_hash: the link does not fit.
        let mut check = ChainCheck::new();
        check.resume(id, 2, links[0].hash.clone());
        feed(&mut check, id, &links[2..]);
        assert_eq!(check.into_breaks()[0].position, 3);
    }
}
