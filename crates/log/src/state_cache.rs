//! Folded subscription states kept in memory by the embedded log, so a webhook or partner
//! command decides without reading and decoding its subscription's stream again.
//!
//! Safe only because the embedded log is the only writer of its file (the data directory is
//! locked by one process) and because every change reaches the cache from the writer thread,
//! after its commit and before its caller is answered. Two rules keep an entry from ever being
//! older than the log once a caller could have seen something newer:
//!
//! - the writer advances an entry only when it sits exactly at the version the append was
//!   decided against (or the stream is new); otherwise it drops the entry, unless the entry is
//!   already at or past the committed version;
//! - a reader that missed and folded the stream from the file stores its result only when no
//!   commit was applied to the cache between its look-up and its store (`writes` unchanged), so
//!   a read that raced a commit is never stored over it.
//!
//! Even so, the log's version check stays the judge: a decision on a stale state would be
//! refused as a conflict at append, which drops the entry, and the caller decides again.
//!
//! Memory is bounded by two generations of at most `capacity` entries each: when the current
//! one fills, it becomes the previous one and the old previous one is dropped; a hit in the
//! previous generation moves the entry back to the current one.

use crate::StreamAppend;
use fulfillment_core::{fold, Subscription, SubscriptionId};
use std::collections::HashMap;
use std::sync::Mutex;

/// A subscription folded from its stream, with the stream length it was folded from.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    /// Number of events in the stream (the version to append after).
    pub version: u64,
    /// The folded state; `None` while the stream holds no purchase.
    pub subscription: Option<Subscription>,
}

/// The cache; see the module documentation for why it can never serve a stale state.
pub(crate) struct StateCache {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<SubscriptionId, StreamState>,
    previous: HashMap<SubscriptionId, StreamState>,
    /// Commits applied so far; a reader's store is void when this moved since its look-up.
    writes: u64,
}

/// What a look-up found: the state, or the count of applied commits to present when storing
/// what the caller reads instead.
pub(crate) enum Lookup {
    Hit(Box<StreamState>),
    Miss { writes: u64 },
}

impl Generations {
    fn take(&mut self, id: &SubscriptionId) -> Option<StreamState> {
        self.current.remove(id).or_else(|| self.previous.remove(id))
    }

    fn put(&mut self, id: SubscriptionId, state: StreamState, capacity: usize) {
        if self.current.len() >= capacity && !self.current.contains_key(&id) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id, state);
    }
}

