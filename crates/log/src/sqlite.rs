//! The embedded event log: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Durable does not mean slow: a single writer thread owns the write connection and commits
//! whatever requests are waiting as one transaction (group commit), each request inside its own
//! savepoint so that one request's conflict never undoes another's events. Callers are answered
//! only after the commit returned. Reads go through separate connections, which WAL lets run
//! alongside the writer.
//!
//! The hot path talks to SQLite through rusqlite on the thread that holds the connection, not
//! through sqlx: sqlx's SQLite driver runs every statement on a worker thread of its own and
//! hands it over through a channel, and with five statements per webhook those hand-overs (not
//! SQLite) were where the time went (`bench ingest`, see BENCHMARKS.md). The writer is a
//! dedicated thread; a point read (one subscription's stream, one idempotency key) runs inline,
//! because it takes microseconds and a thread hop would cost more than the read; a page of the
//! global order goes to the blocking pool. A third thread checkpoints (copies the WAL back into
//! the database file) beside the commits. sqlx still opens the file at start to run the
//! migrations, so the schema has one history.
//!
//! Opening for writing checks the file first: SQLite's `quick_check`, then the hash chains
//! after the last verified checkpoint (`crate::checkpoint`); a damaged or edited log is
//! refused instead of served. A "malformed" error met later, on a commit or a read, is
//! remembered (`crate::integrity::DamageWatch`) and keeps the log unready.

use crate::chain::{event_hash, GENESIS_HASH};
use crate::checkpoint::check_tail;
use crate::integrity::{check_integrity, DamageWatch, IntegrityCheck};
use crate::state_cache::{Lookup, StateCache};
use crate::{fold_stream, AppendBatch, AppendReceipt, EventLog, IdempotencyRecord, LogError, StoredEvent, StreamState};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{EventEnvelope, SubscriptionId};
use rusqlite::{params, OpenFlags, OptionalExtension};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

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

struct AppendRequest {
    batch: AppendBatch,
    reply: oneshot::Sender<Result<AppendReceipt, LogError>>,
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

fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
}

/// The writer's connection: WAL (set persistently by the migration run), full sync, so a commit
/// that returned survives a power cut. It checkpoints only as a backstop (10,000 WAL pages):
/// the checkpointer thread does it, so the copying and syncing of the database file happen
/// beside the commits instead of inside one of them, where they held up every caller of the
/// round.
fn open_writer(path: &Path) -> Result<rusqlite::Connection, LogError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 10000;")?;
    Ok(conn)
}

/// How `created_at` of an idempotency record is written (`strftime('%Y-%m-%dT%H:%M:%fZ')`), so
/// that instants compare as text.
const STORED_INSTANT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Idempotency records deleted per transaction.
const FORGET_CHUNK: usize = 1_000;

