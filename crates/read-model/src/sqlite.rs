//! Read models in SQLite for the embedded mode (`<data-dir>/read_model.sqlite`).

use crate::batch::{fold_batch, parse_state, touched_subscriptions, FingerprintBuilder, FoldedBatch};
use crate::rows::ROWS_PER_STATEMENT;
use crate::{
    BillingFeed, BillingFeedEntry, BillingOutbox, CustomerSummary, Fingerprint, Fingerprints, FoldPosition,
    OutboxEntry, Projection, ReadModelError, RejectedEvent, SubscriptionQueries,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{Subscription, SubscriptionId};
use fulfillment_log::StoredEvent;
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};
use uuid::Uuid;

/// Name of the projector row in `projector_positions`.
const PROJECTOR: &str = "subscriptions";

/// The read models in SQLite: every client trait of [`crate::ReadModels`].
#[derive(Clone)]
pub struct SqliteReadModel {
    pool: SqlitePool,
    /// Set for a rebuild target (see [`SqliteReadModel::create_new`]).
    rebuild: Option<Arc<RebuildFiles>>,
    /// Stops the live model's checkpointer on close, or when the last clone is dropped.
    checkpointer: Option<Checkpointer>,
}

/// The handle of a live model's checkpointer task.
#[derive(Clone)]
struct Checkpointer {
    stop: CancellationToken,
    _stop_on_drop: Arc<DropGuard>,
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
        let checkpointer = (durability == Durability::EachBatch).then(|| {
            let stop = CancellationToken::new();
            let options = connect_options(path, durability).pragma("cache_size", "-1024");
            tokio::spawn(run_checkpointer(options, stop.clone()));
            Checkpointer { stop: stop.clone(), _stop_on_drop: Arc::new(stop.drop_guard()) }
        });
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
            checkpointer.stop.cancel();
        }
    }
}

/// Loads the current state of every subscription in `ids`.
async fn load_states(
    tx: &mut Transaction<'_, Sqlite>,
    ids: &[SubscriptionId],
) -> Result<HashMap<SubscriptionId, Option<Subscription>>, ReadModelError> {
    let mut states: HashMap<SubscriptionId, Option<Subscription>> = ids.iter().map(|id| (*id, None)).collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT state FROM subscriptions WHERE subscription_id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.to_string());
        }
        query.push(")");
        let rows: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        for row in rows {
            let state = parse_state(&row)?;
            states.insert(state.id, Some(state));
        }
    }
    Ok(states)
}

crate::rows::write_rows!(Sqlite, |t: DateTime<Utc>| t.to_rfc3339());

/// Folds `events` and writes the result in one transaction on `conn`.
async fn project_on(conn: &mut SqliteConnection, events: &[StoredEvent]) -> Result<u64, ReadModelError> {
    let mut tx = conn.begin().await?;
    let stored: Option<i64> = sqlx::query_scalar("SELECT position FROM projector_positions WHERE projector = ?")
        .bind(PROJECTOR)
        .fetch_optional(&mut *tx)
        .await?;
    let start = stored.unwrap_or(0) as u64;
    let Some(last) = events.last() else {
        return Ok(start);
    };
    if let Some(first) = events.first() {
        if first.position <= start {
            return Err(ReadModelError::Gap { position: start, first: first.position });
        }
    }
    let ids = touched_subscriptions(events);
    let mut states = load_states(&mut tx, &ids).await?;
    let FoldedBatch { outbox, rejected } = fold_batch(&mut states, events)?;
    let changed: Vec<&Subscription> = states.values().flatten().collect();
    save_states(&mut tx, &changed).await?;
    insert_outbox(&mut tx, outbox).await?;
    insert_rejected(&mut tx, rejected).await?;
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
        let found = sqlx::query_scalar::<_, i64>("SELECT position FROM projector_positions WHERE projector = ?")
            .bind(PROJECTOR)
            .fetch_one(&mut *tx)
            .await?;
        return Err(ReadModelError::PositionMoved { expected: start, found: found as u64 });
    }
    tx.commit().await?;
    Ok(last.position)
}

#[async_trait]
impl FoldPosition for SqliteReadModel {
    async fn position(&self) -> Result<u64, ReadModelError> {
        let p: Option<i64> = sqlx::query_scalar("SELECT position FROM projector_positions WHERE projector = ?")
            .bind(PROJECTOR)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.unwrap_or(0) as u64)
    }
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

