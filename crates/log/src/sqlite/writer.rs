//! The writer of the embedded log: one thread owns the write connection and commits whatever
//! append requests are waiting as one transaction (group commit), each request inside its own
//! savepoint, so one request's conflict never undoes another's events.
//!
//! In: [`AppendRequest`]s from [`super::SqliteEventLog::append`]. Out: each request's receipt
//! or error, sent only after the commit (or its failure), after the new head and the cached
//! states were published, so a caller that reads right after its answer sees its own events.

use super::connect;
use crate::chain::{event_hash, GENESIS_HASH};
use crate::integrity::DamageWatch;
use crate::state_cache::StateCache;
use crate::{AppendBatch, AppendReceipt, LogError};
use rusqlite::{params, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error};

/// One caller's batch and where its answer goes.
pub(super) struct AppendRequest {
    pub(super) batch: AppendBatch,
    pub(super) reply: oneshot::Sender<Result<AppendReceipt, LogError>>,
}

/// The writer's connection: WAL (set persistently by the migration run), full sync, so a commit
/// that returned survives a power cut. It checkpoints only as a backstop (10,000 WAL pages):
/// the checkpointer thread does it, so the copying and syncing of the database file happen
/// beside the commits instead of inside one of them, where they held up every caller of the
/// round.
pub(super) fn open_writer(path: &Path) -> Result<rusqlite::Connection, LogError> {
    let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 10000;")?;
    Ok(conn)
}

/// The writer thread: drains waiting requests into one transaction per round.
///
/// After a failed round (disk full, I/O error) the write connection is closed and a new one
/// opened for the next round: SQLite may or may not have rolled the transaction back by itself,
/// and a connection whose transaction state is in doubt must never commit again. Reusing it was
/// seen to acknowledge later appends that were never made durable; a fresh connection runs
/// SQLite's recovery and starts from what is really on disk.
pub(super) struct WriterThread {
    pub(super) conn: Option<rusqlite::Connection>,
    pub(super) states: Option<Arc<StateCache>>,
    pub(super) path: PathBuf,
    pub(super) head: watch::Sender<u64>,
    pub(super) max_batch: usize,
    pub(super) last_commit_failed: Arc<AtomicBool>,
    pub(super) damage: Arc<DamageWatch>,
}

impl WriterThread {
    pub(super) fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        let mut round = Vec::with_capacity(self.max_batch);
        while let Some(first) = requests.blocking_recv() {
            round.push(first);
            while round.len() < self.max_batch {
                match requests.try_recv() {
                    Ok(request) => round.push(request),
                    Err(_) => break,
                }
            }
            self.commit(&mut round);
        }
    }

    fn commit(&mut self, round: &mut Vec<AppendRequest>) {
        let count = round.len();
        let conn = match self.conn {
            Some(ref mut open) => open,
            None => match open_writer(&self.path) {
                Ok(fresh) => self.conn.insert(fresh),
                Err(e) => {
                    self.damage.note_error(&e);
                    error!(error = %e, requests = count, "cannot reopen the event log for writing; nothing of this round was stored");
                    self.last_commit_failed.store(true, Ordering::Relaxed);
                    for request in round.drain(..) {
                        let _ = request.reply.send(Err(LogError::Unavailable(e.to_string())));
                    }
                    return;
                }
            },
        };
        let outcome = commit_round(conn, round, &self.head, self.states.as_deref(), &self.damage);
        self.last_commit_failed.store(outcome.is_err(), Ordering::Relaxed);
        match outcome {
            Ok(Some(last)) => debug!(requests = count, head = last, "group commit"),
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, requests = count, "group commit failed; nothing of this round was stored");
                // Closing rolls back whatever SQLite left open.
                self.conn = None;
            }
        }
    }
}

