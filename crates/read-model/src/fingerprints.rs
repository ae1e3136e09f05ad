//! What an audit compares between two stores (`fulfillment verify`: the live model against a
//! fresh fold of the log, invariant 5; the tests: SQLite against PostgreSQL). In: nothing but
//! the store. Out: deterministic checksums, and the rows behind them for a readable diff.

use crate::projection::FoldPosition;
use crate::ReadModelError;
use async_trait::async_trait;
use fulfillment_core::SubscriptionId;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Deterministic checksums of a read-model store, to prove two stores hold the same models
/// (replay equals live). Rows are hashed in key order, bookkeeping that is not derived from
/// the log is left out: when an outbox row was published, and the outbox `sequence` (the
/// billing feed cursor). Sequences are handed out by the store, not derived from the log: a
/// PostgreSQL identity value is not transactional, so a batch that fails before COMMIT leaves
/// a gap and its retry gets higher numbers, and folding partitions in another interleaving
/// numbers rows differently. Billing events are hashed in log order instead (`log_position`,
/// then `sequence` only to keep several events of one log event in fold order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Log position folded.
    pub position: u64,
    /// SHA-256 per table, hex.
    pub tables: BTreeMap<String, String>,
    /// SHA-256 per subscription over its row, billing events and rejected events, hex.
    pub subscriptions: BTreeMap<String, String>,
}

/// An event the fold rejected, kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    /// Log position.
    pub position: u64,
    /// Event id.
    pub event_id: Uuid,
    /// Rule code.
    pub code: String,
    /// Readable reason.
    pub reason: String,
}

/// A store as an audit inspects it.
#[async_trait]
pub trait Fingerprints: FoldPosition {
    /// Checksums of every table and every subscription.
    async fn fingerprint(&self) -> Result<Fingerprint, ReadModelError>;

    /// Everything stored about one subscription, as JSON, for a readable diff.
    async fn subscription_rows(&self, id: &str) -> Result<serde_json::Value, ReadModelError>;

    /// Events of one subscription the fold rejected.
    async fn rejected_events(&self, id: SubscriptionId) -> Result<Vec<RejectedEvent>, ReadModelError>;
}
