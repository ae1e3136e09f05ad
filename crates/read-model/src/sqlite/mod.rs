//! Read models in SQLite for the embedded mode (`<data-dir>/read_model.sqlite`): the queries are
//! the shared ones ([`crate::sql`]); what is SQLite's own is how the file is opened (durable per
//! batch when live, durable only at the end when rebuilt), the checkpointer beside the batches,
//! and a compare-and-set on the position instead of a row lock.

mod checkpointer;
#[cfg(test)]
mod tests;

use crate::sql::{fold_and_write, stored_position, SqlStore, PROJECTOR};
use crate::{Projection, ReadModelError};
use async_trait::async_trait;
use checkpointer::Checkpointer;
use fulfillment_log::StoredEvent;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The read models in SQLite: every client trait of [`crate::ReadModels`].
#[derive(Clone)]
pub struct SqliteReadModel {
    pool: SqlitePool,
    /// Set for a rebuild target (see [`SqliteReadModel::create_new`]).
    rebuild: Option<Arc<RebuildFiles>>,
    /// Stops the live model's checkpointer on close, or when the last clone is dropped.
    checkpointer: Option<Checkpointer>,
}

/// Where a rebuild is written and where it goes once complete.
struct RebuildFiles {
    partial: PathBuf,
    target: PathBuf,
}

/// How a store commits its batches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Every batch is durable when it commits (WAL, full sync): the live read models.
    EachBatch,
    /// Nothing is durable until the whole rebuild is (no journal, no sync): a rebuild that
    /// stops half way is thrown away, never resumed, so the per-batch syncs, the WAL's second
    /// copy of every page and the means to roll a batch back buy nothing.
    AtTheEnd,
}

fn connect_options(path: &Path, durability: Durability) -> SqliteConnectOptions {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5))
        .pragma("temp_store", "MEMORY");
    match durability {
        // Measured with `bench fold` (BENCHMARKS.md): a 64 MiB page cache instead of 2 MiB
        // stops SQLite from spilling dirty index pages mid-transaction, statement journals
        // in memory (`temp_store`) instead of temp files, and checkpoints every 10,000 WAL
        // pages instead of 1,000 so a hot page is copied back once rather than every few
        // batches: together 15k → 27k events/s on 2 cores. Durability is unchanged (FULL).
        Durability::EachBatch => options
            .pragma("cache_size", "-65536")
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("wal_autocheckpoint", "10000"),
        // No journal at all: a failed batch cannot be rolled back, but a failed rebuild is
        // discarded whole. Measured with a 1,000,000-event `replay` (BENCHMARKS.md): a rollback
        // journal in memory holds the original of every page a batch touches (5,000 events on
        // random keys: ~100 MiB); the cache is halved for the same reason, at ~1 s of 19.
        Durability::AtTheEnd => options
            .pragma("cache_size", "-32768")
            .journal_mode(SqliteJournalMode::Off)
            .synchronous(SqliteSynchronous::Off),
    }
}

impl SqliteReadModel {
    /// Opens (creating and migrating when needed) the read-model database at `path`.
    pub async fn open(path: &Path) -> Result<Self, ReadModelError> {
        Self::open_with(path, Durability::EachBatch, None).await
    }

    async fn open_with(
        path: &Path,
        durability: Durability,
        rebuild: Option<Arc<RebuildFiles>>,
    ) -> Result<Self, ReadModelError> {
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(connect_options(path, durability)).await?;
        sqlx::migrate!("../../migrations/sqlite/read_model")
            .run(&pool)
            .await
            .map_err(|e| ReadModelError::Store(e.into()))?;
        // Its own connection with a small page cache: a checkpoint needs none.
        let checkpointer = (durability == Durability::EachBatch)
            .then(|| Checkpointer::start(connect_options(path, durability).pragma("cache_size", "-1024")));
        Ok(SqliteReadModel { pool, rebuild, checkpointer })
    }

