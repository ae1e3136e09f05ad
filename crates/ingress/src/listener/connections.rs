//! The open connections of one listener, so that no client can hold one longer than its phase
//! allows and, at the cap, the connection idle the longest makes room for a new one.
//!
//! A connection is always in one of three phases:
//! - `Head`: reading a request head (from the first byte, or from accept for a new connection),
//!   bounded by the header-read timeout;
//! - `Busy`: the head arrived and a handler runs; reading its body is bounded by the body-read
//!   timeout ([`crate::request_limits`]), so the phase itself has no deadline;
//! - `Idle`: between requests of a kept-alive connection, bounded by the idle timeout.
//!
//! Phase changes are two relaxed atomic stores on the request path ([`Connection::enter`]). A
//! sweeper task ([`Registry::close_overdue`], a few times a second) closes the connections past
//! their deadline, and [`Registry::make_room`] sheds the longest-waiting connection outside a
//! request when a new one arrives at the cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Reading a request head.
    Head = 0,
    /// Inside a request: the handler runs.
    Busy = 1,
    /// Kept alive between requests.
    Idle = 2,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        }
    }
}

/// The timeouts the sweeper enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhaseTimeouts {
    /// Longest a request head may take to arrive.
    pub head: Duration,
    /// Longest a kept-alive connection may wait for its next request.
    pub idle: Duration,
}

/// One accepted connection, shared by its task, its I/O wrapper and the registry.
#[derive(Debug)]
pub(crate) struct Connection {
    phase: AtomicU8,
    /// Milliseconds since the registry's epoch at which the current phase began.
    since: AtomicU64,
    epoch: Instant,
    /// Cancelled to close the connection at once (overdue, or shed).
    pub close: CancellationToken,
}

impl Connection {
    /// Moves to `phase`, starting its clock now.
    pub fn enter(&self, phase: Phase) {
        self.since.store(millis_since(self.epoch), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The first bytes of a new request arrived on an idle connection: its head is now being
    /// read (and the header-read timeout runs). No change in any other phase.
    pub fn bytes_arrived(&self) {
        if self.phase.load(Ordering::Relaxed) == Phase::Idle as u8 {
            self.since.store(millis_since(self.epoch), Ordering::Relaxed);
            let _ =
                self.phase.compare_exchange(Phase::Idle as u8, Phase::Head as u8, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    fn since(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// Whether the current phase has lasted longer than it may at `now` (ms since the epoch).
    fn overdue(&self, now: u64, timeouts: PhaseTimeouts) -> bool {
        let limit = match self.phase() {
            Phase::Head => timeouts.head,
            Phase::Idle => timeouts.idle,
            Phase::Busy => return false,
        };
        now.saturating_sub(self.since()) > limit.as_millis() as u64
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The connections of one listener.
#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

/// Removes its connection from the registry when the connection's task ends.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
    /// The registered connection.
    pub connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry { epoch: Instant::now(), next_id: AtomicU64::new(0), open: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a just-accepted connection, in its head phase.
    pub fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            phase: AtomicU8::new(Phase::Head as u8),
            since: AtomicU64::new(millis_since(self.epoch)),
            epoch: self.epoch,
            close: CancellationToken::new(),
        });
        self.lock().insert(id, connection.clone());
        Registration { registry: self.clone(), id, connection }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes room for one more connection under `cap`: below the cap, nothing to do; at the cap,
    /// the connection outside a request that has waited the longest in its phase is closed.
    /// `false` when every connection is inside a request (the new one must be refused).
    pub fn make_room(&self, cap: usize) -> bool {
        let mut open = self.lock();
        if open.len() < cap {
            return true;
        }
        let victim =
            open.iter().filter(|(_, c)| c.phase() != Phase::Busy).min_by_key(|(_, c)| c.since()).map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(connection) => {
                connection.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes every connection past its phase's deadline; returns how many.
    pub fn close_overdue(&self, timeouts: PhaseTimeouts) -> usize {
        let now = millis_since(self.epoch);
        let mut open = self.lock();
        let before = open.len();
        open.retain(|_, connection| {
            let overdue = connection.overdue(now, timeouts);
            if overdue {
                connection.close.cancel();
            }
            !overdue
        });
        before - open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: PhaseTimeouts = PhaseTimeouts { head: Duration::from_millis(40), idle: Duration::from_millis(400) };

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let registry = Registry::new();
        let silent = registry.register();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(registry.close_overdue(TIMEOUTS), 1);
        assert!(silent.connection.close.is_cancelled());
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn busy_connections_have_no_phase_deadline_and_idle_ones_the_idle_timeout() {
        let registry = Registry::new();
        let busy = registry.register();
        busy.connection.enter(Phase::Busy);
        let idle = registry.register();
        idle.connection.enter(Phase::Idle);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(registry.close_overdue(TIMEOUTS), 0, "idle for less than the idle timeout, busy unbounded");
        // Bytes arriving on the idle connection start the header clock.
        idle.connection.bytes_arrived();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(registry.close_overdue(TIMEOUTS), 1);
        assert!(idle.connection.close.is_cancelled() && !busy.connection.close.is_cancelled());
    }

    #[test]
    fn bytes_inside_a_request_do_not_restart_a_head() {
        let registry = Registry::new();
        let busy = registry.register();
        busy.connection.enter(Phase::Busy);
        busy.connection.bytes_arrived();
        assert_eq!(busy.connection.phase(), Phase::Busy);
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_outside_a_request_is_shed() {
        let registry = Registry::new();
        let oldest_busy = registry.register();
        oldest_busy.connection.enter(Phase::Busy);
        std::thread::sleep(Duration::from_millis(2));
        let older_idle = registry.register();
        std::thread::sleep(Duration::from_millis(2));
        let newer_idle = registry.register();
        assert!(registry.make_room(4), "below the cap nothing is shed");
        assert!(registry.make_room(3));
        assert!(older_idle.connection.close.is_cancelled());
        assert!(!newer_idle.connection.close.is_cancelled() && !oldest_busy.connection.close.is_cancelled());
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn when_every_connection_is_inside_a_request_the_new_one_is_refused() {
        let registry = Registry::new();
        let a = registry.register();
        a.connection.enter(Phase::Busy);
        assert!(!registry.make_room(1));
        assert!(!a.connection.close.is_cancelled());
        drop(a);
        assert_eq!(registry.len(), 0, "a connection's end removes it");
    }
}
