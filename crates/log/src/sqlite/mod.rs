//! The embedded event log: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Durable does not mean slow: a single writer thread owns the write connection and commits
//! whatever requests are waiting as one transaction (group commit, [`writer`]), each request
//! inside its own savepoint so that one request's conflict never undoes another's events.
//! Callers are answered only after the commit returned. Reads go through separate connections
//! ([`reads`]), which WAL lets run alongside the writer; a third thread copies the WAL back
//! into the database file beside the commits ([`checkpointer`]); the idempotency sweep deletes
//! old records on a connection of its own ([`maintenance`]).
//!
//! The hot path talks to SQLite through rusqlite on the thread that holds the connection, not
//! through sqlx: sqlx's SQLite driver runs every statement on a worker thread of its own and
//! hands it over through a channel, and with five statements per webhook those hand-overs (not
//! SQLite) were where the time went (`bench ingest`, see BENCHMARKS.md). The writer is a
//! dedicated thread; a point read (one subscription's stream, one idempotency key) runs inline,
//! because it takes microseconds and a thread hop would cost more than the read; a page of the
//! global order goes to the blocking pool. sqlx still opens the file at start to run the
//! migrations, so the schema has one history ([`startup`]).
//!
//! Opening for writing checks the file first: SQLite's `quick_check`, then the hash chains
//! after the last verified checkpoint (`crate::checkpoint`); a damaged or edited log is
//! refused instead of served. A "malformed" error met later, on a commit or a read, is
//! remembered (`crate::integrity::DamageWatch`) and keeps the log unready.
//!
//! This file holds what ties the parts together: the options, the handle ([`SqliteEventLog`]),
//! opening, and the [`EventLog`] implementation, each method a call into one of the parts.

mod checkpointer;
mod maintenance;
mod reads;
mod startup;
#[cfg(test)]
mod tests;
mod writer;

use crate::integrity::DamageWatch;
use crate::state_cache::{Lookup, StateCache};
use crate::{fold_stream, AppendBatch, AppendReceipt, EventLog, IdempotencyRecord, LogError, StoredEvent, StreamState};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::SubscriptionId;
use reads::ReadConnections;
use rusqlite::OpenFlags;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};
use writer::{AppendRequest, WriterThread};

/// Tuning of the embedded log.
#[derive(Debug, Clone)]
pub struct SqliteLogOptions {
    /// Most append requests committed in one transaction.
    pub max_batch: usize,
    /// Requests that may wait for the writer before `append` pushes back.
    pub queue_depth: usize,
    /// Read connections kept open between reads.
    pub read_connections: u32,
    /// Folded subscription states kept in memory, per generation (at most twice this many in
    /// all; 0 turns the cache off). Saves a webhook reading and decoding its stream again. The
    /// default, 20,000 (40,000 states), bounds the cache to tens of MiB: `bench e2e` with
    /// 20,000 subscriptions peaked 11–39 MiB higher with it than without.
    pub state_cache: usize,
}

impl Default for SqliteLogOptions {
    fn default() -> Self {
        SqliteLogOptions { max_batch: 512, queue_depth: 8192, read_connections: 8, state_cache: 20_000 }
    }
}

/// The embedded, SQLite-backed [`EventLog`].
#[derive(Clone)]
pub struct SqliteEventLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a log opened read-only (audit tools).
    writer: Option<mpsc::Sender<AppendRequest>>,
    reads: ReadConnections,
    /// `None` when turned off or read-only.
    states: Option<Arc<StateCache>>,
    head: watch::Receiver<u64>,
    /// Whether the writer's last commit failed (disk full, read-only file system): readiness
    /// turns false until a commit succeeds again, so an operator sees it before the clients do.
    last_commit_failed: Arc<AtomicBool>,
    /// Damage reported by SQLite on any connection: readiness stays false once seen.
    damage: Arc<DamageWatch>,
    /// The database file, for the occasional maintenance connection.
    path: PathBuf,
}

