//! Limits on failed authentication, per source address and per credential id, so that nobody
//! can guess keys, tokens or webhook signatures at the speed of the network.
//!
//! In: before authenticating, [`AuthFailures::admit`] with the caller's address and the
//! credential id it claims (a publisher id, or a fingerprint of the presented token); after a
//! refusal, [`AuthFailures::failed`]. Out: a 429 with `Retry-After` while the address or the
//! credential is barred.
//!
//! Failures are counted by `governor`'s GCRA (a burst of `per_minute`, refilled evenly over a
//! minute). A key that runs out is barred until its next failure would be allowed again: every
//! attempt, right or wrong, is then answered 429 without being checked, so a guess cannot be
//! confirmed while barred. Barring a credential also bars its rightful owner (an attacker can
//! lock a publisher's webhooks out while it keeps failing for that publisher): the
//! per-credential limit can be set apart from the per-address one, or turned off.

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// Failures between two sweeps of forgotten keys: every this many failures, keys whose bar
/// ended and keys whose failures are a minute old are dropped, so the keys held stay bounded by
/// the failures of the last minute, however many distinct keys an attacker presents.
const SWEEP_EVERY: u64 = 1024;

/// Failures allowed per minute, per source address and per credential id (`0`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailureQuota {
    /// Per source address (IPv6 by /64).
    pub per_address_per_minute: u32,
    /// Per credential id.
    pub per_credential_per_minute: u32,
}

impl Default for AuthFailureQuota {
    fn default() -> Self {
        AuthFailureQuota { per_address_per_minute: 20, per_credential_per_minute: 60 }
    }
}

/// What an attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Credential(String),
}

/// One kind of key with its own quota.
struct Limit {
    failures: DefaultKeyedRateLimiter<Key>,
    barred: DashMap<Key, Instant>,
    /// Failures counted, for the periodic sweep.
    counted: std::sync::atomic::AtomicU64,
}

impl Limit {
    fn new(per_minute: u32) -> Option<Limit> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Limit {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            barred: DashMap::new(),
            counted: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Time left on `key`'s bar, if barred.
    fn barred_for(&self, key: &Key) -> Option<Duration> {
        let until = *self.barred.get(key)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.barred.remove(key);
            return None;
        }
        Some(left)
    }

    /// Counts a failure; bars the key when it has no failure left.
    fn count(&self, key: Key) -> bool {
        if self.counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.barred.retain(|_, until| *until > now);
            self.failures.retain_recent();
            self.failures.shrink_to_fit();
        }
        let Err(not_until) = self.failures.check_key(&key) else { return false };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        self.barred.insert(key, Instant::now() + wait);
        true
    }

    /// Keys held (failure counters and bars), for the tests of the sweep.
    #[cfg(test)]
    fn keys_held(&self) -> usize {
        self.failures.len() + self.barred.len()
    }
}

/// The failure limits of one service.
#[derive(Clone)]
pub struct AuthFailures {
    per_address: Option<Arc<Limit>>,
    per_credential: Option<Arc<Limit>>,
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures")
            .field("per_address", &self.per_address.is_some())
            .field("per_credential", &self.per_credential.is_some())
            .finish()
    }
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::new(AuthFailureQuota::default())
    }
}

/// Who is attempting: where from, and which credential it claims.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    address: Option<IpAddr>,
    credential: Option<String>,
}

impl Attempt {
    /// An attempt from `peer` (absent when the request did not come through a listener).
    pub fn from(peer: Option<SocketAddr>) -> Attempt {
        Attempt { address: peer.map(|p| address_key(p.ip())), credential: None }
    }

    /// Claims the credential `kind:id` (a publisher id, say).
    pub fn claiming(mut self, kind: &str, id: &str) -> Attempt {
        self.credential = Some(format!("{kind}:{id}"));
        self
    }

    /// Claims a secret presented on its own (a bearer token): counted by a fingerprint, never
    /// stored as presented.
    pub fn presenting(self, kind: &str, secret: &str) -> Attempt {
        let digest = Sha256::digest(secret.as_bytes());
        let fingerprint: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        self.claiming(kind, &fingerprint)
    }
}

