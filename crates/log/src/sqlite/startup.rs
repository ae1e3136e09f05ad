//! What opening the embedded log for writing does before its writer starts: SQLite's
//! `quick_check` of an existing file, the migrations (through sqlx, so the schema has one
//! history), the one-time hash-chain backfill of a log written before the chain existed, and the
//! check of the chains after the last verified checkpoint (`crate::checkpoint`).
//!
//! In: the file's path. Out: the head position to start from, or the reason the file must not
//! be served ([`LogError::Damaged`], [`LogError::Tampered`]).

use super::reads::open_reader;
use super::BUSY_TIMEOUT;
use crate::chain::{event_hash, ChainBreak, GENESIS_HASH};
use crate::checkpoint::check_tail;
use crate::integrity::{check_integrity, IntegrityCheck};
use crate::LogError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::time::Instant;
use tracing::{info, warn};

/// sqlx's connection to the file, for the migrations (and for tests that try to edit it).
pub(super) fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Checks, creates or migrates the log at `path`; returns its head position.
pub(super) async fn prepare(path: &Path) -> Result<u64, LogError> {
    if path.exists() {
        let started = Instant::now();
        check_file(path, |path| check_integrity(path, IntegrityCheck::Quick)).await?;
        info!(log = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "event log passed SQLite's quick_check");
    }
    let head_position = {
        let mut migrator = SqliteConnection::connect_with(&connect_options(path)).await?;
        sqlx::migrate!("../../migrations/sqlite/log")
            .run(&mut migrator)
            .await
            .map_err(|e| LogError::Unavailable(format!("migrating the event log: {e}")))?;
        backfill_hash_chain(&mut migrator).await?;
        let head: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&mut migrator).await?;
        migrator.close().await?;
        head as u64
    };
    let started = Instant::now();
    let tail = check_file(path, |path| check_tail(&open_reader(path)?)).await?;
    info!(
        log = %path.display(),
        verified_through = tail.after,
        events = tail.events,
        head = head_position,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "hash chains after the last verified checkpoint are intact"
    );
    if tail.after > head_position {
        warn!(
            verified_through = tail.after,
            head = head_position,
            "the event log ends before the position a verify vouched for: events were removed, or the file \
                 was restored from an older copy; run `fulfillment verify`"
        );
    }
    Ok(head_position)
}

/// Runs a check of the file at `path` on the blocking pool (it reads the whole file or the
/// tail of the log, which takes long enough to keep it off the runtime's workers).
async fn check_file<T: Send + 'static>(
    path: &Path,
    check: impl FnOnce(&Path) -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || check(&path))
        .await
        .map_err(|e| LogError::Unavailable(format!("checking the event log: {e}")))?
}

/// Computes the hash chain of a log written before the chain existed (migration 0003), once,
/// at the first open after it. Such a log has no hash at all, and from then on every event has
/// one. A log with some hashes missing had them removed, perhaps to have them recomputed over
/// edited events: it is left alone, and the chain check at open refuses it. Asking whether any
/// event has a hash stops at the first one, so this costs nothing on a chained log.
async fn backfill_hash_chain(conn: &mut SqliteConnection) -> Result<(), LogError> {
    let (any_event, any_hash): (bool, bool) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM events), EXISTS (SELECT 1 FROM events WHERE hash IS NOT NULL)")
            .fetch_one(&mut *conn)
            .await?;
    if !any_event || any_hash {
        return Ok(());
    }
    // A log `verify` once vouched for was chained then: every hash gone is an edit, not age.
    let vouched: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM verified_checkpoint)").fetch_one(&mut *conn).await?;
    if vouched {
        let (position, subscription, stream_version): (i64, String, i64) =
            sqlx::query_as("SELECT position, subscription_id, stream_version FROM events ORDER BY position LIMIT 1")
                .fetch_one(&mut *conn)
                .await?;
        return Err(LogError::Tampered(ChainBreak {
            subscription_id: subscription.parse().map_err(|e| LogError::Damaged(format!("subscription id: {e}")))?,
            position: position as u64,
            stream_version: stream_version as u64,
            reason: "every hash is gone from a log `fulfillment verify` once vouched for: the chain was removed".into(),
        }));
    }
    warn!("computing the hash chain of events written before it existed");
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT position, subscription_id, envelope FROM events ORDER BY subscription_id, stream_version",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tx = conn.begin().await?;
    let mut current: Option<String> = None;
    let mut previous = GENESIS_HASH.to_owned();
    for (position, subscription, envelope) in rows {
        if current.as_deref() != Some(subscription.as_str()) {
            current = Some(subscription);
            previous = GENESIS_HASH.to_owned();
        }
        let hash = event_hash(&previous, &envelope);
        sqlx::query("UPDATE events SET previous_hash = ?, hash = ? WHERE position = ? AND hash IS NULL")
            .bind(&previous)
            .bind(&hash)
            .bind(position)
            .execute(&mut *tx)
            .await?;
        previous = hash;
    }
    tx.commit().await?;
    Ok(())
}