    /// Opens a new, empty read-model database to rebuild into (a replay target); refuses a
    /// `path` that already exists, so a rebuild can never mix with an older model.
    ///
    /// The rebuild is written to `<path>.partial` without per-batch durability and appears at
    /// `path` only in [`SqliteReadModel::checkpoint_and_close`], after it was synced: a file at
    /// `path` is always complete, and a `.partial` left by an interrupted rebuild is discarded
    /// when the next one starts.
    pub async fn create_new(path: &Path) -> Result<Self, ReadModelError> {
        if path.exists() {
            return Err(ReadModelError::Rebuild(format!("{} already exists; choose a new target", path.display())));
        }
        let partial = PathBuf::from(format!("{}.partial", path.display()));
        if partial.exists() {
            warn!(path = %partial.display(), "discarding the unfinished rebuild left by an interrupted replay");
            std::fs::remove_file(&partial)
                .map_err(|e| ReadModelError::Rebuild(format!("removing {}: {e}", partial.display())))?;
        }
        let files = Arc::new(RebuildFiles { partial: partial.clone(), target: path.to_owned() });
        Self::open_with(&partial, Durability::AtTheEnd, Some(files)).await
    }

    /// Makes the model durable as one file and closes it: the WAL written back for a live
    /// model; for a rebuild, the file synced and renamed into place (so it can be swapped in).
    pub async fn checkpoint_and_close(&self) -> Result<(), ReadModelError> {
        let Some(files) = &self.rebuild else {
            self.stop_checkpointer();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
            self.pool.close().await;
            return Ok(());
        };
        self.pool.close().await;
        let files = files.clone();
        tokio::task::spawn_blocking(move || {
            let io = |what: &str, e: std::io::Error| ReadModelError::Rebuild(format!("{what}: {e}"));
            std::fs::File::open(&files.partial)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&format!("syncing {}", files.partial.display()), e))?;
            std::fs::rename(&files.partial, &files.target)
                .map_err(|e| io(&format!("renaming {} to {}", files.partial.display(), files.target.display()), e))?;
            if let Some(dir) = files.target.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io(&format!("syncing {}", dir.display()), e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ReadModelError::Rebuild(format!("finishing the rebuild: {e}")))?
    }

    /// Closes the pool, waiting for in-flight queries.
    pub async fn close(&self) {
        self.stop_checkpointer();
        self.pool.close().await;
    }

    fn stop_checkpointer(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop();
        }
    }
}

impl SqlStore for SqliteReadModel {
    type Db = Sqlite;

    fn connections(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Folds `events` and writes the result in one transaction on `conn`. Batches are serialized by
/// a compare-and-set on the position: a second projector on the same file commits nothing.
async fn project_on(conn: &mut SqliteConnection, events: &[StoredEvent]) -> Result<u64, ReadModelError> {
    let mut tx = conn.begin().await?;
    let start = stored_position::<Sqlite>(&mut tx).await?;
    let Some(last) = events.last() else {
        return Ok(start);
    };
    if let Some(first) = events.first() {
        if first.position <= start {
            return Err(ReadModelError::Gap { position: start, first: first.position });
        }
    }
    fold_and_write::<Sqlite>(&mut tx, events).await?;
    let moved = sqlx::query(
        "INSERT INTO projector_positions (projector, position) VALUES (?, ?)
         ON CONFLICT (projector) DO UPDATE SET position = excluded.position WHERE projector_positions.position = ?",
    )
    .bind(PROJECTOR)
    .bind(last.position as i64)
    .bind(start as i64)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        let found = stored_position::<Sqlite>(&mut tx).await?;
        return Err(ReadModelError::PositionMoved { expected: start, found });
    }
    tx.commit().await?;
    Ok(last.position)
}

#[async_trait]
impl Projection for SqliteReadModel {
    async fn project_batch(&self, events: &[StoredEvent]) -> Result<u64, ReadModelError> {
        // A connection whose transaction failed on storage (disk full, I/O error) is closed,
        // never handed back to the pool: SQLite may or may not have rolled the transaction back
        // by itself, and a later batch must not commit inside a transaction in doubt.
        let mut conn = self.pool.acquire().await?;
        let outcome = project_on(&mut conn, events).await;
        if let Err(ReadModelError::Store(_)) = &outcome {
            let _ = conn.close().await;
        }
        outcome
    }
}