#[async_trait]
impl SubscriptionQueries for SqliteReadModel {
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, ReadModelError> {
        let row: Option<String> = sqlx::query_scalar("SELECT state FROM subscriptions WHERE subscription_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_deref().map(parse_state).transpose()
    }

    async fn customer_subscriptions(
        &self,
        partner_id: &str,
        customer_id: &str,
    ) -> Result<Vec<Subscription>, ReadModelError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT state FROM subscriptions WHERE partner_id = ? AND customer_id = ? ORDER BY purchased_at, subscription_id",
        )
        .bind(partner_id)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| parse_state(r)).collect()
    }

    async fn partner_customers(&self, partner_id: &str) -> Result<Vec<CustomerSummary>, ReadModelError> {
        // Served by `subscriptions_by_customer` (partner_id, customer_id, purchased_at).
        let rows = sqlx::query(
            "SELECT customer_id, COUNT(*) AS subscriptions,
                    SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS action_needed,
                    MAX(purchased_at) AS latest_purchase
             FROM subscriptions WHERE partner_id = ?
             GROUP BY customer_id ORDER BY latest_purchase DESC, customer_id",
        )
        .bind(partner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let latest: String = row.try_get("latest_purchase")?;
                let subscriptions: i64 = row.try_get("subscriptions")?;
                let action_needed: i64 = row.try_get("action_needed")?;
                Ok(CustomerSummary {
                    customer_id: row.try_get("customer_id")?,
                    subscriptions: subscriptions as u64,
                    action_needed: action_needed as u64,
                    latest_purchase: chrono::DateTime::parse_from_rfc3339(&latest)
                        .map_err(|e| ReadModelError::Corrupt(format!("purchased_at {latest:?}: {e}")))?
                        .to_utc(),
                })
            })
            .collect()
    }

    async fn order_subscriptions(&self, partner_id: &str, order_id: Uuid) -> Result<Vec<Subscription>, ReadModelError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT state FROM subscriptions WHERE partner_id = ? AND order_id = ?")
                .bind(partner_id)
                .bind(order_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut subscriptions = rows.iter().map(|r| parse_state(r)).collect::<Result<Vec<_>, _>>()?;
        subscriptions.sort_by_key(|s| s.line_item_number);
        Ok(subscriptions)
    }

    async fn subscription_by_authorization_code(&self, code: &str) -> Result<Option<Subscription>, ReadModelError> {
        // The code is a random bearer secret minted per purchase, so a second match means the log
        // holds a copied code; answering with either subscription would hand one customer's
        // landing page to another, so an ambiguous code resolves to nothing.
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT state FROM subscriptions WHERE authorization_code = ? LIMIT 2")
                .bind(code)
                .fetch_all(&self.pool)
                .await?;
        match rows.as_slice() {
            [only] => parse_state(only).map(Some),
            [] => Ok(None),
            _ => {
                warn!("an authorization code is shared by several subscriptions; refusing to resolve it");
                Ok(None)
            }
        }
    }

    async fn publisher_subscriptions(
        &self,
        publisher_id: &str,
        after: Option<SubscriptionId>,
        limit: u32,
    ) -> Result<Vec<Subscription>, ReadModelError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT state FROM subscriptions WHERE publisher_id = ? AND subscription_id > ?
             ORDER BY subscription_id LIMIT ?",
        )
        .bind(publisher_id)
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| parse_state(r)).collect()
    }
}

#[async_trait]
impl BillingFeed for SqliteReadModel {
    async fn billing_events(&self, after: u64, limit: u32) -> Result<Vec<BillingFeedEntry>, ReadModelError> {
        let rows =
            sqlx::query("SELECT sequence, payload FROM billing_outbox WHERE sequence > ? ORDER BY sequence LIMIT ?")
                .bind(after as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let sequence: i64 = row.try_get("sequence")?;
                let payload: String = row.try_get("payload")?;
                let event = serde_json::from_str(&payload).map_err(|e| ReadModelError::Corrupt(e.to_string()))?;
                Ok(BillingFeedEntry { sequence: sequence as u64, event })
            })
            .collect()
    }
}

