//! The checkpointer of the embedded log: a thread that copies committed WAL pages back into the
//! database file beside the commits, so the copying and syncing never happen inside a commit
//! (where they held up every caller of the round).
//!
//! In: the log's head (a commit moved it: there is something to copy). Out: nothing but a
//! smaller WAL; a failure is logged and retried, since the commits are durable in the WAL.

use super::writer::open_writer;
use crate::integrity::DamageWatch;
use crate::LogError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the checkpointer looks for new commits to copy back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies committed WAL pages into the database file (a PASSIVE checkpoint: it never blocks
/// the writer or readers) whenever the head moved, until the log is dropped (the writer thread
/// ends and with it the head's sender). A failed checkpoint is only logged, once until one
/// succeeds again: the commits are durable in the WAL already, and the next round retries.
pub(super) fn run(path: PathBuf, mut head: watch::Receiver<u64>, damage: Arc<DamageWatch>) {
    let mut conn: Option<rusqlite::Connection> = None;
    let mut failing = false;
    let mut checkpointed = *head.borrow_and_update();
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if head.has_changed().is_err() {
            return; // the writer is gone
        }
        let current = *head.borrow_and_update();
        if current == checkpointed {
            continue;
        }
        let outcome = (|| -> Result<(), LogError> {
            let conn = match conn {
                Some(ref open) => open,
                None => conn.insert(open_writer(&path)?),
            };
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            Ok(())
        })();
        damage.note(&outcome);
        match outcome {
            Ok(()) => {
                if failing {
                    info!("event log checkpoints work again");
                    failing = false;
                }
                checkpointed = current;
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "checkpointing the event log failed; retrying");
                    failing = true;
                }
                conn = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{open, single};
    use crate::test_fixtures::licenses_assigned as envelope;
    use crate::EventLog;
    use fulfillment_core::SubscriptionId;
    use std::time::Duration;
    use uuid::Uuid;

    /// Commits reach the database file without any commit checkpointing (the writer's own
    /// threshold, 10,000 pages, is far off here): the checkpointer thread copies them.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let file = dir.path().join("events.sqlite");
        let before = std::fs::metadata(&file).unwrap().len();
        for _ in 0..50 {
            let a = SubscriptionId(Uuid::new_v4());
            log.append(single(a, 0, (1..=20).map(|n| envelope(a, n)).collect())).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() <= before {
            assert!(tokio::time::Instant::now() < deadline, "the database file never grew: nothing was checkpointed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
