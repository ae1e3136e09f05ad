//! The verified checkpoint of the embedded log, and the check of the chains after it that the
//! log runs every time it opens for writing.
//!
//! A full `fulfillment verify` that finds everything intact stores the last position it
//! checked ([`record_verified_position`], table `verified_checkpoint`). Opening the log then
//! checks only the tail after that position ([`check_tail`]) with the same rules as `verify`
//! ([`ChainCheck`]): each stream continues from the stored hash of its last event at or before
//! the checkpoint, which is trusted. So a start costs time in proportion to what was appended
//! since the last verify, not to the whole log; the price is that an event edited *before* the
//! checkpoint together with its stored hash is seen by the next `verify`, not by the start
//! (editing only its content still breaks the link to the next event, if that lies in the
//! tail).

use crate::chain::{ChainCheck, ChainLink};
use crate::LogError;
use fulfillment_core::SubscriptionId;
use rusqlite::{OpenFlags, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Records that a full verification found every chain intact through `position`, replacing
/// the previous checkpoint. Opens the existing log at `path` for this one write; safe beside a
/// running service (it waits for the writer's lock like any writer).
pub fn record_verified_position(path: &Path, position: u64) -> Result<(), LogError> {
    let conn = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute(
        "INSERT INTO verified_checkpoint (id, position, verified_at)
         VALUES (1, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         ON CONFLICT (id) DO UPDATE SET position = excluded.position, verified_at = excluded.verified_at",
        [position as i64],
    )?;
    Ok(())
}

/// The position of the last verified checkpoint, 0 when there is none.
pub fn verified_position(conn: &rusqlite::Connection) -> Result<u64, LogError> {
    let position: Option<i64> =
        conn.query_row("SELECT position FROM verified_checkpoint WHERE id = 1", [], |row| row.get(0)).optional()?;
    Ok(position.unwrap_or(0).max(0) as u64)
}

/// What [`check_tail`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailCheck {
    /// The verified checkpoint the check started after (0: the whole log).
    pub after: u64,
    /// Events checked.
    pub events: u64,
}

/// Checks the hash chains of every event after the verified checkpoint: `Ok` with what was
/// checked, or [`LogError::Tampered`] naming the first broken link.
pub(crate) fn check_tail(conn: &rusqlite::Connection) -> Result<TailCheck, LogError> {
    let after = verified_position(conn)?;
    let mut check = ChainCheck::new();
    let mut last_verified = conn.prepare(
        "SELECT stream_version, hash FROM events
         WHERE subscription_id = ? AND position <= ? ORDER BY stream_version DESC LIMIT 1",
    )?;
    let mut tail = conn.prepare(
        "SELECT position, subscription_id, stream_version, envelope, previous_hash, hash
         FROM events WHERE position > ? ORDER BY position",
    )?;
    let mut rows = tail.query([after as i64])?;
    while let Some(row) = rows.next()? {
        let position = row.get::<_, i64>(0)? as u64;
        let column = text(row, 1, position)?.unwrap_or_default();
        let subscription_id: SubscriptionId = column.parse().map_err(|_| {
            LogError::Damaged(format!(
                "the event at position {position} has the subscription id {column:?}, not a UUID"
            ))
        })?;
        let stream_version = row.get::<_, i64>(2)? as u64;
        if after > 0 && stream_version > 1 && !check.knows(subscription_id) {
            let verified: Option<(i64, Option<String>)> = last_verified
                .query_row(rusqlite::params![column, after as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((version, hash)) = verified {
                check.resume(subscription_id, version as u64, hash.unwrap_or_default());
            }
        }
        check.check(ChainLink {
            position,
            subscription_id,
            stream_version,
            raw: text(row, 3, position)?.unwrap_or_default(),
            previous_hash: text(row, 4, position)?.unwrap_or_default(),
            hash: text(row, 5, position)?.unwrap_or_default(),
        });
    }
    let events = check.checked();
    match check.into_breaks().into_iter().next() {
        Some(first) => Err(LogError::Tampered(first)),
        None => Ok(TailCheck { after, events }),
    }
}

/// Column `index` of `row` as text, without copying it; a value that is not text (or NULL) is
/// damage at `position`.
fn text<'r>(row: &'r rusqlite::Row<'_>, index: usize, position: u64) -> Result<Option<&'r str>, LogError> {
    row.get_ref(index)?
        .as_str_or_null()
        .map_err(|e| LogError::Damaged(format!("the event at position {position} has a column that is not text: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{licenses_assigned, new_id};
    use crate::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};

    async fn append(log: &SqliteEventLog, id: SubscriptionId, expected: u64, counts: &[u32]) {
        let events = counts.iter().map(|n| licenses_assigned(id, *n)).collect();
        let batch = AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: expected, events }],
            idempotency: None,
        };
        log.append(batch).await.unwrap();
    }

    /// Edits the stored event at `position` the way someone with the file would: its content
    /// only, its hash left as it was.
    fn edit(path: &Path, position: u64) {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch("DROP TRIGGER IF EXISTS events_no_update").unwrap();
        let changed = conn
            .execute(
                "UPDATE events SET envelope = replace(envelope, '\"assignedCount\":', '\"assignedCount\":9') WHERE position = ?",
                [position as i64],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn tail(path: &Path) -> Result<TailCheck, LogError> {
        check_tail(&rusqlite::Connection::open(path).unwrap())
    }

    #[tokio::test]
    async fn an_edited_event_stops_the_log_from_opening_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let (a, b) = (new_id(), new_id());
        {
            let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
            append(&log, a, 0, &[1, 2, 3]).await;
            append(&log, b, 0, &[1]).await;
        }
        assert_eq!(tail(&path).unwrap(), TailCheck { after: 0, events: 4 });
        edit(&path, 2);
        let Err(LogError::Tampered(link)) = SqliteEventLog::open(&path, SqliteLogOptions::default()).await else {
            panic!("a log with an edited event opened");
        };
        assert_eq!((link.subscription_id, link.position, link.stream_version), (a, 2, 2));
        assert!(link.reason.contains("this event was edited"), "{link}");
    }

    #[tokio::test]
    async fn after_a_verified_checkpoint_only_the_tail_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let (a, b) = (new_id(), new_id());
        {
            let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
            append(&log, a, 0, &[1, 2, 3]).await; // positions 1-3
            append(&log, b, 0, &[1]).await; // 4
            record_verified_position(&path, 4).unwrap();
            append(&log, a, 3, &[4, 5]).await; // 5-6: resumed from the hash of position 3
            append(&log, b, 1, &[2]).await; // 7
        }
        assert_eq!(tail(&path).unwrap(), TailCheck { after: 4, events: 3 });
        record_verified_position(&path, 5).unwrap();
        assert_eq!(tail(&path).unwrap(), TailCheck { after: 5, events: 2 });

        // Before the checkpoint, an edit of content alone goes unseen at open (verify sees it)...
        edit(&path, 2);
        SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
        // ...and in the tail it is named.
        edit(&path, 7);
        let Err(LogError::Tampered(link)) = SqliteEventLog::open(&path, SqliteLogOptions::default()).await else {
            panic!("a log with an edited event after the checkpoint opened");
        };
        assert_eq!((link.subscription_id, link.position, link.stream_version), (b, 7, 2));
    }

    fn hashes(path: &Path) -> Vec<(Option<String>, Option<String>)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut statement = conn.prepare("SELECT previous_hash, hash FROM events ORDER BY position").unwrap();
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn a_log_from_before_the_chain_is_chained_but_removed_hashes_are_not_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let (a, b) = (new_id(), new_id());
        {
            let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
            append(&log, a, 0, &[1, 2]).await;
            append(&log, b, 0, &[1]).await;
        }
        let chained = hashes(&path);
        let strip = |condition: &str| {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS events_no_update;
                 UPDATE events SET previous_hash = NULL, hash = NULL WHERE {condition}"
            ))
            .unwrap();
        };
        // As written before the chain existed: no hash anywhere. Computed once, at open.
        strip("1");
        SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
        assert_eq!(hashes(&path), chained);
        // An event edited and its stream's hashes removed, to have them recomputed: refused.
        edit(&path, 1);
        strip(&format!("subscription_id = '{a}'"));
        let Err(LogError::Tampered(link)) = SqliteEventLog::open(&path, SqliteLogOptions::default()).await else {
            panic!("removed hashes were recomputed over an edited event");
        };
        assert_eq!((link.subscription_id, link.position), (a, 1));
        // Every hash removed from a log `verify` vouched for is an edit, not an old log: refused.
        strip("1");
        record_verified_position(&path, 3).unwrap();
        let Err(LogError::Tampered(link)) = SqliteEventLog::open(&path, SqliteLogOptions::default()).await else {
            panic!("a vouched-for log stripped of every hash was chained anew");
        };
        assert_eq!(link.position, 1);
    }

    #[tokio::test]
    async fn the_last_verified_event_must_still_fit_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let a = new_id();
        {
            let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
            append(&log, a, 0, &[1, 2]).await;
            record_verified_position(&path, 2).unwrap();
            append(&log, a, 2, &[3]).await;
        }
        // Position 2 edited and rehashed, so it fits its own hash: the next event no longer does.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update; UPDATE events SET hash = 'rewritten' WHERE position = 2")
            .unwrap();
        let Err(LogError::Tampered(link)) = tail(&path) else { panic!("the tail check missed a rewritten hash") };
        assert_eq!(link.position, 3);
        assert!(link.reason.contains("an earlier event was edited"), "{link}");
    }
}