#[async_trait]
impl BillingOutbox for SqliteReadModel {
    async fn unpublished_billing(&self, limit: u32) -> Result<Vec<OutboxEntry>, ReadModelError> {
        // Served by the partial index `billing_outbox_unpublished`.
        let rows = sqlx::query_as::<_, (i64, String, String, String, String)>(
            "SELECT sequence, billing_event_id, subscription_id, event_type, payload FROM billing_outbox WHERE published_at IS NULL ORDER BY sequence LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        crate::batch::outbox_entries(rows)
    }

    async fn mark_billing_published(&self, sequences: &[u64], at: DateTime<Utc>) -> Result<(), ReadModelError> {
        for chunk in sequences.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new("UPDATE billing_outbox SET published_at = ");
            query.push_bind(at.to_rfc3339()).push(" WHERE published_at IS NULL AND sequence IN (");
            let mut list = query.separated(", ");
            for sequence in chunk {
                list.push_bind(*sequence as i64);
            }
            query.push(")");
            query.build().execute(&self.pool).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Fingerprints for SqliteReadModel {
    async fn fingerprint(&self) -> Result<Fingerprint, ReadModelError> {
        let position = self.position().await?;
        let mut builder = FingerprintBuilder::default();
        // (table, query whose first column is the subscription id, in a deterministic order)
        let tables = [
            ("subscriptions", "SELECT subscription_id, state FROM subscriptions ORDER BY subscription_id"),
            (
                "billing_outbox",
                // Without `sequence`, the feed cursor (bookkeeping, not derived from the log); rows in
                // log order, several from one event in fold order.
                "SELECT subscription_id, billing_event_id || ' ' || event_type || ' ' || log_position || ' ' || payload
                 FROM billing_outbox ORDER BY log_position, sequence",
            ),
            (
                "rejected_events",
                "SELECT subscription_id, position || ' ' || event_id || ' ' || code || ' ' || reason
                 FROM rejected_events ORDER BY position",
            ),
        ];
        for (table, query) in tables {
            let mut rows = sqlx::query_as::<_, (String, String)>(query).fetch(&self.pool);
            while let Some((subscription, row)) = rows.try_next().await? {
                builder.row(table, subscription, &row);
            }
            builder.end_table(table);
        }
        Ok(builder.finish(position))
    }

    async fn subscription_rows(&self, id: &str) -> Result<serde_json::Value, ReadModelError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM subscriptions WHERE subscription_id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let billing: Vec<String> =
            sqlx::query_scalar("SELECT payload FROM billing_outbox WHERE subscription_id = ? ORDER BY sequence")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let rejected: Vec<(i64, String)> =
            sqlx::query_as("SELECT position, code FROM rejected_events WHERE subscription_id = ? ORDER BY position")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(crate::batch::rows_json(state.as_deref(), &billing, &rejected))
    }

    async fn rejected_events(&self, id: SubscriptionId) -> Result<Vec<RejectedEvent>, ReadModelError> {
        let rows = sqlx::query(
            "SELECT position, event_id, code, reason FROM rejected_events WHERE subscription_id = ? ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get("position")?;
                let event_id: String = row.try_get("event_id")?;
                Ok(RejectedEvent {
                    position: position as u64,
                    event_id: event_id.parse().map_err(|e: uuid::Error| ReadModelError::Corrupt(e.to_string()))?,
                    code: row.try_get("code")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulfillment_core::fixtures::{envelope, purchase};
    use fulfillment_core::Event;
    use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};

    /// A log with `n` subscriptions that each reach billing, plus one event that breaks a rule.
    async fn populated_log(dir: &tempfile::TempDir, n: usize) -> SqliteEventLog {
        let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
        for i in 0..n {
            let id = SubscriptionId(Uuid::new_v4());
            let mut events = vec![
                envelope(id, purchase("customer-1", &format!("code-{i}"))),
                envelope(id, Event::LicensesAssigned { assigned_count: 3 }),
                envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }),
            ];
            if i == 0 {
                events.push(envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }));
            }
            log.append(AppendBatch {
                streams: vec![StreamAppend { subscription_id: id, expected_version: 0, events }],
                idempotency: None,
            })
            .await
            .unwrap();
        }
        log
    }

    async fn project_all(log: &SqliteEventLog, store: &SqliteReadModel, batch: usize) {
        loop {
            let events = log.read_after(store.position().await.unwrap(), batch).await.unwrap();
            if events.is_empty() {
                return;
            }
            store.project_batch(&events).await.unwrap();
        }
    }

    async fn snapshot(store: &SqliteReadModel) -> (Vec<String>, Vec<String>) {
        let states = sqlx::query_scalar("SELECT state FROM subscriptions ORDER BY subscription_id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let billing =
            sqlx::query_scalar("SELECT billing_event_id || ' ' || payload FROM billing_outbox ORDER BY sequence")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        (states, billing)
    }

    #[tokio::test]
    async fn a_batch_is_never_applied_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 3).await;
        let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
        let events = log.read_after(0, 100).await.unwrap();
        assert_eq!(store.project_batch(&events).await.unwrap(), events.last().unwrap().position);
        let before = snapshot(&store).await;
        let err = store.project_batch(&events).await.unwrap_err();
        assert!(matches!(err, ReadModelError::Gap { .. }), "{err}");
        assert_eq!(snapshot(&store).await, before);
        assert_eq!(store.billing_events(0, 100).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn rebuilding_from_the_log_equals_the_live_model_whatever_the_batch_size() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 20).await;
        let live = SqliteReadModel::open(&dir.path().join("live.sqlite")).await.unwrap();
        project_all(&log, &live, 7).await;
        let rebuilt = SqliteReadModel::open(&dir.path().join("rebuilt.sqlite")).await.unwrap();
        project_all(&log, &rebuilt, 1000).await;
        assert_eq!(snapshot(&live).await, snapshot(&rebuilt).await);
        assert_eq!(live.position().await.unwrap(), rebuilt.position().await.unwrap());
    }