/// How long a statement waits for a lock held by another connection (a checkpoint, the audit
/// tools) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A rusqlite connection to the log at `path` opened with `flags` (each connection is used by
/// one thread at a time, so without SQLite's own mutex), waiting [`BUSY_TIMEOUT`] for locks.
fn connect(path: &Path, flags: OpenFlags) -> Result<rusqlite::Connection, LogError> {
    let conn = rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

impl SqliteEventLog {
    /// Opens (creating and migrating when needed) the log at `path` and starts its writer.
    ///
    /// An existing file is checked first and refused when SQLite's `quick_check` reports damage
    /// ([`LogError::Damaged`]) or a hash chain breaks after the last verified checkpoint
    /// ([`LogError::Tampered`]); without a checkpoint every chain is checked.
    pub async fn open(path: &Path, options: SqliteLogOptions) -> Result<Self, LogError> {
        let head_position = startup::prepare(path).await?;
        let writer = writer::open_writer(path)?;
        let (head_tx, head_rx) = watch::channel(head_position);
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let last_commit_failed = Arc::new(AtomicBool::new(false));
        let damage = Arc::new(DamageWatch::default());
        let states = (options.state_cache > 0).then(|| Arc::new(StateCache::new(options.state_cache)));
        let thread = WriterThread {
            conn: Some(writer),
            states: states.clone(),
            path: path.to_owned(),
            head: head_tx,
            max_batch: options.max_batch,
            last_commit_failed: last_commit_failed.clone(),
            damage: damage.clone(),
        };
        std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| LogError::Unavailable(format!("starting the event log writer: {e}")))?;
        let (checkpoint_path, checkpoint_head, checkpoint_damage) = (path.to_owned(), head_rx.clone(), damage.clone());
        std::thread::Builder::new()
            .name("event-log-checkpoint".into())
            .spawn(move || checkpointer::run(checkpoint_path, checkpoint_head, checkpoint_damage))
            .map_err(|e| LogError::Unavailable(format!("starting the event log checkpointer: {e}")))?;
        let reads = ReadConnections::new(path, options.read_connections as usize, damage.clone());
        Ok(SqliteEventLog {
            inner: Arc::new(Inner {
                writer: Some(tx),
                reads,
                states,
                head: head_rx,
                last_commit_failed,
                damage,
                path: path.to_owned(),
            }),
        })
    }

    /// Opens an existing log for reading only (replay, verify, history, export): no writer, no
    /// migrations, and safe beside a running service. Appends fail with `Unavailable`.
    pub async fn open_read_only(path: &Path) -> Result<Self, LogError> {
        if !path.exists() {
            return Err(LogError::Unavailable(format!("no event log at {}", path.display())));
        }
        let damage = Arc::new(DamageWatch::default());
        let reads = ReadConnections::new(path, 2, damage.clone());
        let head = reads.with(reads::head)?;
        let (_, head_rx) = watch::channel(head);
        let last_commit_failed = Arc::new(AtomicBool::new(false));
        Ok(SqliteEventLog {
            inner: Arc::new(Inner {
                writer: None,
                reads,
                states: None,
                head: head_rx,
                last_commit_failed,
                damage,
                path: path.to_owned(),
            }),
        })
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, batch: AppendBatch) -> Result<AppendReceipt, LogError> {
        let (reply, answer) = oneshot::channel();
        let writer =
            self.inner.writer.as_ref().ok_or_else(|| LogError::Unavailable("the log is open read-only".into()))?;
        writer
            .send(AppendRequest { batch, reply })
            .await
            .map_err(|_| LogError::Unavailable("the log writer has stopped".into()))?;
        answer.await.map_err(|_| LogError::Unavailable("the log writer stopped before answering".into()))?
    }

    async fn read_stream(&self, subscription_id: SubscriptionId) -> Result<Vec<StoredEvent>, LogError> {
        self.inner.reads.with(|conn| reads::stream(conn, subscription_id))
    }

    async fn stream_state(&self, subscription_id: SubscriptionId) -> Result<StreamState, LogError> {
        let Some(states) = &self.inner.states else {
            return Ok(fold_stream(self.read_stream(subscription_id).await?));
        };
        let writes_at_lookup = match states.lookup(subscription_id) {
            Lookup::Hit(state) => return Ok(*state),
            Lookup::Miss { writes } => writes,
        };
        let state = fold_stream(self.read_stream(subscription_id).await?);
        states.store_read(subscription_id, state.clone(), writes_at_lookup);
        Ok(state)
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.reads.with(|conn| reads::page(conn, after, limit)))
            .await
            .map_err(|e| LogError::Unavailable(format!("reading the event log: {e}")))?
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, LogError> {
        self.inner.reads.with(|conn| reads::idempotency_record(conn, scope, key))
    }

    async fn forget_idempotency_before(&self, cutoff: DateTime<Utc>) -> Result<u64, LogError> {
        if self.inner.writer.is_none() {
            return Err(LogError::Unavailable("the event log is open read-only".into()));
        }
        maintenance::forget_idempotency_before(self.inner.path.clone(), cutoff).await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.inner.head.clone()
    }

    async fn is_ready(&self) -> bool {
        if self.inner.writer.as_ref().is_none_or(|w| w.is_closed()) {
            return false;
        }
        if let Some(damage) = self.inner.damage.seen() {
            // Logged at ERROR when first seen; this only says why once more, quietly.
            debug!(error = %damage, "event log not ready: its storage is damaged");
            return false;
        }
        if self.inner.last_commit_failed.load(Ordering::Relaxed) {
            warn!("event log not ready: its last commit failed");
            return false;
        }
        match self.inner.reads.with(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?)) {
            Ok(_) => true,
            Err(e) => {
                warn!(error = %e, "event log read check failed");
                false
            }
        }
    }
}
