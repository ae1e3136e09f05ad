//! The live model's checkpointer: copies the WAL back into the database file beside the
//! projector's batches, so that no commit pays for a whole checkpoint.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

/// The handle of a live model's checkpointer task.
#[derive(Clone)]
pub(super) struct Checkpointer {
    stop: CancellationToken,
    _stop_on_drop: Arc<DropGuard>,
}

impl Checkpointer {
    /// Starts checkpointing the database `options` open, until stopped or dropped.
    pub fn start(options: SqliteConnectOptions) -> Self {
        let stop = CancellationToken::new();
        tokio::spawn(run_checkpointer(options, stop.clone()));
        Checkpointer { stop: stop.clone(), _stop_on_drop: Arc::new(stop.drop_guard()) }
    }

    /// Stops the checkpointer (every clone of it).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// How often a live model's WAL is copied back into its database file, beside the batches.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Runs PASSIVE checkpoints (they never block the projector's transactions) until `stop`, so
/// the copying and syncing of the database file happen beside the batches instead of inside
/// the commit that crosses `wal_autocheckpoint`: that one is left with only what changed since
/// the last round. Its own connection with a small page cache (a checkpoint needs none; with the
/// live settings' 64 MiB it cost up to 40 MiB). A failure is reported once, not every round:
/// the batches themselves report a failing disk.
async fn run_checkpointer(options: SqliteConnectOptions, stop: CancellationToken) {
    let mut conn: Option<SqliteConnection> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        let outcome = match conn {
            Some(ref mut open) => sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *open).await.map(|_| ()),
            None => SqliteConnection::connect_with(&options).await.map(|open| conn = Some(open)),
        };
        match outcome {
            Ok(()) if failing => {
                info!("read-model checkpoints work again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    warn!(error = %e, "checkpointing the read models failed; retrying");
                    failing = true;
                }
                conn = None;
            }
        }
    }
    if let Some(open) = conn {
        let _ = open.close().await;
    }
}