/// IPv4 addresses as they are; IPv6 by their /64 network, which one host usually owns whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl AuthFailures {
    /// Limits with `quota`; a zero turns that limit off.
    pub fn new(quota: AuthFailureQuota) -> Self {
        AuthFailures {
            per_address: Limit::new(quota.per_address_per_minute).map(Arc::new),
            per_credential: Limit::new(quota.per_credential_per_minute).map(Arc::new),
        }
    }

    fn keyed(&self, attempt: &Attempt) -> impl Iterator<Item = (&Limit, Key)> {
        let address = self.per_address.as_deref().zip(attempt.address.map(Key::Address));
        let credential = self.per_credential.as_deref().zip(attempt.credential.clone().map(Key::Credential));
        address.into_iter().chain(credential)
    }

    /// `Err(seconds to wait)` while the attempt's address or credential is barred.
    pub fn admit(&self, attempt: &Attempt) -> Result<(), u64> {
        let longest = self.keyed(attempt).filter_map(|(limit, key)| limit.barred_for(&key)).max();
        match longest {
            Some(left) => Err(left.as_secs_f64().ceil().max(1.0) as u64),
            None => Ok(()),
        }
    }

    /// Counts a refused attempt against its address and credential.
    pub fn failed(&self, attempt: &Attempt) {
        for (limit, key) in self.keyed(attempt) {
            if limit.count(key.clone()) {
                warn!(key = %describe(&key), "too many failed authentication attempts; barred for a while");
            }
        }
    }
}

fn describe(key: &Key) -> String {
    match key {
        Key::Address(ip) => format!("address {ip}"),
        Key::Credential(id) => format!("credential {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Attempt {
        Attempt::from(Some(SocketAddr::new(ip.parse().unwrap(), 4000)))
    }

    #[test]
    fn keys_of_failures_that_aged_out_are_forgotten_however_many_distinct_keys_fail() {
        // 6,000 a minute: one failure is forgotten after 10 ms.
        let limit = Limit::new(6000).unwrap();
        for n in 0..SWEEP_EVERY - 1 {
            limit.count(Key::Credential(format!("token-{n}")));
        }
        assert_eq!(limit.keys_held(), (SWEEP_EVERY - 1) as usize);
        std::thread::sleep(Duration::from_millis(50));
        limit.count(Key::Credential("one-more".into()));
        assert!(limit.keys_held() <= 1, "held {} keys after the sweep", limit.keys_held());
    }

    #[test]
    fn an_address_is_barred_after_its_failures_and_every_attempt_then_waits() {
        let limits = AuthFailures::new(AuthFailureQuota { per_address_per_minute: 3, per_credential_per_minute: 0 });
        let attacker = from("192.0.2.7");
        for _ in 0..3 {
            assert_eq!(limits.admit(&attacker), Ok(()));
            limits.failed(&attacker);
        }
        assert_eq!(limits.admit(&attacker), Ok(()), "three failures are within the quota");
        limits.failed(&attacker);
        let wait = limits.admit(&attacker).unwrap_err();
        assert!((1..=20).contains(&wait), "one failure refills in 20 s: {wait}");
        // Even the right credential waits; other addresses do not.
        assert!(limits.admit(&attacker.clone().claiming("publisher", "contoso")).is_err());
        assert_eq!(limits.admit(&from("192.0.2.8")), Ok(()));
    }

    #[test]
    fn a_credential_is_barred_whatever_address_the_failures_come_from() {
        let limits = AuthFailures::new(AuthFailureQuota { per_address_per_minute: 0, per_credential_per_minute: 2 });
        for i in 0..3 {
            limits.failed(&from(&format!("198.51.100.{i}")).claiming("publisher", "contoso"));
        }
        assert!(limits.admit(&from("203.0.113.1").claiming("publisher", "contoso")).is_err());
        assert_eq!(limits.admit(&from("203.0.113.1").claiming("publisher", "fabrikam")), Ok(()));
        assert_eq!(limits.admit(&from("203.0.113.1")), Ok(()), "the address itself is not limited");
    }

    #[test]
    fn ipv6_addresses_count_by_their_network_and_tokens_by_fingerprint() {
        let limits = AuthFailures::new(AuthFailureQuota { per_address_per_minute: 1, per_credential_per_minute: 0 });
        limits.failed(&from("2001:db8::1"));
        limits.failed(&from("2001:db8::2"));
        assert!(limits.admit(&from("2001:db8::ffff")).is_err(), "same /64");
        assert_eq!(limits.admit(&from("2001:db8:0:1::1")), Ok(()));
        let presented = Attempt::default().presenting("token", "a secret");
        assert!(!format!("{presented:?}").contains("a secret"), "the secret itself is never kept");
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let limits = AuthFailures::new(AuthFailureQuota { per_address_per_minute: 0, per_credential_per_minute: 0 });
        let attacker = from("192.0.2.7").claiming("publisher", "contoso");
        for _ in 0..100 {
            limits.failed(&attacker);
        }
        assert_eq!(limits.admit(&attacker), Ok(()));
    }
}
