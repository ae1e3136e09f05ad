//! The read side of the embedded log: read-only connections kept for reuse, and the queries
//! run on them (one subscription's stream, a page of the global order, one idempotency record,
//! the head).
//!
//! In: the database file and the [`DamageWatch`] every connection reports to. Out: decoded
//! [`StoredEvent`]s and records. WAL lets these run beside the writer; none of them writes.

use super::connect;
use crate::integrity::DamageWatch;
use crate::{IdempotencyRecord, LogError, StoredEvent};
use fulfillment_core::{EventEnvelope, SubscriptionId};
use rusqlite::{OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Read connections, opened on demand and kept for reuse. There are never more in use than
/// threads reading (the runtime's workers and the blocking pool), so the set needs no limit of
/// its own; `keep` bounds how many stay open while idle.
pub(super) struct ReadConnections {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    keep: usize,
    damage: Arc<DamageWatch>,
}

impl ReadConnections {
    pub(super) fn new(path: &Path, keep: usize, damage: Arc<DamageWatch>) -> Self {
        ReadConnections { path: path.to_owned(), idle: Mutex::new(Vec::new()), keep, damage }
    }

    /// Runs `read` on an idle connection (or a new one). A connection whose read failed is
    /// closed rather than kept: the failure may have been the file, not the statement.
    pub(super) fn with<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let opened = open_reader(&self.path);
                self.damage.note(&opened);
                opened?
            }
        };
        let result = read(&conn);
        self.damage.note(&result);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
        result
    }
}

/// A read-only connection to the log.
pub(super) fn open_reader(path: &Path) -> Result<rusqlite::Connection, LogError> {
    connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// A read of whole events: the columns [`read_events`] expects, in its order, then `$rest`.
/// A literal (not `format!` per call), so the hot path's reads build no SQL string.
macro_rules! select_events {
    ($rest:literal) => {
        concat!("SELECT position, stream_version, envelope, previous_hash, hash FROM events ", $rest)
    };
}

/// Every event of one subscription, in stream order.
pub(super) fn stream(
    conn: &rusqlite::Connection,
    subscription_id: SubscriptionId,
) -> Result<Vec<StoredEvent>, LogError> {
    let id = subscription_id.to_string();
    read_events(conn, select_events!("WHERE subscription_id = ? ORDER BY stream_version"), [&id])
}

/// Up to `limit` events after global position `after`, in global order.
pub(super) fn page(conn: &rusqlite::Connection, after: u64, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
    read_events(conn, select_events!("WHERE position > ? ORDER BY position LIMIT ?"), [after as i64, limit as i64])
}

/// The highest position in the file (0 when empty).
pub(super) fn head(conn: &rusqlite::Connection) -> Result<u64, LogError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| row.get::<_, i64>(0))? as u64)
}

/// The stored answer for an idempotency key, if any.
pub(super) fn idempotency_record(
    conn: &rusqlite::Connection,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, LogError> {
    let stored: Option<(String, String)> = conn
        .prepare_cached("SELECT fingerprint, response FROM idempotency_keys WHERE scope = ? AND key = ?")?
        .query_row([scope, key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((fingerprint, response)) = stored else { return Ok(None) };
    Ok(Some(IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint,
        response: serde_json::from_str(&response).map_err(|e| LogError::Unavailable(e.to_string()))?,
    }))
}

/// Runs a [`select_events!`] statement and decodes its rows.
fn read_events(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>, LogError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let position: i64 = row.get(0)?;
        let stream_version: i64 = row.get(1)?;
        let raw: String = row.get(2)?;
        let envelope =
            EventEnvelope::decode(&raw).map_err(|source| LogError::Unreadable { position: position as u64, source })?;
        events.push(StoredEvent {
            position: position as u64,
            stream_version: stream_version as u64,
            envelope,
            raw,
            previous_hash: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            hash: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
        });
    }
    Ok(events)
}