/// Commits one round. Each request's result is sent only after the commit (or its failure),
/// and only after the new head and the cached states are published (or the damage noted), so a
/// caller that reads (or asks for readiness) right after its answer sees its own events (or an
/// unready log).
fn commit_round(
    conn: &rusqlite::Connection,
    round: &mut Vec<AppendRequest>,
    head: &watch::Sender<u64>,
    states: Option<&StateCache>,
    damage: &DamageWatch,
) -> Result<Option<u64>, LogError> {
    let mut outcomes: Vec<(oneshot::Sender<_>, Result<AppendReceipt, LogError>)> = Vec::with_capacity(round.len());
    let mut committed: Vec<AppendBatch> = Vec::with_capacity(round.len());
    let result = (|| {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        for request in round.drain(..) {
            conn.prepare_cached("SAVEPOINT request")?.execute([])?;
            match write_batch(conn, &request.batch) {
                Ok(receipt) => {
                    conn.prepare_cached("RELEASE request")?.execute([])?;
                    outcomes.push((request.reply, Ok(receipt)));
                    committed.push(request.batch);
                }
                Err(e @ (LogError::Unavailable(_) | LogError::Damaged(_) | LogError::Unreadable { .. })) => {
                    // A storage failure fails the whole round; the caller of this request is
                    // told with everyone else below.
                    outcomes.push((request.reply, Err(LogError::Unavailable(e.to_string()))));
                    return Err(e);
                }
                Err(rejection) => {
                    if let (LogError::Conflict { subscription_id, .. }, Some(states)) = (&rejection, states) {
                        // The caller decided on another version than the file's: if that came
                        // from the cache, its next decision must read the stream.
                        states.forget(*subscription_id);
                    }
                    conn.prepare_cached("ROLLBACK TO request")?.execute([])?;
                    conn.prepare_cached("RELEASE request")?.execute([])?;
                    outcomes.push((request.reply, Err(rejection)));
                }
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok::<(), LogError>(())
    })();
    match result {
        Ok(()) => {
            let last = outcomes
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().and_then(|receipt| receipt.positions.last().copied()))
                .max();
            if let Some(states) = states {
                states.committed(committed.iter().flat_map(|batch| &batch.streams));
            }
            if let Some(last) = last {
                head.send_replace(last);
            }
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome);
            }
            Ok(last)
        }
        Err(e) => {
            damage.note_error(&e);
            if let Some(states) = states {
                states.clear();
            }
            let message = e.to_string();
            for (reply, outcome) in outcomes {
                // Rejections stay rejections (they were not going to be stored anyway); every
                // request that would have been stored learns that it was not.
                let outcome = match outcome {
                    Ok(_) | Err(LogError::Unavailable(_)) => Err(LogError::Unavailable(message.clone())),
                    rejection => rejection,
                };
                let _ = reply.send(outcome);
            }
            for request in round.drain(..) {
                let _ = request.reply.send(Err(LogError::Unavailable(message.clone())));
            }
            Err(e)
        }
    }
}

/// Writes one request's idempotency record and events inside the round's transaction, checking
/// each stream's expected version and chaining each event to its stream's previous hash.
fn write_batch(conn: &rusqlite::Connection, batch: &AppendBatch) -> Result<AppendReceipt, LogError> {
    if let Some(record) = &batch.idempotency {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, response, created_at)
                 VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 ON CONFLICT (scope, key) DO NOTHING",
            )?
            .execute(params![record.scope, record.key, record.fingerprint, record.response.to_string()])?;
        if inserted == 0 {
            return Err(LogError::DuplicateIdempotencyKey);
        }
    }
    let mut receipt = AppendReceipt::default();
    for stream in &batch.streams {
        let id = stream.subscription_id.to_string();
        let last: Option<(i64, Option<String>)> = conn
            .prepare_cached(
                "SELECT stream_version, hash FROM events WHERE subscription_id = ? ORDER BY stream_version DESC LIMIT 1",
            )?
            .query_row([&id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let (actual, mut previous_hash) = match last {
            Some((version, hash)) => (version, hash.unwrap_or_else(|| GENESIS_HASH.to_owned())),
            None => (0, GENESIS_HASH.to_owned()),
        };
        if actual as u64 != stream.expected_version {
            return Err(LogError::Conflict {
                subscription_id: stream.subscription_id,
                expected: stream.expected_version,
                actual: actual as u64,
            });
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (event_id, subscription_id, stream_version, event_type, schema_version, recorded_at,
                                 envelope, previous_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (event_id) DO NOTHING",
        )?;
        for (offset, envelope) in stream.events.iter().enumerate() {
            let version = stream.expected_version + offset as u64 + 1;
            let encoded = envelope.encode();
            let hash = event_hash(&previous_hash, &encoded);
            let inserted = insert.execute(params![
                envelope.event_id.to_string(),
                id,
                version as i64,
                envelope.event_type(),
                envelope.schema_version as i64,
                envelope.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                encoded,
                previous_hash,
                hash,
            ])?;
            if inserted == 0 {
                return Err(LogError::DuplicateEventId(envelope.event_id));
            }
            previous_hash = hash;
            receipt.positions.push(conn.last_insert_rowid() as u64);
        }
    }
    Ok(receipt)
}
