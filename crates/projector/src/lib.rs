//! The projector: folds the event log into read models and the billing outbox.
//!
//! It reads events after its stored position, folds each with [`fulfillment_core::apply`], and
//! writes the changed read-model rows, the billing events the fold emitted, the events it
//! rejected, and its new position in **one** transaction (invariant 4). A crash anywhere and a
//! restart resume at the committed position: no event is applied twice or skipped, and billing
//! event ids are deterministic, so a billing system never sees a doubled charge.
//!
//! [`ReadModels`] is the query side the HTTP layer uses; [`SqliteReadModel`] implements it for
//! the embedded mode, [`PostgresReadModel`] for production. [`run_projector`] is the loop that
//! keeps a store caught up with a log it can read in order; [`run_kafka_projector`] is the
//! consumer group that folds the Kafka events topic into PostgreSQL.

mod batch;
mod error;
mod kafka;
mod postgres;
mod rows;
mod runner;
mod sqlite;

pub use error::ProjectorError;
pub use kafka::{run_kafka_projector, KafkaProjectorOptions};
pub use postgres::{redact_url, ConsumedMessage, PostgresOptions, PostgresReadModel};
pub use runner::{run_projector, ProjectorHandle};
pub use sqlite::SqliteReadModel;

use async_trait::async_trait;
use fulfillment_core::{Subscription, SubscriptionId};
use fulfillment_log::StoredEvent;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One entry of the billing feed: a billing event with its stable cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingFeedEntry {
    /// Feed cursor; strictly increasing, stable across restarts.
    pub sequence: u64,
    /// The billing event as JSON (see [`fulfillment_core::BillingEvent`]).
    pub event: serde_json::Value,
}

/// One of a partner's customers, as the console's customer list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSummary {
    /// The partner's identifier for the customer.
    pub customer_id: String,
    /// Subscriptions this partner bought for the customer, in any status.
    pub subscriptions: u64,
    /// Of those, how many wait for the publisher ("Action needed").
    pub action_needed: u64,
    /// When the latest of them was bought (the list's sort key, newest first).
    pub latest_purchase: chrono::DateTime<chrono::Utc>,
}

/// A billing event waiting in the outbox to be published to the billing topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox sequence (the billing feed cursor): publishing follows it, so a subscription's
    /// billing events reach the topic in the order they happened.
    pub sequence: u64,
    /// Deterministic billing event id (the CloudEvents `ce_id`).
    pub billing_event_id: Uuid,
    /// Subscription (the message key and `ce_subject`).
    pub subscription_id: String,
    /// `billing.started`, ... (the `ce_type`).
    pub event_type: String,
    /// The billing event as JSON text, exactly as the feed serves it.
    pub payload: String,
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

/// A read-model store the projector writes and the HTTP layer queries.
#[async_trait]
pub trait ReadModels: Send + Sync + 'static {
    /// Log position folded so far (0 before the first event).
    async fn position(&self) -> Result<u64, ProjectorError>;

    /// Folds `events` (which must start right after [`ReadModels::position`]) and commits the
    /// result atomically; returns the new position.
    async fn project_batch(&self, events: &[StoredEvent]) -> Result<u64, ProjectorError>;

    /// One subscription's current state.
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, ProjectorError>;

    /// A partner's subscriptions for one customer, oldest first.
    async fn customer_subscriptions(
        &self,
        partner_id: &str,
        customer_id: &str,
    ) -> Result<Vec<Subscription>, ProjectorError>;

    /// The customers a partner has bought for, most recent purchase first.
    async fn partner_customers(&self, partner_id: &str) -> Result<Vec<CustomerSummary>, ProjectorError>;

    /// A partner's subscriptions bought in one order, by line item.
    async fn order_subscriptions(&self, partner_id: &str, order_id: Uuid) -> Result<Vec<Subscription>, ProjectorError>;

    /// The subscription whose purchase carries this authorization code (SaaS API `resolve`).
    async fn subscription_by_authorization_code(&self, code: &str) -> Result<Option<Subscription>, ProjectorError>;

    /// A publisher's subscriptions in id order, after `after`, at most `limit` (SaaS API list).
    async fn publisher_subscriptions(
        &self,
        publisher_id: &str,
        after: Option<SubscriptionId>,
        limit: u32,
    ) -> Result<Vec<Subscription>, ProjectorError>;

    /// Billing events after cursor `after`, at most `limit`.
    async fn billing_events(&self, after: u64, limit: u32) -> Result<Vec<BillingFeedEntry>, ProjectorError>;

    /// Up to `limit` outbox rows not yet published to the billing topic, in sequence order.
    async fn unpublished_billing(&self, limit: u32) -> Result<Vec<OutboxEntry>, ProjectorError>;

    /// Records that the outbox rows with these sequences reached the billing topic (a row
    /// marked twice keeps its first time).
    async fn mark_billing_published(
        &self,
        sequences: &[u64],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ProjectorError>;

    /// Checksums of every table and every subscription.
    async fn fingerprint(&self) -> Result<Fingerprint, ProjectorError>;

    /// Everything stored about one subscription, as JSON, for a readable diff.
    async fn subscription_rows(&self, id: &str) -> Result<serde_json::Value, ProjectorError>;

    /// Events of one subscription the fold rejected.
    async fn rejected_events(&self, id: SubscriptionId) -> Result<Vec<RejectedEvent>, ProjectorError>;
}