    #[tokio::test]
    async fn a_rebuild_target_appears_only_when_complete_and_then_opens_as_a_live_model() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 20).await;
        let live = SqliteReadModel::open(&dir.path().join("live.sqlite")).await.unwrap();
        project_all(&log, &live, 1000).await;
        let target = dir.path().join("rebuild.sqlite");
        let partial = dir.path().join("rebuild.sqlite.partial");
        // What an interrupted rebuild leaves behind is discarded, not resumed.
        std::fs::write(&partial, b"half a rebuild").unwrap();
        let rebuild = SqliteReadModel::create_new(&target).await.unwrap();
        project_all(&log, &rebuild, 7).await;
        assert!(!target.exists(), "an unfinished rebuild must not be at the target path");
        rebuild.checkpoint_and_close().await.unwrap();
        assert!(target.exists() && !partial.exists());
        let reopened = SqliteReadModel::open(&target).await.unwrap();
        assert_eq!(snapshot(&live).await, snapshot(&reopened).await);
        assert_eq!(reopened.position().await.unwrap(), live.position().await.unwrap());
        let err = SqliteReadModel::create_new(&target).await.err().expect("an existing target is refused");
        assert!(matches!(err, ReadModelError::Rebuild(_)), "{err}");
    }

    #[tokio::test]
    async fn rule_breaking_events_are_recorded_as_rejected_without_stalling() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 2).await;
        let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
        project_all(&log, &store, 2).await;
        let first = log.read_after(0, 1).await.unwrap()[0].envelope.subscription_id;
        let rejected = store.rejected_events(first).await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].code, "setup-already-confirmed");
        assert_eq!(store.position().await.unwrap(), 7, "the events after the rejected one were projected");
    }

    #[tokio::test]
    async fn an_authorization_code_resolves_only_when_it_names_exactly_one_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 2).await;
        for _ in 0..2 {
            let id = SubscriptionId(Uuid::new_v4());
            log.append(AppendBatch {
                streams: vec![StreamAppend {
                    subscription_id: id,
                    expected_version: 0,
                    events: vec![envelope(id, purchase("customer-1", "copied"))],
                }],
                idempotency: None,
            })
            .await
            .unwrap();
        }
        let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
        project_all(&log, &store, 100).await;
        let first = log.read_after(0, 1).await.unwrap()[0].envelope.subscription_id;
        let found = store.subscription_by_authorization_code("code-0").await.unwrap().expect("unique code resolves");
        assert_eq!(found.id, first);
        assert!(store.subscription_by_authorization_code("copied").await.unwrap().is_none());
        assert!(store.subscription_by_authorization_code("unknown").await.unwrap().is_none());
    }

    /// A live model's batches reach its database file although no batch crosses the
    /// checkpoint threshold (10,000 WAL pages): the checkpointer copies them beside the batches.
    #[tokio::test]
    async fn the_checkpointer_copies_batches_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = populated_log(&dir, 50).await;
        let file = dir.path().join("read_model.sqlite");
        let store = SqliteReadModel::open(&file).await.unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        project_all(&log, &store, 100).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() <= before {
            assert!(tokio::time::Instant::now() < deadline, "the database file never grew: nothing was checkpointed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
