//! The projector as a Kafka consumer group on the events topic, folding into PostgreSQL.
//!
//! Several instances share the topic's partitions. Correctness does not rest on Kafka's
//! committed offsets: every batch commits the next offset of its partitions in the same
//! PostgreSQL transaction as the read models and the billing outbox rows
//! ([`PostgresReadModel::project_consumed`]), batches are serialized on the database, and a
//! batch that overlaps what is stored is trimmed while one that would skip is refused and
//! re-read from the stored offset. So a rebalance, a restart or a kill mid-batch never applies
//! an event twice or skips one. Kafka's committed offsets are written afterwards only as a
//! starting hint for the next owner of a partition.
//!
//! Before a batch is folded, [`resolve_committed`] decides which of its events were really
//! accepted; phantoms (produced, but their append rolled back) only move the offset.

use crate::runner::ProjectorHandle;
use crate::ProjectorError;
use fulfillment_kafka::{
    commit_offsets_hint, manually_committed_consumer, seek_partitions, served_partitions, KafkaClientError,
    ReceivedMessage,
};
use fulfillment_log::{decode_message, resolve_committed};
use fulfillment_read_model::{ConsumedMessage, PostgresReadModel, ReadModelError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Where to consume from.
#[derive(Debug, Clone)]
pub struct KafkaProjectorOptions {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Events topic.
    pub topic: String,
    /// Consumer group shared by every projector instance of one deployment.
    pub group: String,
    /// Most messages folded per transaction.
    pub batch: usize,
    /// How long a batch waits for more messages after its first before it is folded.
    pub batch_wait: Duration,
    /// Kafka session timeout: how soon a dead instance's partitions move to the others.
    pub session_timeout: Duration,
}

impl KafkaProjectorOptions {
    /// Defaults for `brokers`: topic `fulfillment.events`, group `fulfillment-projector`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaProjectorOptions {
            brokers: brokers.into(),
            topic: "fulfillment.events".into(),
            group: "fulfillment-projector".into(),
            batch: 1000,
            batch_wait: Duration::from_millis(5),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// Joins the consumer group and folds the events topic into `store` until `shutdown`. `log` is
/// the database holding the event log's write side (where phantoms are decided); it is the
/// store's own database in a deployment, another one for an audit's fresh fold.
pub fn run_kafka_projector(
    options: KafkaProjectorOptions,
    store: PostgresReadModel,
    log: PgPool,
    shutdown: CancellationToken,
) -> Result<ProjectorHandle, ProjectorError> {
    let consumer = manually_committed_consumer(&options.brokers, &options.group, options.session_timeout)
        .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
    consumer.subscribe(&[&options.topic]).map_err(|e| ProjectorError::Consumer(e.to_string()))?;
    let consumer = Arc::new(consumer);
    let (position_tx, position_rx) = watch::channel(0u64);
    let (healthy_tx, healthy_rx) = watch::channel(true);
    let task = tokio::spawn(async move {
        info!(topic = %options.topic, group = %options.group, "kafka projector started");
        let mut backoff = Duration::from_millis(50);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = consumer.recv() => Some(message),
                // Idle and unhealthy: find out whether the broker is back, since no message may
                // come to prove it.
                _ = tokio::time::sleep(Duration::from_secs(1)), if !*healthy_tx.borrow() => None,
            };
            let first = match first {
                None => {
                    healthy_tx.send_replace(broker_answers(&consumer, &options.topic).await);
                    continue;
                }
                Some(Err(e)) => {
                    // librdkafka reports connection trouble as errors and reconnects by itself;
                    // nothing was consumed, so there is nothing to re-read.
                    warn!(error = %e, "kafka consumer error");
                    healthy_tx.send_replace(false);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue;
                }
                Some(Ok(message)) => message,
            };
            let mut batch = Vec::with_capacity(options.batch.min(4096));
            batch.push(decode(&first));
            drop(first);
            while batch.len() < options.batch {
                match tokio::time::timeout(options.batch_wait, consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(decode(&message)),
                    // Fold what was consumed; the error shows again on the next receive.
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            match fold(&store, &log, &options, &batch).await {
                Ok(Some((position, next_offsets))) => {
                    position_tx.send_modify(|p| *p = (*p).max(position));
                    healthy_tx.send_replace(true);
                    backoff = Duration::from_millis(50);
                    commit_offsets_hint(&consumer, &options.topic, &next_offsets);
                }
                Ok(None) => {}
                Err(ProjectorError::ReadModel(ReadModelError::OffsetGap { partition, expected, found })) => {
                    // Kafka's position was ahead of the store's: go back to what is stored.
                    warn!(partition, expected, found, "consumed past the stored offset; seeking back");
                    rewind(&consumer, &options.topic, &batch, Some((partition, expected)));
                }
                Err(error) => {
                    warn!(error = %error, "kafka projection failed; re-reading the batch");
                    healthy_tx.send_replace(false);
                    rewind(&consumer, &options.topic, &batch, None);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Leaving the group now hands the partitions to the other instances at once.
        consumer.unsubscribe();
        info!("kafka projector stopped");
    });
    Ok(ProjectorHandle { position: position_rx, healthy: healthy_rx, task })
}

/// Whether the broker answers a metadata request for `topic` (checked off the async threads).
async fn broker_answers(consumer: &Arc<StreamConsumer>, topic: &str) -> bool {
    let consumer = consumer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || served_partitions(consumer.client(), &topic, Duration::from_secs(2)).is_some())
        .await
        .unwrap_or(false)
}

/// A consumed message decoded (or the reason it could not be), with where it came from.
struct Consumed {
    partition: i32,
    offset: i64,
    event: Result<fulfillment_log::StoredEvent, KafkaClientError>,
}

fn decode(message: &rdkafka::message::BorrowedMessage<'_>) -> Consumed {
    Consumed {
        partition: message.partition(),
        offset: message.offset(),
        event: decode_message(&ReceivedMessage::of(message)),
    }
}

/// Decides phantoms and folds the batch; returns the highest position folded and the next
/// offset per partition.
async fn fold(
    store: &PostgresReadModel,
    log: &PgPool,
    options: &KafkaProjectorOptions,
    batch: &[Consumed],
) -> Result<Option<(u64, BTreeMap<i32, i64>)>, ProjectorError> {
    if batch.is_empty() {
        return Ok(None);
    }
    let mut decoded = Vec::with_capacity(batch.len());
    for consumed in batch {
        // An event this version cannot read stops the projector (like the embedded one) rather
        // than being skipped: it may be a newer writer's, and skipping would lose it.
        let event = consumed.event.as_ref().map_err(|reason| {
            ProjectorError::Unreadable(format!("partition {} offset {}: {reason}", consumed.partition, consumed.offset))
        })?;
        decoded.push((consumed.partition, consumed.offset, event));
    }
    let ids: Vec<uuid::Uuid> = decoded.iter().map(|(_, _, e)| e.envelope.event_id).collect();
    let committed = resolve_committed(log, &ids).await?;
    let mut next_offsets = BTreeMap::new();
    let messages: Vec<ConsumedMessage> = decoded
        .into_iter()
        .map(|(partition, offset, event)| {
            next_offsets.insert(partition, offset + 1);
            let committed = committed.contains(&event.envelope.event_id);
            ConsumedMessage { partition, offset, committed, event: event.clone() }
        })
        .collect();
    let position = store.project_consumed(&options.group, &options.topic, &messages).await?;
    debug!(messages = messages.len(), position, "projected kafka batch");
    Ok(Some((position, next_offsets)))
}

/// Points each partition of a failed batch back at its first message (or, for the partition
/// that had a gap, at the stored offset), so the next batch re-reads them.
fn rewind(consumer: &StreamConsumer, topic: &str, batch: &[Consumed], gap: Option<(i32, i64)>) {
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for consumed in batch {
        first.entry(consumed.partition).or_insert(consumed.offset);
    }
    if let Some((partition, expected)) = gap {
        first.insert(partition, expected);
    }
    seek_partitions(consumer, topic, &first);
}
