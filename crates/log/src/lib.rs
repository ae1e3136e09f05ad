//! The event log: the source of truth of `fulfillment`.
//!
//! Ingress appends facts here and answers its caller only after [`EventLog::append`] returned,
//! which means the events are durable (invariant 1). The projector and the replay tools read
//! them back in global order with [`EventLog::read_after`]; the ingress reads one
//! subscription's stream with [`EventLog::read_stream`] to decide the next command.
//!
//! One small trait, several backends (the shape svix uses for its queues): [`SqliteEventLog`]
//! is the embedded default for one machine and for tests; [`KafkaEventLog`] keeps the events in
//! a Kafka topic and its write-side bookkeeping in PostgreSQL; [`open`] opens the one a
//! [`LogBackend`] names. Every append carries, per subscription, the stream version it was
//! decided against, so two writers racing on one subscription cannot both win (optimistic
//! concurrency), and an optional idempotency record stored atomically with the events
//! (invariant 2).
//!
//! Every event is chained to the previous event of its subscription by a hash ([`event_hash`],
//! checked by [`ChainCheck`]), so an edit in storage is evident. The embedded log does not open
//! for writing on a file that SQLite's `quick_check` calls damaged ([`check_integrity`]) or
//! whose chains break after the last position a full `verify` vouched for
//! ([`record_verified_position`]), and it stops reporting ready once SQLite reports damage
//! while running.

mod backend;
mod chain;
mod checkpoint;
mod error;
mod integrity;
mod kafka;
mod sqlite;
mod state_cache;
#[cfg(test)]
mod test_fixtures;

pub use backend::{open, LogBackend, OpenLog};
pub use chain::{check_chains, event_hash, ChainBreak, ChainCheck, ChainLink, ChainReport, GENESIS_HASH};
pub use checkpoint::record_verified_position;
pub use error::LogError;
pub use integrity::{check_integrity, IntegrityCheck};
pub use kafka::{decode_message, ensure_topic, resolve_committed, KafkaEventLog, KafkaLogOptions};
pub use sqlite::{SqliteEventLog, SqliteLogOptions};
pub use state_cache::StreamState;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{fold, EventEnvelope, SubscriptionId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// An event as stored: with its global position and its place in its subscription's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global, gap-tolerant, strictly increasing sequence number (1-based).
    pub position: u64,
    /// 1-based order within the subscription's stream.
    pub stream_version: u64,
    /// The event.
    pub envelope: EventEnvelope,
    /// The envelope exactly as stored (the bytes the hash chain covers).
    pub raw: String,
    /// Hash of the previous event of the same subscription ([`GENESIS_HASH`] for the first).
    pub previous_hash: String,
    /// This event's hash: [`event_hash`] of `previous_hash` and `raw`.
    pub hash: String,
}

/// Events for one subscription, decided against `expected_version` (the number of events the
/// caller saw in that stream).
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// Stream.
    pub subscription_id: SubscriptionId,
    /// Stream length the events were decided against; a different length is a conflict.
    pub expected_version: u64,
    /// Events to append, in order.
    pub events: Vec<EventEnvelope>,
}

/// The first answer to an idempotent request, stored with the events it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Namespace of the key (for example `webhook:contoso` or `partner:partner-1`), so two
    /// callers can never collide.
    pub scope: String,
    /// The caller's key (`webhook-id`, `Idempotency-Key`).
    pub key: String,
    /// Hash of what was asked, to tell a retry from a different request reusing the key.
    pub fingerprint: String,
    /// The answer given, opaque to the log.
    pub response: serde_json::Value,
}

/// One atomic append: all of it becomes durable, or none of it.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Per-stream appends (several for an order with several line items).
    pub streams: Vec<StreamAppend>,
    /// The answer to remember for an idempotent request.
    pub idempotency: Option<IdempotencyRecord>,
}

/// Where the appended events landed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppendReceipt {
    /// Global positions of the appended events, in batch order.
    pub positions: Vec<u64>,
}

/// The event log.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `batch` durably and atomically. Fails with [`LogError::Conflict`] when a stream
    /// moved past its expected version, [`LogError::DuplicateIdempotencyKey`] when the
    /// idempotency key was already used, and [`LogError::Unavailable`] when the storage cannot
    /// take writes; in every failure nothing of the batch is stored.
    async fn append(&self, batch: AppendBatch) -> Result<AppendReceipt, LogError>;

    /// Every event of one subscription, in stream order.
    async fn read_stream(&self, subscription_id: SubscriptionId) -> Result<Vec<StoredEvent>, LogError>;

    /// One subscription folded from its stream, with the stream length to append after: what
    /// a command is decided against. Backends that can keep states in memory safely (the
    /// embedded log, the only writer of its file) answer without reading the stream.
    async fn stream_state(&self, subscription_id: SubscriptionId) -> Result<StreamState, LogError> {
        Ok(fold_stream(self.read_stream(subscription_id).await?))
    }

    /// Up to `limit` events after global position `after`, in global order.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, LogError>;

    /// The stored answer for an idempotency key, if any.
    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, LogError>;

    /// Deletes the idempotency records stored before `cutoff` (their retention is over);
    /// returns how many. Events are never touched: a request repeated after its record is gone
    /// is decided anew, and stream versions and the domain's no-op rules keep it from applying
    /// a fact twice.
    async fn forget_idempotency_before(&self, cutoff: DateTime<Utc>) -> Result<u64, LogError>;

    /// The highest durable position, updated after every commit, so readers can wait for new
    /// events instead of polling.
    fn head(&self) -> watch::Receiver<u64>;

    /// Whether the log currently takes writes (for `/readyz`).
    async fn is_ready(&self) -> bool;
}

/// Folds a whole stream as read (in stream order) into its state and version.
pub(crate) fn fold_stream(stored: Vec<StoredEvent>) -> StreamState {
    let version = stored.last().map(|e| e.stream_version).unwrap_or(0);
    let envelopes: Vec<EventEnvelope> = stored.into_iter().map(|e| e.envelope).collect();
    StreamState { version, subscription: fold(None, &envelopes).state }
}
