//! The billing relay: publishes the projector's billing outbox to a Kafka topic
//! (`fulfillment.billing` by default) so billing systems can consume it with any Kafka client.
//!
//! Why an outbox and a relay instead of producing from the projector: the projector commits the
//! billing rows in the same transaction as the read models and its position, so a billing event
//! exists exactly when the fold says it does; the relay then delivers them **at least once**,
//! marking a row published only after the broker acknowledged it (`acks=all`, idempotent
//! producer). A crash between the acknowledgement and the mark re-sends that row: consumers
//! dedupe on the CloudEvents `ce_id`, which is the deterministic billing event id.
//!
//! Order: rows are produced in outbox order, keyed by subscription id, so one subscription's
//! billing events land in one partition in the order they happened. The idempotent producer
//! keeps that order across its own retries; a failed delivery stops the round at that row, and
//! the next round starts again from it.
//!
//! Each message carries the CloudEvents Kafka binding in binary mode: the billing event JSON as
//! the value and `ce_specversion`, `ce_id`, `ce_type`, `ce_source`, `ce_time`, `ce_subject` and
//! `content-type` headers.

use fulfillment_kafka::{create_topic_if_missing, idempotent_producer, CloudEvent, KafkaClientError};
use fulfillment_read_model::{BillingOutbox, OutboxEntry, ReadModelError};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Why publishing failed; the relay retries every one of them without skipping a row.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The Kafka client or broker failed (unreachable, delivery timed out, refused).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The billing topic could not be created.
    #[error("billing topic {topic}: {reason}")]
    Topic {
        /// Topic.
        topic: String,
        /// Broker's answer.
        reason: String,
    },
    /// The read-model store failed.
    #[error(transparent)]
    Store(#[from] ReadModelError),
}

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Billing topic.
    pub topic: String,
    /// Create the topic at start when it is missing (off where topics are provisioned
    /// separately, or on brokers without the CreateTopics API, such as librdkafka's mock).
    pub create_topic: bool,
    /// Partitions when the relay creates the topic (an existing topic is left as it is).
    pub partitions: i32,
    /// Replication factor when the relay creates the topic.
    pub replication_factor: i32,
    /// Outbox rows per round.
    pub batch: u32,
    /// How long one message may take to be acknowledged before the round fails.
    pub delivery_timeout: Duration,
    /// The CloudEvents `ce_source` of every message.
    pub source: String,
}

impl RelayOptions {
    /// Defaults for `brokers`: topic `fulfillment.billing`, created when missing with 6
    /// partitions and replication 1.
    pub fn new(brokers: impl Into<String>) -> Self {
        RelayOptions {
            brokers: brokers.into(),
            topic: "fulfillment.billing".into(),
            create_topic: true,
            partitions: 6,
            replication_factor: 1,
            batch: 500,
            delivery_timeout: Duration::from_secs(30),
            source: "/fulfillment/billing".into(),
        }
    }
}

/// A producer for the billing topic.
pub struct BillingRelay {
    producer: FutureProducer,
    options: RelayOptions,
}

impl BillingRelay {
    /// Builds the idempotent producer (no connection is made until the first use).
    pub fn new(options: RelayOptions) -> Result<Self, RelayError> {
        let producer = idempotent_producer(&options.brokers, options.delivery_timeout, Duration::from_millis(5))?;
        Ok(BillingRelay { producer, options })
    }

    /// Creates the billing topic when it does not exist.
    pub async fn ensure_topic(&self) -> Result<(), RelayError> {
        let options = &self.options;
        create_topic_if_missing(
            &options.brokers,
            &options.topic,
            options.partitions,
            options.replication_factor,
            &[],
            options.delivery_timeout,
        )
        .await
        .map_err(|e| match e {
            KafkaClientError::TopicCreation { topic, reason } => RelayError::Topic { topic, reason },
            other => RelayError::Topic { topic: options.topic.clone(), reason: other.to_string() },
        })
    }

    /// Publishes up to one batch of unpublished outbox rows, in order, and marks those the
    /// broker acknowledged. Returns how many were published; fails at the first row that was
    /// not acknowledged (the rows before it stay marked).
    pub async fn publish_pending(&self, store: &dyn BillingOutbox) -> Result<usize, RelayError> {
        let rows = store.unpublished_billing(self.options.batch).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Enqueue the whole batch first (the producer pipelines it), then wait for each
        // acknowledgement in order.
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let headers = cloud_event_headers(row, &self.options.source);
            let record =
                FutureRecord::to(&self.options.topic).key(&row.subscription_id).payload(&row.payload).headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((row.sequence, delivery)),
                Err((error, _)) => {
                    warn!(error = %error, sequence = row.sequence, "billing relay could not enqueue; the rest waits for the next round");
                    break;
                }
            }
        }
        let mut acknowledged = Vec::with_capacity(deliveries.len());
        let mut failure = None;
        for (sequence, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) if failure.is_none() => acknowledged.push(sequence),
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    failure.get_or_insert(RelayError::Kafka(error));
                }
                Err(_canceled) => {
                    failure.get_or_insert(RelayError::Kafka(KafkaError::Canceled));
                }
            }
        }
        if !acknowledged.is_empty() {
            store.mark_billing_published(&acknowledged, chrono::Utc::now()).await?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(acknowledged.len()),
        }
    }
}

/// The CloudEvents Kafka binding headers (binary content mode) of one billing event.
fn cloud_event_headers(row: &OutboxEntry, source: &str) -> OwnedHeaders {
    let time = serde_json::from_str::<serde_json::Value>(&row.payload)
        .ok()
        .and_then(|v| v["effectiveAt"].as_str().map(str::to_owned))
        .filter(|t| !t.is_empty());
    let id = row.billing_event_id.to_string();
    CloudEvent { id: &id, event_type: &row.event_type, source, subject: &row.subscription_id, time: time.as_deref() }
        .headers()
}

/// A running relay.
pub struct RelayHandle {
    /// Rows published since start.
    pub published: watch::Receiver<u64>,
    /// Whether the last round succeeded.
    pub healthy: watch::Receiver<bool>,
    /// The relay task; ends after `shutdown` is cancelled and the current round finished.
    pub task: JoinHandle<()>,
}

/// Runs `relay` over `store` until `shutdown`: a round whenever `wake` moves (the projector's
/// position), or every second; after a failure, retries with backoff up to 5 s.
pub fn run_billing_relay(
    relay: BillingRelay,
    store: Arc<dyn BillingOutbox>,
    mut wake: watch::Receiver<u64>,
    shutdown: CancellationToken,
) -> RelayHandle {
    let (published_tx, published_rx) = watch::channel(0u64);
    let (healthy_tx, healthy_rx) = watch::channel(true);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut topic_ready = !relay.options.create_topic;
        info!(topic = %relay.options.topic, "billing relay started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let round = async {
                if !topic_ready {
                    relay.ensure_topic().await?;
                    topic_ready = true;
                }
                relay.publish_pending(store.as_ref()).await
            };
            match round.await {
                Ok(0) => {
                    healthy_tx.send_replace(true);
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wake.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(n) => {
                    debug!(published = n, "billing events published");
                    published_tx.send_modify(|total| *total += n as u64);
                    healthy_tx.send_replace(true);
                    backoff = Duration::from_millis(100);
                }
                Err(error) => {
                    warn!(error = %error, "billing relay round failed; retrying from the first unacknowledged event");
                    healthy_tx.send_replace(false);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        info!("billing relay stopped");
    });
    RelayHandle { published: published_rx, healthy: healthy_rx, task }
}
