//! Upkeep of a running embedded log: the idempotency sweep, which deletes the records whose
//! retention is over ([`crate::EventLog::forget_idempotency_before`]; the ingress runs it on a
//! timer). Events are never touched.
//!
//! In: a cutoff instant. Out: how many records were deleted. It runs on a write connection of
//! its own, a chunk per transaction, so the writer waits for one chunk at most (its busy timeout
//! covers that), never for the whole sweep.

use super::writer::open_writer;
use crate::LogError;
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::path::PathBuf;

/// How `created_at` of an idempotency record is written (`strftime('%Y-%m-%dT%H:%M:%fZ')`), so
/// that instants compare as text.
const STORED_INSTANT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Idempotency records deleted per transaction.
const FORGET_CHUNK: usize = 1_000;

/// Deletes the idempotency records of the log at `path` created before `cutoff`; returns how
/// many. Runs on the blocking pool.
pub(super) async fn forget_idempotency_before(path: PathBuf, cutoff: DateTime<Utc>) -> Result<u64, LogError> {
    let cutoff = cutoff.format(STORED_INSTANT).to_string();
    tokio::task::spawn_blocking(move || {
        let conn = open_writer(&path)?;
        let mut forgotten = 0;
        loop {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM idempotency_keys WHERE rowid IN
                     (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)",
                )?
                .execute(params![cutoff, FORGET_CHUNK])?;
            forgotten += deleted as u64;
            if deleted < FORGET_CHUNK {
                return Ok(forgotten);
            }
        }
    })
    .await
    .map_err(|e| LogError::Unavailable(format!("forgetting idempotency records: {e}")))?
}
