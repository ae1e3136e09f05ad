//! The event log in Kafka, for running beyond one machine.
//!
//! Events go to one topic (`fulfillment.events` by default), keyed by subscription id so one
//! subscription's events stay in one partition, in order. Kafka cannot check "this stream still
//! has n events" or "this webhook id was never seen" without transactions (which the brokers
//! we test against do not offer), so the write side of the log lives in PostgreSQL next to it
//! (`migrations/postgres/0003_kafka_event_log.sql`):
//!
//! 1. one PostgreSQL transaction takes the idempotency key, locks the streams and checks their
//!    versions, hands out positions and records the events as `committed` rows;
//! 2. the events are produced with the idempotent producer (`acks=all`) and every delivery
//!    report is awaited **while the transaction is open**;
//! 3. the transaction commits only when every message was acknowledged; then the caller gets
//!    its 2xx. Any failure rolls back, and the caller gets a 503: nothing is recorded as
//!    accepted.
//!
//! A message that reached the topic but whose transaction rolled back is a phantom. Consumers
//! that fold the topic call [`resolve_committed`] first: it decides each event for good, waiting
//! for an append still in flight, so a phantom is never folded and its append can never commit
//! afterwards.
//!
//! Each message is a CloudEvent in the Kafka binding's binary mode (the JSON envelope as the
//! value; `ce_*` headers), so any Kafka tool can read the topic, plus the `fulfillment_*`
//! headers a consumer needs to rebuild the [`StoredEvent`] ([`decode_message`]). The producer,
//! the CloudEvents binding and topic admin are `fulfillment-kafka`'s, shared with the relay.

use crate::chain::{event_hash, GENESIS_HASH};
use crate::{AppendBatch, AppendReceipt, EventLog, IdempotencyRecord, LogError, StoredEvent};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{EventEnvelope, SubscriptionId};
use fulfillment_kafka::{
    create_topic_if_missing, idempotent_producer, last_offsets, served_partitions, CloudEvent, KafkaClientError,
    ReceivedMessage,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};
use uuid::Uuid;

/// Idempotency records deleted per statement.
const FORGET_CHUNK: i64 = 10_000;

/// Header carrying the event's global position.
const POSITION_HEADER: &str = "fulfillment_position";
/// Header carrying the event's place in its stream.
const STREAM_VERSION_HEADER: &str = "fulfillment_stream_version";
/// Header carrying the hash of the stream's previous event.
const PREVIOUS_HASH_HEADER: &str = "fulfillment_previous_hash";
/// Header carrying this event's hash.
const HASH_HEADER: &str = "fulfillment_hash";

/// Where the events topic is and how to produce to it.
#[derive(Debug, Clone)]
pub struct KafkaLogOptions {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Events topic.
    pub topic: String,
    /// Create the topic at start when it is missing (off where topics are provisioned
    /// separately, or on brokers without the CreateTopics API such as librdkafka's mock).
    pub create_topic: bool,
    /// Partitions when the topic is created; the most projector instances that can share the
    /// work. An existing topic is left as it is.
    pub partitions: i32,
    /// Replication factor when the topic is created.
    pub replication_factor: i32,
    /// How long one append waits for the broker's acknowledgement before it fails with a 503.
    pub delivery_timeout: Duration,
    /// The CloudEvents `ce_source` of every message.
    pub source: String,
}

impl KafkaLogOptions {
    /// Defaults for `brokers`: topic `fulfillment.events`, created when missing with 12
    /// partitions, replication 1, 5 s delivery timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaLogOptions {
            brokers: brokers.into(),
            topic: "fulfillment.events".into(),
            create_topic: true,
            partitions: 12,
            replication_factor: 1,
            delivery_timeout: Duration::from_secs(5),
            source: "/fulfillment/events".into(),
        }
    }
}

/// The Kafka-backed [`EventLog`], with its write side in PostgreSQL.
#[derive(Clone)]
pub struct KafkaEventLog {
    inner: Arc<Inner>,
}

struct Inner {
    producer: FutureProducer,
    pool: PgPool,
    options: KafkaLogOptions,
    head_tx: watch::Sender<u64>,
    head: watch::Receiver<u64>,
    /// Highest acknowledged offset per partition of this process's own appends, so a reader
    /// can wait until the projector folded them (read your writes).
    produced: Mutex<BTreeMap<i32, i64>>,
}

