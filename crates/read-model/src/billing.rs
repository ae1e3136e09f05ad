//! The billing outbox, as its two readers see it. The projector writes a billing event's row in
//! the same transaction as the read-model change that causes it (invariant 9); the billing feed
//! (HTTP) pages through the rows by cursor, and the billing relay publishes the rows not yet on
//! the billing topic and marks them.

use crate::ReadModelError;
use async_trait::async_trait;
use uuid::Uuid;

/// One entry of the billing feed: a billing event with its stable cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingFeedEntry {
    /// Feed cursor; strictly increasing, stable across restarts.
    pub sequence: u64,
    /// The billing event as JSON (see [`fulfillment_core::BillingEvent`]).
    pub event: serde_json::Value,
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

/// The billing feed over HTTP: billing events in outbox order, by cursor.
#[async_trait]
pub trait BillingFeed: Send + Sync + 'static {
    /// Billing events after cursor `after`, at most `limit`.
    async fn billing_events(&self, after: u64, limit: u32) -> Result<Vec<BillingFeedEntry>, ReadModelError>;
}

/// The billing relay's view of the outbox: what is not on the billing topic yet.
#[async_trait]
pub trait BillingOutbox: Send + Sync + 'static {
    /// Up to `limit` outbox rows not yet published to the billing topic, in sequence order.
    async fn unpublished_billing(&self, limit: u32) -> Result<Vec<OutboxEntry>, ReadModelError>;

    /// Records that the outbox rows with these sequences reached the billing topic (a row
    /// marked twice keeps its first time).
    async fn mark_billing_published(
        &self,
        sequences: &[u64],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ReadModelError>;
}
