//! Console sign-in sessions, kept in memory.
//!
//! The browser holds only a random 256-bit session id in an `HttpOnly` cookie; the server keeps
//! who it belongs to and the session's CSRF token. Only the SHA-256 of the id is stored, so the
//! table itself holds nothing a reader could replay as a cookie. Sessions end on sign-out, after
//! [`IDLE_TIMEOUT`] without a request, or [`ABSOLUTE_TIMEOUT`] after sign-in; a restart signs
//! everyone out (the cost of keeping no secret at rest).

use super::credentials::random_token;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A session ends this long after sign-in, however active.
pub(crate) const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);

/// Most sessions kept at once (bounded memory under a flood of sign-ins). When full of live
/// sessions, new sign-ins are refused rather than evicting anybody else's session.
const MAX_SESSIONS: usize = 10_000;

/// Most live sessions per partner; a partner's further sign-in ends its own oldest session,
/// so one partner can neither fill the table nor sign other partners out.
pub(crate) const MAX_SESSIONS_PER_PARTNER: usize = 20;

/// What a signed-in browser may do.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The partner it acts for.
    pub(crate) partner_id: String,
    /// Token every form of this session must carry.
    pub(crate) csrf_token: String,
}

struct Entry {
    session: Session,
    signed_in_at: Instant,
    last_seen: Instant,
}

impl Entry {
    fn alive(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE_TIMEOUT && now.duration_since(self.signed_in_at) < ABSOLUTE_TIMEOUT
    }
}

/// The session table.
#[derive(Default)]
pub(crate) struct Sessions {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn digest(session_id: &str) -> [u8; 32] {
    Sha256::digest(session_id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `partner_id`; returns the id for the cookie, or `None` when the
    /// table is full of other partners' live sessions.
    pub(crate) fn create(&self, partner_id: &str) -> Option<(String, Session)> {
        let id = random_token();
        let session = Session { partner_id: partner_id.to_owned(), csrf_token: random_token() };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.alive(now));
        let mut own: Vec<([u8; 32], Instant)> = entries
            .iter()
            .filter(|(_, e)| e.session.partner_id == partner_id)
            .map(|(k, e)| (*k, e.signed_in_at))
            .collect();
        if own.len() >= MAX_SESSIONS_PER_PARTNER {
            own.sort_by_key(|(_, at)| *at);
            for (key, _) in &own[..=own.len() - MAX_SESSIONS_PER_PARTNER] {
                entries.remove(key);
            }
        }
        if entries.len() >= MAX_SESSIONS {
            return None;
        }
        entries.insert(digest(&id), Entry { session: session.clone(), signed_in_at: now, last_seen: now });
        Some((id, session))
    }

    /// The live session behind a cookie value, refreshing its idle timer.
    pub(crate) fn get(&self, session_id: &str) -> Option<Session> {
        self.get_at(session_id, Instant::now())
    }

    fn get_at(&self, session_id: &str, now: Instant) -> Option<Session> {
        let key = digest(session_id);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(&key) {
            Some(entry) if entry.alive(now) => {
                entry.last_seen = now;
                Some(entry.session.clone())
            }
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out).
    pub(crate) fn remove(&self, session_id: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest(session_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_and_gone_after_sign_out() {
        let sessions = Sessions::default();
        let (id, created) = sessions.create("partner-1").unwrap();
        let found = sessions.get(&id).expect("live session");
        assert_eq!(found.partner_id, "partner-1");
        assert_eq!(found.csrf_token, created.csrf_token);
        assert!(sessions.get("not-a-session").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn every_session_gets_its_own_id_and_csrf_token() {
        let sessions = Sessions::default();
        let (a, sa) = sessions.create("partner-1").unwrap();
        let (b, sb) = sessions.create("partner-1").unwrap();
        assert_ne!(a, b);
        assert_ne!(sa.csrf_token, sb.csrf_token);
        assert_eq!(a.len(), 43, "256 bits in unpadded base64");
    }

    #[test]
    fn an_idle_session_expires() {
        let sessions = Sessions::default();
        let (id, _) = sessions.create("partner-1").unwrap();
        let later = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1);
        assert!(sessions.get_at(&id, later).is_none());
        assert!(sessions.entries.lock().unwrap().is_empty(), "expired entries are dropped");
    }

    #[test]
    fn an_active_session_still_ends_after_the_absolute_timeout() {
        let sessions = Sessions::default();
        let (id, _) = sessions.create("partner-1").unwrap();
        let start = Instant::now();
        let step = IDLE_TIMEOUT / 2;
        let mut now = start;
        while now + step < start + ABSOLUTE_TIMEOUT {
            now += step;
            assert!(sessions.get_at(&id, now).is_some(), "used every {step:?}, the session stays");
        }
        // Seen less than the idle timeout ago, but signed in too long ago.
        assert!(sessions.get_at(&id, start + ABSOLUTE_TIMEOUT + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn a_partner_signing_in_again_and_again_ends_only_its_own_oldest_sessions() {
        let sessions = Sessions::default();
        let (other, _) = sessions.create("partner-2").unwrap();
        let (first, _) = sessions.create("partner-1").unwrap();
        for _ in 0..MAX_SESSIONS_PER_PARTNER {
            sessions.create("partner-1").unwrap();
        }
        assert!(sessions.get(&first).is_none(), "partner 1's oldest session made room");
        assert!(sessions.get(&other).is_some(), "partner 2 stays signed in");
        assert_eq!(sessions.entries.lock().unwrap().len(), MAX_SESSIONS_PER_PARTNER + 1);
    }
}