/// How often the checkpointer looks for new commits to copy back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies committed WAL pages into the database file (a PASSIVE checkpoint: it never blocks
/// the writer or readers) whenever the head moved, until the log is dropped (the writer thread
/// ends and with it the head's sender). A failed checkpoint is only logged, once until one
/// succeeds again: the commits are durable in the WAL already, and the next round retries.
fn run_checkpointer(path: PathBuf, mut head: watch::Receiver<u64>, damage: Arc<DamageWatch>) {
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

/// Read connections, opened on demand and kept for reuse. There are never more in use than
/// threads reading (the runtime's workers and the blocking pool), so the set needs no limit of
/// its own; `keep` bounds how many stay open while idle.
struct ReadConnections {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    keep: usize,
    damage: Arc<DamageWatch>,
}

impl ReadConnections {
    fn new(path: &Path, keep: usize, damage: Arc<DamageWatch>) -> Self {
        ReadConnections { path: path.to_owned(), idle: Mutex::new(Vec::new()), keep, damage }
    }

    /// Runs `read` on an idle connection (or a new one). A connection whose read failed is
    /// closed rather than kept: the failure may have been the file, not the statement.
    fn with<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> Result<T, LogError>) -> Result<T, LogError> {
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
fn open_reader(path: &Path) -> Result<rusqlite::Connection, LogError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
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

impl SqliteEventLog {
    /// Opens (creating and migrating when needed) the log at `path` and starts its writer.
    ///
    /// An existing file is checked first and refused when SQLite's `quick_check` reports damage
    /// ([`LogError::Damaged`]) or a hash chain breaks after the last verified checkpoint
    /// ([`LogError::Tampered`]); without a checkpoint every chain is checked.
    pub async fn open(path: &Path, options: SqliteLogOptions) -> Result<Self, LogError> {
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
        let writer = open_writer(path)?;
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
            .spawn(move || run_checkpointer(checkpoint_path, checkpoint_head, checkpoint_damage))
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
        let head = reads.with(|conn| {
            Ok(conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| row.get::<_, i64>(0))?)
        })?;
        let (_, head_rx) = watch::channel(head as u64);
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

/// The writer thread: drains waiting requests into one transaction per round.
///
/// After a failed round (disk full, I/O error) the write connection is closed and a new one
/// opened for the next round: SQLite may or may not have rolled the transaction back by itself,
/// and a connection whose transaction state is in doubt must never commit again. Reusing it was
/// seen to acknowledge later appends that were never made durable; a fresh connection runs
/// SQLite's recovery and starts from what is really on disk.
struct WriterThread {
    conn: Option<rusqlite::Connection>,
    states: Option<Arc<StateCache>>,
    path: PathBuf,
    head: watch::Sender<u64>,
    max_batch: usize,
    last_commit_failed: Arc<AtomicBool>,
    damage: Arc<DamageWatch>,
}

impl WriterThread {
    fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
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

/// A read of whole events: the columns [`read_events`] expects, in its order, then `$rest`.
/// A literal (not `format!` per call), so the hot path's reads build no SQL string.
macro_rules! select_events {
    ($rest:literal) => {
        concat!("SELECT position, stream_version, envelope, previous_hash, hash FROM events ", $rest)
    };
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
        let id = subscription_id.to_string();
        self.inner
            .reads
            .with(|conn| read_events(conn, select_events!("WHERE subscription_id = ? ORDER BY stream_version"), [&id]))
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
        tokio::task::spawn_blocking(move || {
            inner.reads.with(|conn| {
                read_events(
                    conn,
                    select_events!("WHERE position > ? ORDER BY position LIMIT ?"),
                    [after as i64, limit as i64],
                )
            })
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("reading the event log: {e}")))?
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, LogError> {
        let stored: Option<(String, String)> = self.inner.reads.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT fingerprint, response FROM idempotency_keys WHERE scope = ? AND key = ?")?
                .query_row([scope, key], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?)
        })?;
        let Some((fingerprint, response)) = stored else { return Ok(None) };
        Ok(Some(IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint,
            response: serde_json::from_str(&response).map_err(|e| LogError::Unavailable(e.to_string()))?,
        }))
    }

    async fn forget_idempotency_before(&self, cutoff: DateTime<Utc>) -> Result<u64, LogError> {
        if self.inner.writer.is_none() {
            return Err(LogError::Unavailable("the event log is open read-only".into()));
        }
        let path = self.inner.path.clone();
        let cutoff = cutoff.format(STORED_INSTANT).to_string();
        tokio::task::spawn_blocking(move || {
            // A connection of its own, a chunk per transaction: the writer waits for one chunk at
            // most (its busy timeout covers that), never for the whole sweep.
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

#[cfg(test)]
mod tests {
    use super::*;
    // The log stores any fact alike; the tests number theirs by licence count.
    use crate::test_fixtures::licenses_assigned as envelope;
    use crate::StreamAppend;
    use uuid::Uuid;

    fn single(id: SubscriptionId, expected: u64, events: Vec<EventEnvelope>) -> AppendBatch {
        AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: expected, events }],
            idempotency: None,
        }
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteEventLog {
        SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap()
    }

    #[tokio::test]
    async fn appends_are_ordered_per_stream_and_globally() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let a = SubscriptionId(Uuid::new_v4());
        let b = SubscriptionId(Uuid::new_v4());
        log.append(single(a, 0, vec![envelope(a, 1), envelope(a, 2)])).await.unwrap();
        log.append(single(b, 0, vec![envelope(b, 1)])).await.unwrap();
        log.append(single(a, 2, vec![envelope(a, 3)])).await.unwrap();
        let stream: Vec<u64> = log.read_stream(a).await.unwrap().iter().map(|e| e.stream_version).collect();
        assert_eq!(stream, [1, 2, 3]);
        let all = log.read_after(0, 100).await.unwrap();
        assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(*log.head().borrow(), 4);
        assert_eq!(log.read_after(2, 1).await.unwrap()[0].position, 3);
    }

    #[tokio::test]
    async fn a_stale_expected_version_is_a_conflict_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let a = SubscriptionId(Uuid::new_v4());
        log.append(single(a, 0, vec![envelope(a, 1)])).await.unwrap();
        let err = log.append(single(a, 0, vec![envelope(a, 2)])).await.unwrap_err();
        assert!(matches!(err, LogError::Conflict { expected: 0, actual: 1, .. }), "{err}");
        assert_eq!(log.read_stream(a).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn idempotency_keys_are_unique_and_stored_with_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let a = SubscriptionId(Uuid::new_v4());
        let record = IdempotencyRecord {
            scope: "webhook:contoso".into(),
            key: "msg_1".into(),
            fingerprint: "f".into(),
            response: serde_json::json!({"status": 200}),
        };
        let mut batch = single(a, 0, vec![envelope(a, 1)]);
        batch.idempotency = Some(record.clone());
        log.append(batch.clone()).await.unwrap();
        let mut again = single(a, 1, vec![envelope(a, 1)]);
        again.idempotency = Some(record.clone());
        assert!(matches!(log.append(again).await, Err(LogError::DuplicateIdempotencyKey)));
        assert_eq!(log.read_stream(a).await.unwrap().len(), 1, "the duplicate stored no event");
        assert_eq!(log.idempotency_record("webhook:contoso", "msg_1").await.unwrap(), Some(record));
        assert_eq!(log.idempotency_record("webhook:other", "msg_1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_a_conflict_spoils_only_its_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let ids: Vec<_> = (0..200).map(|_| SubscriptionId(Uuid::new_v4())).collect();
        let mut tasks = Vec::new();
        for id in &ids {
            let id = *id;
            let first = log.clone();
            tasks.push(tokio::spawn(async move { first.append(single(id, 0, vec![envelope(id, 1)])).await }));
            // Some streams get a second writer decided against the same version: one loses.
            if id.0.as_u128() % 4 == 0 {
                let second = log.clone();
                tasks.push(tokio::spawn(async move { second.append(single(id, 0, vec![envelope(id, 9)])).await }));
            }
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 200);
        assert_eq!(log.read_after(0, 1000).await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn events_survive_reopening_and_the_head_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let a = SubscriptionId(Uuid::new_v4());
        {
            let log = open(&dir).await;
            log.append(single(a, 0, vec![envelope(a, 1), envelope(a, 2)])).await.unwrap();
        }
        let log = open(&dir).await;
        assert_eq!(*log.head().borrow(), 2);
        assert_eq!(log.read_stream(a).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn each_event_is_chained_to_the_previous_event_of_its_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let a = SubscriptionId(Uuid::new_v4());
        let b = SubscriptionId(Uuid::new_v4());
        log.append(single(a, 0, vec![envelope(a, 1), envelope(a, 2)])).await.unwrap();
        log.append(single(b, 0, vec![envelope(b, 1)])).await.unwrap();
        log.append(single(a, 2, vec![envelope(a, 3)])).await.unwrap();
        let stream = log.read_stream(a).await.unwrap();
        assert_eq!(stream[0].previous_hash, GENESIS_HASH);
        for pair in stream.windows(2) {
            assert_eq!(pair[1].previous_hash, pair[0].hash);
        }
        for e in &stream {
            assert_eq!(e.hash, event_hash(&e.previous_hash, &e.raw));
        }
        assert_eq!(log.read_stream(b).await.unwrap()[0].previous_hash, GENESIS_HASH);
    }

    #[tokio::test]
    async fn the_log_refuses_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
        let a = SubscriptionId(Uuid::new_v4());
        log.append(single(a, 0, vec![envelope(a, 1)])).await.unwrap();
        let mut conn = SqliteConnection::connect_with(&connect_options(&path)).await.unwrap();
        let err = sqlx::query("DELETE FROM events").execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = sqlx::query("UPDATE events SET envelope = '{}'").execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }

    /// Writers on several threads race on a few subscriptions, each deciding against
    /// `stream_state` and appending after the version it saw, with a cache of `state_cache`
    /// states per generation: every state the log answers equals a fold of the stream as
    /// stored, a writer always sees at least its own commit right after its answer, and losers
    /// of a race are refused as conflicts, never stored.
    async fn race_on_stream_states(state_cache: usize) {
        use crate::test_fixtures::{licenses_assigned, purchased};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteLogOptions { state_cache, ..SqliteLogOptions::default() };
        let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), options).await.unwrap();
        let ids: Vec<SubscriptionId> = (0..5).map(|_| SubscriptionId(Uuid::new_v4())).collect();
        let mut writers = Vec::new();
        for writer in 0..8u32 {
            let (log, ids) = (log.clone(), ids.clone());
            writers.push(tokio::spawn(async move {
                let (mut appended, mut conflicts) = (0, 0);
                for round in 0..60u32 {
                    let id = ids[((writer + round) % 5) as usize];
                    let seen = log.stream_state(id).await.unwrap();
                    let event = if seen.version == 0 { purchased(id) } else { licenses_assigned(id, 1 + round % 3) };
                    match log.append(single(id, seen.version, vec![event])).await {
                        Ok(_) => {
                            appended += 1;
                            let after = log.stream_state(id).await.unwrap();
                            assert!(after.version > seen.version, "a writer must see its own commit");
                        }
                        Err(LogError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                    if round % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (appended, conflicts)
            }));
        }
        let (mut appended, mut conflicts) = (0, 0);
        for writer in writers {
            let (a, c) = writer.await.unwrap();
            appended += a;
            conflicts += c;
        }
        let mut stored = 0;
        for id in &ids {
            let from_file = fold_stream(log.read_stream(*id).await.unwrap());
            assert_eq!(log.stream_state(*id).await.unwrap(), from_file);
            assert!(from_file.subscription.is_some());
            stored += from_file.version;
        }
        assert_eq!(stored, appended, "every accepted append is stored once, every refused one not at all");
        assert_eq!(appended + conflicts, 8 * 60);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cached_states_always_equal_a_fold_of_the_stored_stream() {
        race_on_stream_states(2).await; // tiny: states keep falling out and coming back
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn without_the_cache_states_are_folded_from_the_file() {
        race_on_stream_states(0).await;
    }

    #[tokio::test]
    async fn a_conflict_makes_the_next_state_come_from_the_file() {
        use crate::test_fixtures::purchased;
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir).await;
        let a = SubscriptionId(Uuid::new_v4());
        log.append(single(a, 0, vec![purchased(a), envelope(a, 2)])).await.unwrap();
        assert_eq!(log.stream_state(a).await.unwrap().version, 2);
        let err = log.append(single(a, 1, vec![envelope(a, 3)])).await.unwrap_err();
        assert!(matches!(err, LogError::Conflict { expected: 1, actual: 2, .. }), "{err}");
        let state = log.stream_state(a).await.unwrap();
        assert_eq!(state, fold_stream(log.read_stream(a).await.unwrap()));
        assert_eq!(state.subscription.unwrap().licenses_assigned, Some(2));
    }

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
