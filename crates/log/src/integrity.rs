//! SQLite's own checks of a database file, and remembering damage once it was seen.
//!
//! The hash chain proves what is *in* the events; it says nothing about the file around them.
//! A flipped byte in an index page leaves every event readable by position, yet lookups by
//! subscription go wrong and SQLite's `integrity_check` calls the file malformed. So:
//!
//! - [`check_integrity`] runs `PRAGMA quick_check` (at every start of the embedded log: it
//!   reads every page and checks the b-tree structure) or `PRAGMA integrity_check`
//!   (`fulfillment verify`: also checks that every index matches its table and that `UNIQUE`
//!   holds, which takes longer) on any SQLite file: the log or the read models.
//! - [`DamageWatch`] remembers the first "malformed" error a running log meets on a commit or
//!   a read, logs it once at ERROR, and keeps the log unready from then on: damage does not
//!   pass by itself the way a full disk does.

use crate::LogError;
use rusqlite::OpenFlags;
use std::path::Path;
use std::sync::OnceLock;
use tracing::error;

/// How thoroughly [`check_integrity`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: page and b-tree structure, in one pass over the file.
    Quick,
    /// `PRAGMA integrity_check`: also index content against table content, and `UNIQUE`.
    Full,
}

impl IntegrityCheck {
    fn pragma(self) -> &'static str {
        match self {
            IntegrityCheck::Quick => "quick_check",
            IntegrityCheck::Full => "integrity_check",
        }
    }
}

/// Most problems quoted from SQLite's report.
const MAX_QUOTED: usize = 5;

/// Runs SQLite's own check on the existing file at `path`, read-only: `Ok(())` when SQLite
/// says `ok`, [`LogError::Damaged`] naming the file and quoting SQLite's report otherwise, and
/// [`LogError::Unavailable`] when the file cannot be opened at all.
pub fn check_integrity(path: &Path, check: IntegrityCheck) -> Result<(), LogError> {
    let pragma = check.pragma();
    let damaged =
        |report: String| LogError::Damaged(format!("{}: SQLite's {pragma} reports: {report}", path.display()));
    if !path.is_file() {
        return Err(LogError::Unavailable(format!("{} does not exist", path.display())));
    }
    let problems = (|| -> Result<Vec<String>, rusqlite::Error> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut statement = conn.prepare(&format!("PRAGMA {pragma}({})", MAX_QUOTED + 1))?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect()
    })();
    match problems {
        Ok(lines) if lines == ["ok"] => Ok(()),
        Ok(lines) => {
            let mut report = lines.iter().take(MAX_QUOTED).cloned().collect::<Vec<_>>().join("; ");
            if lines.len() > MAX_QUOTED {
                report.push_str("; ...");
            }
            Err(damaged(report))
        }
        Err(e) => match LogError::from(e) {
            LogError::Damaged(message) => Err(damaged(message)),
            LogError::Unavailable(message) => {
                Err(LogError::Unavailable(format!("{}: running {pragma}: {message}", path.display())))
            }
            other => Err(other),
        },
    }
}

/// The first damage a running log met, if any.
#[derive(Debug, Default)]
pub(crate) struct DamageWatch {
    first: OnceLock<String>,
}

impl DamageWatch {
    /// Remembers `result`'s error when it is damage, logging it the first time only.
    pub(crate) fn note<T>(&self, result: &Result<T, LogError>) {
        if let Err(e) = result {
            self.note_error(e);
        }
    }

    /// Remembers `e` when it is damage, logging it the first time only.
    pub(crate) fn note_error(&self, e: &LogError) {
        if let LogError::Damaged(message) = e {
            if self.first.set(message.clone()).is_ok() {
                error!(
                    error = %message,
                    "the event log's storage is damaged: not ready from now on; stop the service and run \
                     `fulfillment verify` for a full check"
                );
            }
        }
    }

    /// The first damage seen.
    pub(crate) fn seen(&self) -> Option<&str> {
        self.first.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intact_file_passes_and_a_file_that_is_not_a_database_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT UNIQUE); INSERT INTO t VALUES ('x'), ('y');").unwrap();
        drop(conn);
        check_integrity(&path, IntegrityCheck::Quick).unwrap();
        check_integrity(&path, IntegrityCheck::Full).unwrap();

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..16].copy_from_slice(b"not a database!!");
        std::fs::write(&path, bytes).unwrap();
        let err = check_integrity(&path, IntegrityCheck::Quick).unwrap_err();
        assert!(matches!(err, LogError::Damaged(_)), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");

        let err = check_integrity(&dir.path().join("missing.sqlite"), IntegrityCheck::Full).unwrap_err();
        assert!(matches!(err, LogError::Unavailable(_)), "{err}");
    }

    #[test]
    fn damage_is_remembered_once_and_other_failures_are_not() {
        let watch = DamageWatch::default();
        watch.note::<()>(&Err(LogError::Unavailable("disk full".into())));
        assert_eq!(watch.seen(), None);
        watch.note::<()>(&Err(LogError::Damaged("malformed".into())));
        watch.note::<()>(&Err(LogError::Damaged("again".into())));
        assert_eq!(watch.seen(), Some("malformed"));
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use crate::test_fixtures::{checkpoint_truncate, flip_byte, licenses_assigned, new_id, stream_order_index_root};
    use crate::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};

    fn single(id: fulfillment_core::SubscriptionId) -> AppendBatch {
        AppendBatch {
            streams: vec![StreamAppend {
                subscription_id: id,
                expected_version: 0,
                events: vec![licenses_assigned(id, 1)],
            }],
            idempotency: None,
        }
    }

    /// A cell's first byte is its payload size: inverted, the cell overlaps its neighbours,
    /// which even the quick check sees.
    #[tokio::test]
    async fn a_damaged_index_page_stops_the_log_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        {
            let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
            for _ in 0..5 {
                log.append(single(new_id())).await.unwrap();
            }
        }
        checkpoint_truncate(&path);
        let (page_size, root) = stream_order_index_root(&path);
        let page = (root - 1) * page_size;
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[page as usize], 0x0a, "the root page is an index leaf");
        // The leaf header is 8 bytes; the cell pointer array follows.
        let first_cell = u16::from_be_bytes([bytes[page as usize + 8], bytes[page as usize + 9]]) as u64;
        flip_byte(&path, page + first_cell);
        let Err(LogError::Damaged(report)) = SqliteEventLog::open(&path, SqliteLogOptions::default()).await else {
            panic!("a damaged log opened");
        };
        assert!(report.contains("quick_check") && report.contains(&path.display().to_string()), "{report}");
    }

    #[tokio::test]
    async fn damage_met_while_running_makes_the_log_unready() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
        log.append(single(new_id())).await.unwrap();
        assert!(log.is_ready().await);
        // The file alone holds the log, and every connection will read it again; then its
        // index page loses its type.
        checkpoint_truncate(&path);
        let (page_size, root) = stream_order_index_root(&path);
        flip_byte(&path, (root - 1) * page_size);
        let err = log.append(single(new_id())).await.unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
        assert!(!log.is_ready().await, "a damaged log reports ready");
        // It does not pass by itself.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!log.is_ready().await);
    }
}