impl StateCache {
    /// A cache of at most `2 * capacity` subscriptions; `capacity` must be at least 1.
    pub(crate) fn new(capacity: usize) -> Self {
        StateCache { capacity: capacity.max(1), generations: Mutex::new(Generations::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The data is a cache: a panic elsewhere while holding the lock leaves nothing wrong.
        self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lookup(&self, id: SubscriptionId) -> Lookup {
        let mut generations = self.lock();
        if let Some(state) = generations.current.get(&id) {
            return Lookup::Hit(Box::new(state.clone()));
        }
        if let Some(state) = generations.previous.remove(&id) {
            let found = state.clone();
            generations.put(id, state, self.capacity);
            return Lookup::Hit(Box::new(found));
        }
        Lookup::Miss { writes: generations.writes }
    }

    /// Stores what a reader folded from the file after a [`Lookup::Miss`], unless a commit was
    /// applied since (the read may predate it) or the entry is already as new.
    pub(crate) fn store_read(&self, id: SubscriptionId, state: StreamState, writes_at_lookup: u64) {
        if state.version == 0 {
            return; // no such subscription: nothing to keep, and no way for callers to fill memory
        }
        let mut generations = self.lock();
        if generations.writes != writes_at_lookup {
            return;
        }
        if let Some(existing) = generations.current.get(&id).or_else(|| generations.previous.get(&id)) {
            if existing.version >= state.version {
                return;
            }
        }
        generations.put(id, state, self.capacity);
    }

    /// Applies committed appends (called by the writer thread after COMMIT, before answering).
    pub(crate) fn committed<'a>(&self, streams: impl IntoIterator<Item = &'a StreamAppend>) {
        let mut generations = self.lock();
        generations.writes += 1;
        for stream in streams {
            let id = stream.subscription_id;
            let committed_version = stream.expected_version + stream.events.len() as u64;
            let base = match generations.take(&id) {
                None if stream.expected_version == 0 => None,
                Some(cached) if cached.version == stream.expected_version => cached.subscription,
                Some(cached) if cached.version >= committed_version => {
                    generations.put(id, cached, self.capacity);
                    continue;
                }
                // Absent, or behind what was committed: the file is the only truth now.
                _ => continue,
            };
            let subscription = fold(base, &stream.events).state;
            generations.put(id, StreamState { version: committed_version, subscription }, self.capacity);
        }
    }

    /// Drops one entry (its stream was found at another version than the caller expected).
    pub(crate) fn forget(&self, id: SubscriptionId) {
        let mut generations = self.lock();
        generations.writes += 1;
        generations.take(&id);
    }

    /// Drops everything (a commit failed and what is on disk is in doubt).
    pub(crate) fn clear(&self) {
        let mut generations = self.lock();
        generations.writes += 1;
        generations.current.clear();
        generations.previous.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.len() + generations.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{licenses_assigned, new_id, purchased, setup_confirmed};

    fn append(id: SubscriptionId, expected_version: u64, events: Vec<fulfillment_core::EventEnvelope>) -> StreamAppend {
        StreamAppend { subscription_id: id, expected_version, events }
    }

    fn hit(cache: &StateCache, id: SubscriptionId) -> Option<StreamState> {
        match cache.lookup(id) {
            Lookup::Hit(state) => Some(*state),
            Lookup::Miss { .. } => None,
        }
    }

    #[test]
    fn a_new_stream_and_appends_at_the_cached_version_are_folded_in_place() {
        let cache = StateCache::new(10);
        let id = new_id();
        let first = vec![purchased(id)];
        cache.committed([&append(id, 0, first.clone())]);
        let second = vec![licenses_assigned(id, 3), setup_confirmed(id, 3)];
        cache.committed([&append(id, 1, second.clone())]);
        let all: Vec<_> = first.into_iter().chain(second).collect();
        let expected = StreamState { version: 3, subscription: fold(None, &all).state };
        assert_eq!(hit(&cache, id), Some(expected));
    }

    #[test]
    fn an_append_the_cache_did_not_see_the_base_of_drops_nothing_it_cannot_fold() {
        let cache = StateCache::new(10);
        let id = new_id();
        // Not cached, not new: the writer cannot fold it and must not invent a state.
        cache.committed([&append(id, 1, vec![licenses_assigned(id, 3)])]);
        assert_eq!(hit(&cache, id), None);
        // Cached at version 1, but an append decided against version 2 committed: the cached
        // state is behind and goes.
        cache.committed([&append(id, 0, vec![purchased(id)])]);
        cache.committed([&append(id, 2, vec![setup_confirmed(id, 3)])]);
        assert_eq!(hit(&cache, id), None);
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_stored() {
        let cache = StateCache::new(10);
        let id = new_id();
        let Lookup::Miss { writes } = cache.lookup(id) else { panic!("empty cache hit") };
        let stale = StreamState { version: 1, subscription: fold(None, &[purchased(id)]).state };
        cache.committed([&append(new_id(), 0, vec![purchased(id)])]);
        cache.store_read(id, stale.clone(), writes);
        assert_eq!(hit(&cache, id), None, "a commit was applied between look-up and store");

        let Lookup::Miss { writes } = cache.lookup(id) else { panic!("nothing was stored") };
        cache.store_read(id, stale.clone(), writes);
        assert_eq!(hit(&cache, id), Some(stale));
    }

    #[test]
    fn a_read_never_replaces_a_newer_entry_and_unknown_subscriptions_are_not_kept() {
        let cache = StateCache::new(10);
        let id = new_id();
        let events = vec![purchased(id), licenses_assigned(id, 3)];
        cache.committed([&append(id, 0, events.clone())]);
        let Lookup::Miss { writes } = cache.lookup(new_id()) else { panic!() };
        cache.store_read(id, StreamState { version: 1, subscription: fold(None, &events[..1]).state }, writes);
        assert_eq!(hit(&cache, id).map(|s| s.version), Some(2));

        let unknown = new_id();
        cache.store_read(unknown, StreamState { version: 0, subscription: None }, writes);
        assert_eq!(hit(&cache, unknown), None);
    }

    #[test]
    fn forget_and_clear_drop_entries() {
        let cache = StateCache::new(10);
        let (a, b) = (new_id(), new_id());
        cache.committed([&append(a, 0, vec![purchased(a)]), &append(b, 0, vec![purchased(b)])]);
        cache.forget(a);
        assert_eq!(hit(&cache, a), None);
        assert!(hit(&cache, b).is_some());
        cache.clear();
        assert_eq!(hit(&cache, b), None);
    }

    #[test]
    fn memory_stays_within_two_generations_and_a_recent_hit_survives_a_turnover() {
        let cache = StateCache::new(4);
        let kept = new_id();
        cache.committed([&append(kept, 0, vec![purchased(kept)])]);
        for _ in 0..3 {
            let id = new_id();
            cache.committed([&append(id, 0, vec![purchased(id)])]);
        }
        // The fifth entry turns the generation over; `kept` is now in the previous one.
        let id = new_id();
        cache.committed([&append(id, 0, vec![purchased(id)])]);
        assert!(hit(&cache, kept).is_some(), "moved back to the current generation");
        for _ in 0..20 {
            let id = new_id();
            cache.committed([&append(id, 0, vec![purchased(id)])]);
            assert!(cache.len() <= 8);
        }
    }
}
