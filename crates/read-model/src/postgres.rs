//! Read models in PostgreSQL (`--database-url`): the store several ingress processes can
//! query while one projector writes it. Same tables, same fold, same fingerprints as the
//! SQLite store; batches are serialized by locking the projector's position row.

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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;
use tracing::warn;
use uuid::Uuid;

/// Name of the projector row in `projector_positions`.
const PROJECTOR: &str = "subscriptions";

/// How to reach PostgreSQL. The URL may carry a password, so `Debug` never shows it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Upper bound of pooled connections (per process).
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails (and is retried by the
    /// projector, or answered 503 by the ingress).
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// The URL without its password, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable database url>".into();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// The read models in PostgreSQL: every client trait of [`crate::ReadModels`].
#[derive(Clone)]
pub struct PostgresReadModel {
    pool: PgPool,
}

impl PostgresReadModel {
    /// Connects and applies `migrations/postgres` (idempotent: applied migrations are skipped,
    /// concurrent starts are serialized by sqlx's advisory lock).
    pub async fn connect(options: &PostgresOptions) -> Result<Self, ReadModelError> {
        let connect = PgConnectOptions::from_str(&options.url)?.application_name("fulfillment");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Self::migrate(&pool).await?;
        Ok(PostgresReadModel { pool })
    }

    /// Applies the migrations `migrations/postgres` holds to `pool`'s database.
    pub async fn migrate(pool: &PgPool) -> Result<(), ReadModelError> {
        sqlx::migrate!("../../migrations/postgres").run(pool).await.map_err(|e| ReadModelError::Store(e.into()))
    }

    /// The pool, for tests and tools that inspect the tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for in-flight queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One message consumed from the events topic, as the Kafka projector hands it to the store.
#[derive(Debug, Clone)]
pub struct ConsumedMessage {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The event it carries.
    pub event: StoredEvent,
    /// Whether its append committed ([`fulfillment_log::resolve_committed`]); a phantom only
    /// moves the offset.
    pub committed: bool,
}

impl PostgresReadModel {
    /// Folds messages consumed from `topic` by consumer `group` and commits, in one transaction,
    /// the read models, the billing outbox rows and the next offset of every partition in the
    /// batch. Messages below a partition's stored offset were folded already (by this instance
    /// before a restart, or by another before a rebalance) and are skipped; a batch that does
    /// not continue exactly at the stored offset fails with [`ReadModelError::OffsetGap`] and
    /// changes nothing, so the caller seeks back. Returns the highest log position folded.
    pub async fn project_consumed(
        &self,
        group: &str,
        topic: &str,
        messages: &[ConsumedMessage],
    ) -> Result<u64, ReadModelError> {
        let mut tx = self.pool.begin().await?;
        let start = lock_position(&mut tx).await?;
        let mut partitions: Vec<i32> = messages.iter().map(|m| m.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let stored: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT kafka_partition, next_offset FROM consumer_offsets
             WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3)",
        )
        .bind(group)
        .bind(topic)
        .bind(&partitions)
        .fetch_all(&mut *tx)
        .await?;
        let mut next: HashMap<i32, i64> = partitions.iter().map(|p| (*p, 0)).collect();
        next.extend(stored);
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            let expected = next.get_mut(&message.partition).ok_or_else(|| {
                ReadModelError::Corrupt(format!("partition {} missing from the batch's offsets", message.partition))
            })?;
            if message.offset < *expected {
                continue;
            }
            if message.offset > *expected {
                return Err(ReadModelError::OffsetGap {
                    partition: message.partition,
                    expected: *expected,
                    found: message.offset,
                });
            }
            *expected += 1;
            if message.committed {
                events.push(message.event.clone());
            }
        }
        let mut position = start;
        if !events.is_empty() {
            position = position.max(events.iter().map(|e| e.position).max().unwrap_or(0));
            fold_and_write(&mut tx, &events, position).await?;
        }
        let mut offsets = QueryBuilder::<Postgres>::new(
            "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset) ",
        );
        let mut next: Vec<(i32, i64)> = next.into_iter().collect();
        next.sort_unstable();
        offsets.push_values(&next, |mut row, (partition, offset)| {
            row.push_bind(group).push_bind(topic).push_bind(*partition).push_bind(*offset);
        });
        offsets.push(
            " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET next_offset = excluded.next_offset",
        );
        offsets.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// The next offset to fold per partition of `topic` for consumer `group`, as committed with
    /// the read models (what a reader waits on to see its own writes).
    pub async fn consumed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<i32, i64>, ReadModelError> {
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(group)
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// Takes the projector's row lock for this batch (creating the row on first use) and returns
/// the stored position. The lock serializes batches on the database: a second projector waits
/// here, then sees what the first committed and refuses or trims its batch instead of folding
/// anything twice.
async fn lock_position(tx: &mut Transaction<'_, Postgres>) -> Result<u64, ReadModelError> {
    sqlx::query("INSERT INTO projector_positions (projector, position) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(PROJECTOR)
        .execute(&mut **tx)
        .await?;
    let position: i64 = sqlx::query_scalar("SELECT position FROM projector_positions WHERE projector = $1 FOR UPDATE")
        .bind(PROJECTOR)
        .fetch_one(&mut **tx)
        .await?;
    Ok(position as u64)
}

/// Folds `events` onto the stored states and writes the changed rows, the billing outbox rows,
/// the rejected events and the new `position`, inside the batch's transaction.
async fn fold_and_write(
    tx: &mut Transaction<'_, Postgres>,
    events: &[StoredEvent],
    position: u64,
) -> Result<(), ReadModelError> {
    let ids = touched_subscriptions(events);
    let mut states = load_states(tx, &ids).await?;
    let FoldedBatch { outbox, rejected } = fold_batch(&mut states, events)?;
    let changed: Vec<&Subscription> = states.values().flatten().collect();
    save_states(tx, &changed).await?;
    insert_outbox(tx, outbox).await?;
    insert_rejected(tx, rejected).await?;
    sqlx::query("UPDATE projector_positions SET position = $2 WHERE projector = $1")
        .bind(PROJECTOR)
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Loads the current state of every subscription in `ids`, locking their rows for the batch.
async fn load_states(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[SubscriptionId],
) -> Result<HashMap<SubscriptionId, Option<Subscription>>, ReadModelError> {
    let mut states: HashMap<SubscriptionId, Option<Subscription>> = ids.iter().map(|id| (*id, None)).collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let keys: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
        let rows: Vec<String> = sqlx::query_scalar("SELECT state FROM subscriptions WHERE subscription_id = ANY($1)")
            .bind(&keys)
            .fetch_all(&mut **tx)
            .await?;
        for row in rows {
            let state = parse_state(&row)?;
            states.insert(state.id, Some(state));
        }
    }
    Ok(states)
}

crate::rows::write_rows!(Postgres, |t: DateTime<Utc>| t);

fn states(rows: Vec<String>) -> Result<Vec<Subscription>, ReadModelError> {
    rows.iter().map(|r| parse_state(r)).collect()
}

#[async_trait]
impl FoldPosition for PostgresReadModel {
    async fn position(&self) -> Result<u64, ReadModelError> {
        let p: Option<i64> = sqlx::query_scalar("SELECT position FROM projector_positions WHERE projector = $1")
            .bind(PROJECTOR)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.unwrap_or(0) as u64)
    }
}

#[async_trait]
impl Projection for PostgresReadModel {
    async fn project_batch(&self, events: &[StoredEvent]) -> Result<u64, ReadModelError> {
        let mut tx = self.pool.begin().await?;
        let start = lock_position(&mut tx).await?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(start);
        };
        if first.position <= start {
            return Err(ReadModelError::Gap { position: start, first: first.position });
        }
        fold_and_write(&mut tx, events, last.position).await?;
        tx.commit().await?;
        Ok(last.position)
    }
}

#[async_trait]
impl SubscriptionQueries for PostgresReadModel {
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, ReadModelError> {
        let row: Option<String> = sqlx::query_scalar("SELECT state FROM subscriptions WHERE subscription_id = $1")
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
        let rows = sqlx::query_scalar(
            "SELECT state FROM subscriptions WHERE partner_id = $1 AND customer_id = $2
             ORDER BY purchased_at, subscription_id",
        )
        .bind(partner_id)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        states(rows)
    }

    async fn partner_customers(&self, partner_id: &str) -> Result<Vec<CustomerSummary>, ReadModelError> {
        let rows = sqlx::query(
            "SELECT customer_id, COUNT(*) AS subscriptions,
                    COUNT(*) FILTER (WHERE status = 'pending') AS action_needed,
                    MAX(purchased_at) AS latest_purchase
             FROM subscriptions WHERE partner_id = $1
             GROUP BY customer_id ORDER BY latest_purchase DESC, customer_id",
        )
        .bind(partner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let subscriptions: i64 = row.try_get("subscriptions")?;
                let action_needed: i64 = row.try_get("action_needed")?;
                let latest_purchase: DateTime<Utc> = row.try_get("latest_purchase")?;
                Ok(CustomerSummary {
                    customer_id: row.try_get("customer_id")?,
                    subscriptions: subscriptions as u64,
                    action_needed: action_needed as u64,
                    latest_purchase,
                })
            })
            .collect()
    }

    async fn order_subscriptions(&self, partner_id: &str, order_id: Uuid) -> Result<Vec<Subscription>, ReadModelError> {
        let rows = sqlx::query_scalar("SELECT state FROM subscriptions WHERE partner_id = $1 AND order_id = $2")
            .bind(partner_id)
            .bind(order_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut subscriptions = states(rows)?;
        subscriptions.sort_by_key(|s| s.line_item_number);
        Ok(subscriptions)
    }

    async fn subscription_by_authorization_code(&self, code: &str) -> Result<Option<Subscription>, ReadModelError> {
        // An ambiguous code resolves to nothing (see the SQLite store for why).
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT state FROM subscriptions WHERE authorization_code = $1 LIMIT 2")
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
        let rows = sqlx::query_scalar(
            "SELECT state FROM subscriptions WHERE publisher_id = $1 AND subscription_id > $2
             ORDER BY subscription_id LIMIT $3",
        )
        .bind(publisher_id)
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        states(rows)
    }
}

#[async_trait]
impl BillingFeed for PostgresReadModel {
    async fn billing_events(&self, after: u64, limit: u32) -> Result<Vec<BillingFeedEntry>, ReadModelError> {
        let rows = sqlx::query_as::<_, (i64, String)>(
            "SELECT sequence, payload FROM billing_outbox WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(sequence, payload)| {
                let event = serde_json::from_str(&payload).map_err(|e| ReadModelError::Corrupt(e.to_string()))?;
                Ok(BillingFeedEntry { sequence: sequence as u64, event })
            })
            .collect()
    }
}

#[async_trait]
impl BillingOutbox for PostgresReadModel {
    async fn unpublished_billing(&self, limit: u32) -> Result<Vec<OutboxEntry>, ReadModelError> {
        // Served by the partial index `billing_outbox_unpublished`.
        let rows = sqlx::query_as::<_, (i64, String, String, String, String)>(
            "SELECT sequence, billing_event_id, subscription_id, event_type, payload FROM billing_outbox WHERE published_at IS NULL ORDER BY sequence LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        crate::batch::outbox_entries(rows)
    }

    async fn mark_billing_published(&self, sequences: &[u64], at: DateTime<Utc>) -> Result<(), ReadModelError> {
        let sequences: Vec<i64> = sequences.iter().map(|s| *s as i64).collect();
        sqlx::query("UPDATE billing_outbox SET published_at = $1 WHERE published_at IS NULL AND sequence = ANY($2)")
            .bind(at)
            .bind(&sequences)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Fingerprints for PostgresReadModel {
    async fn fingerprint(&self) -> Result<Fingerprint, ReadModelError> {
        let position = self.position().await?;
        let mut builder = FingerprintBuilder::default();
        // The same row texts as the SQLite store's, so equal models give equal fingerprints.
        let tables = [
            ("subscriptions", "SELECT subscription_id, state FROM subscriptions ORDER BY subscription_id"),
            (
                "billing_outbox",
                // Without `sequence`, the feed cursor: identity values are not transactional, so a
                // batch that failed before COMMIT leaves a gap a fresh fold does not have.
                "SELECT subscription_id, concat_ws(' ', billing_event_id, event_type, log_position, payload)
                 FROM billing_outbox ORDER BY log_position, sequence",
            ),
            (
                "rejected_events",
                "SELECT subscription_id, concat_ws(' ', position, event_id, code, reason)
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
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM subscriptions WHERE subscription_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let billing: Vec<String> =
            sqlx::query_scalar("SELECT payload FROM billing_outbox WHERE subscription_id = $1 ORDER BY sequence")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let rejected: Vec<(i64, String)> =
            sqlx::query_as("SELECT position, code FROM rejected_events WHERE subscription_id = $1 ORDER BY position")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(crate::batch::rows_json(state.as_deref(), &billing, &rejected))
    }

    async fn rejected_events(&self, id: SubscriptionId) -> Result<Vec<RejectedEvent>, ReadModelError> {
        let rows = sqlx::query_as::<_, (i64, String, String, String)>(
            "SELECT position, event_id, code, reason FROM rejected_events WHERE subscription_id = $1 ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(position, event_id, code, reason)| {
                Ok(RejectedEvent {
                    position: position as u64,
                    event_id: event_id.parse().map_err(|e: uuid::Error| ReadModelError::Corrupt(e.to_string()))?,
                    code,
                    reason,
                })
            })
            .collect()
    }
}