impl KafkaEventLog {
    /// Builds the producer over an already migrated PostgreSQL pool, and creates the topic when
    /// asked to and missing.
    pub async fn connect(options: KafkaLogOptions, pool: PgPool) -> Result<Self, LogError> {
        let producer = idempotent_producer(&options.brokers, options.delivery_timeout, Duration::from_millis(2))
            .map_err(|e| LogError::Unavailable(format!("kafka producer: {e}")))?;
        if options.create_topic {
            ensure_topic(&options).await?;
        }
        // What the topic already holds counts as written before this process started: reads
        // right after a restart wait for the projector to reach it, as in the embedded mode.
        let produced = end_offsets(&producer, &options.topic).await;
        let (head_tx, head) = watch::channel(0);
        Ok(KafkaEventLog {
            inner: Arc::new(Inner { producer, pool, options, head_tx, head, produced: Mutex::new(produced) }),
        })
    }

    /// The events topic.
    pub fn topic(&self) -> &str {
        &self.inner.options.topic
    }

    /// Highest offset per partition this process has appended, for read-your-writes waits.
    pub fn produced_offsets(&self) -> BTreeMap<i32, i64> {
        self.inner.produced.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The offset of the last message of every non-empty partition of `topic` (empty when the
/// broker does not answer: reads then simply do not wait).
async fn end_offsets(producer: &FutureProducer, topic: &str) -> BTreeMap<i32, i64> {
    let producer = producer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || last_offsets(producer.client(), &topic, Duration::from_secs(10)))
        .await
        .unwrap_or_default()
}

/// Creates the events topic when missing, with unlimited retention: it is the source of truth,
/// and a replay must find the first event.
pub async fn ensure_topic(options: &KafkaLogOptions) -> Result<(), LogError> {
    create_topic_if_missing(
        &options.brokers,
        &options.topic,
        options.partitions,
        options.replication_factor,
        &[("retention.ms", "-1"), ("retention.bytes", "-1")],
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| LogError::Unavailable(e.to_string()))
}

/// One event of an append, ready to produce.
struct Outgoing {
    subscription_id: String,
    envelope: EventEnvelope,
    encoded: String,
    position: i64,
    stream_version: i64,
    previous_hash: String,
    hash: String,
}

impl Outgoing {
    fn headers(&self, source: &str) -> OwnedHeaders {
        let id = self.envelope.event_id.to_string();
        let time = self.envelope.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let position = self.position.to_string();
        let stream_version = self.stream_version.to_string();
        CloudEvent {
            id: &id,
            event_type: self.envelope.event_type(),
            source,
            subject: &self.subscription_id,
            time: Some(&time),
        }
        .headers()
        .insert(Header { key: POSITION_HEADER, value: Some(&position) })
        .insert(Header { key: STREAM_VERSION_HEADER, value: Some(&stream_version) })
        .insert(Header { key: PREVIOUS_HASH_HEADER, value: Some(&self.previous_hash) })
        .insert(Header { key: HASH_HEADER, value: Some(&self.hash) })
    }
}

fn pg(e: sqlx::Error) -> LogError {
    LogError::Unavailable(format!("postgresql: {e}"))
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn append(&self, batch: AppendBatch) -> Result<AppendReceipt, LogError> {
        let inner = &self.inner;
        let mut tx = inner.pool.begin().await.map_err(pg)?;
        if let Some(record) = &batch.idempotency {
            // Waits for a concurrent append holding the same key, then loses to it.
            let inserted = sqlx::query(
                "INSERT INTO log_idempotency (scope, key, fingerprint, response) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(&record.scope)
            .bind(&record.key)
            .bind(&record.fingerprint)
            .bind(record.response.to_string())
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
            if inserted.rows_affected() == 0 {
                return Err(LogError::DuplicateIdempotencyKey);
            }
        }
        let event_count: usize = batch.streams.iter().map(|s| s.events.len()).sum();
        if event_count == 0 {
            tx.commit().await.map_err(pg)?;
            return Ok(AppendReceipt::default());
        }
        // Lock the streams in one order, so two appends touching the same streams never deadlock.
        let mut ids: Vec<String> = batch.streams.iter().map(|s| s.subscription_id.to_string()).collect();
        ids.sort();
        ids.dedup();
        sqlx::query(
            "INSERT INTO log_streams (subscription_id, version, last_hash)
             SELECT id, 0, $2 FROM unnest($1::text[]) AS id ORDER BY id ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(GENESIS_HASH)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
        let heads: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT subscription_id, version, last_hash FROM log_streams
             WHERE subscription_id = ANY($1) ORDER BY subscription_id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg)?;
        let mut heads: BTreeMap<String, (i64, String)> =
            heads.into_iter().map(|(id, version, hash)| (id, (version, hash))).collect();
        let positions: Vec<i64> = sqlx::query_scalar("SELECT nextval('log_positions') FROM generate_series(1, $1)")
            .bind(event_count as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg)?;
        let mut outgoing = Vec::with_capacity(event_count);
        let mut positions = positions.into_iter();
        for stream in &batch.streams {
            let id = stream.subscription_id.to_string();
            let (version, last_hash) = heads.get_mut(&id).ok_or_else(|| {
                LogError::Unavailable(format!("stream {id} vanished while locked; the append was not stored"))
            })?;
            if *version as u64 != stream.expected_version {
                return Err(LogError::Conflict {
                    subscription_id: stream.subscription_id,
                    expected: stream.expected_version,
                    actual: *version as u64,
                });
            }
            for envelope in &stream.events {
                let encoded = envelope.encode();
                let hash = event_hash(last_hash, &encoded);
                *version += 1;
                let position = positions
                    .next()
                    .ok_or_else(|| LogError::Unavailable("fewer positions than events were handed out".into()))?;
                outgoing.push(Outgoing {
                    subscription_id: id.clone(),
                    envelope: envelope.clone(),
                    encoded,
                    position,
                    stream_version: *version,
                    previous_hash: std::mem::replace(last_hash, hash.clone()),
                    hash,
                });
            }
        }
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO log_events (event_id, outcome, position, subscription_id, stream_version, envelope, previous_hash, hash) ",
        );
        insert.push_values(&outgoing, |mut row, event| {
            row.push_bind(event.envelope.event_id.to_string())
                .push_bind("committed")
                .push_bind(event.position)
                .push_bind(&event.subscription_id)
                .push_bind(event.stream_version)
                .push_bind(&event.encoded)
                .push_bind(&event.previous_hash)
                .push_bind(&event.hash);
        });
        insert.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
        let inserted: HashSet<String> =
            insert.build_query_scalar::<String>().fetch_all(&mut *tx).await.map_err(pg)?.into_iter().collect();
        if let Some(duplicate) = outgoing.iter().find(|e| !inserted.contains(&e.envelope.event_id.to_string())) {
            return Err(LogError::DuplicateEventId(duplicate.envelope.event_id));
        }
        let mut update =
            QueryBuilder::<Postgres>::new("UPDATE log_streams AS s SET version = v.version, last_hash = v.hash FROM (");
        update.push_values(heads.iter(), |mut row, (id, (version, hash))| {
            row.push_bind(id).push_bind(*version).push_bind(hash);
        });
        update.push(") AS v(subscription_id, version, hash) WHERE s.subscription_id = v.subscription_id");
        update.build().execute(&mut *tx).await.map_err(pg)?;

        // Produce while the transaction (and the stream locks) are held; the append counts
        // only once every message is acknowledged.
        let mut deliveries = Vec::with_capacity(outgoing.len());
        for event in &outgoing {
            let record = FutureRecord::to(&inner.options.topic)
                .key(&event.subscription_id)
                .payload(&event.encoded)
                .headers(event.headers(&inner.options.source));
            match inner.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    return Err(LogError::Unavailable(format!("kafka refused the event: {error}")));
                }
            }
        }
        let mut acknowledged = Vec::with_capacity(deliveries.len());
        let mut failure = None;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(delivered)) => acknowledged.push((delivered.partition, delivered.offset)),
                Ok(Err((error, _))) => {
                    failure.get_or_insert_with(|| format!("kafka did not acknowledge the event: {error}"));
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "the kafka producer stopped before acknowledging".to_owned());
                }
            }
        }
        if let Some(reason) = failure {
            // Rolling back turns whatever did reach the topic into phantoms.
            warn!(events = outgoing.len(), %reason, "append failed; nothing of it was accepted");
            return Err(LogError::Unavailable(reason));
        }
        tx.commit().await.map_err(pg)?;
        if let Ok(mut produced) = inner.produced.lock() {
            for (partition, offset) in acknowledged {
                let entry = produced.entry(partition).or_insert(offset);
                *entry = (*entry).max(offset);
            }
        }
        let positions: Vec<u64> = outgoing.iter().map(|e| e.position as u64).collect();
        if let Some(&last) = positions.iter().max() {
            inner.head_tx.send_modify(|head| *head = (*head).max(last));
        }
        debug!(events = positions.len(), "appended to kafka");
        Ok(AppendReceipt { positions })
    }

    async fn read_stream(&self, subscription_id: SubscriptionId) -> Result<Vec<StoredEvent>, LogError> {
        let rows = sqlx::query(
            "SELECT position, stream_version, envelope, previous_hash, hash FROM log_events
             WHERE subscription_id = $1 AND outcome = 'committed' ORDER BY stream_version",
        )
        .bind(subscription_id.to_string())
        .fetch_all(&self.inner.pool)
        .await
        .map_err(pg)?;
        rows.iter().map(decode_row).collect()
    }

    /// Committed events in position order, from the PostgreSQL copy: for audits of a quiet log.
    /// Positions are handed out before the broker acknowledges, so while appends are in flight a
    /// lower position may still commit after a higher one was read; the projector therefore
    /// consumes the topic, not this.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        let rows = sqlx::query(
            "SELECT position, stream_version, envelope, previous_hash, hash FROM log_events
             WHERE outcome = 'committed' AND position > $1 ORDER BY position LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(pg)?;
        rows.iter().map(decode_row).collect()
    }

    async fn forget_idempotency_before(&self, cutoff: DateTime<Utc>) -> Result<u64, LogError> {
        let mut forgotten = 0;
        loop {
            // A chunk per statement, so no sweep holds many row locks at once.
            let deleted = sqlx::query(
                "DELETE FROM log_idempotency WHERE ctid IN
                 (SELECT ctid FROM log_idempotency WHERE created_at < $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(FORGET_CHUNK)
            .execute(&self.inner.pool)
            .await
            .map_err(pg)?
            .rows_affected();
            forgotten += deleted;
            if deleted < FORGET_CHUNK as u64 {
                return Ok(forgotten);
            }
        }
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, LogError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT fingerprint, response FROM log_idempotency WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(pg)?;
        row.map(|(fingerprint, response)| {
            let response = serde_json::from_str(&response)
                .map_err(|e| LogError::Unavailable(format!("stored idempotent answer is unreadable: {e}")))?;
            Ok(IdempotencyRecord { scope: scope.to_owned(), key: key.to_owned(), fingerprint, response })
        })
        .transpose()
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.inner.head.clone()
    }

    async fn is_ready(&self) -> bool {
        let database = sqlx::query("SELECT 1").execute(&self.inner.pool).await.is_ok();
        if !database {
            return false;
        }
        let producer = self.inner.producer.clone();
        let topic = self.inner.options.topic.clone();
        tokio::task::spawn_blocking(move || {
            served_partitions(producer.client(), &topic, Duration::from_secs(2)).is_some_and(|p| !p.is_empty())
        })
        .await
        .unwrap_or(false)
    }
}

fn decode_row(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, LogError> {
    let position: i64 = row.try_get("position").map_err(pg)?;
    let raw: String = row.try_get("envelope").map_err(pg)?;
    let envelope =
        EventEnvelope::decode(&raw).map_err(|source| LogError::Unreadable { position: position as u64, source })?;
    Ok(StoredEvent {
        position: position as u64,
        stream_version: row.try_get::<i64, _>("stream_version").map_err(pg)? as u64,
        envelope,
        raw,
        previous_hash: row.try_get("previous_hash").map_err(pg)?,
        hash: row.try_get("hash").map_err(pg)?,
    })
}

/// Rebuilds the stored event a consumed message of the events topic carries, or says why it
/// cannot be.
pub fn decode_message(message: &ReceivedMessage<'_>) -> Result<StoredEvent, KafkaClientError> {
    let raw = message.text()?.to_owned();
    let position = message.number_header(POSITION_HEADER)?;
    let envelope = EventEnvelope::decode(&raw)
        .map_err(|e| KafkaClientError::Unreadable(format!("the envelope does not decode: {e}")))?;
    Ok(StoredEvent {
        position,
        stream_version: message.number_header(STREAM_VERSION_HEADER)?,
        envelope,
        raw,
        previous_hash: message.header(PREVIOUS_HASH_HEADER)?,
        hash: message.header(HASH_HEADER)?,
    })
}

/// Of `event_ids` (consumed from the topic), the ones whose append committed. Every other id is
/// recorded as void in the same statement, so its append (if still in flight) can never commit
/// later: the statement waits for such an append to finish, then decides.
pub async fn resolve_committed(pool: &PgPool, event_ids: &[Uuid]) -> Result<HashSet<Uuid>, LogError> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let event_ids: Vec<String> = event_ids.iter().map(Uuid::to_string).collect();
    let voided = sqlx::query(
        "INSERT INTO log_events (event_id, outcome) SELECT id, 'void' FROM unnest($1::text[]) AS id ORDER BY id
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event_ids)
    .execute(pool)
    .await
    .map_err(pg)?
    .rows_affected();
    if voided > 0 {
        warn!(phantoms = voided, "events in the topic whose append never committed; they are not folded");
    }
    // Every id is decided now (the insert waited for appends in flight), so this reads outcomes
    // that can no longer change.
    let committed: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM log_events WHERE event_id = ANY($1) AND outcome = 'committed'")
            .bind(&event_ids)
            .fetch_all(pool)
            .await
            .map_err(pg)?;
    let committed = committed
        .iter()
        .map(|id| id.parse::<Uuid>().map_err(|e| LogError::Unavailable(format!("stored event id {id}: {e}"))))
        .collect::<Result<HashSet<Uuid>, LogError>>()?;
    Ok(committed)
}
