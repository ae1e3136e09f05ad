//! Errors of the event log. The ingress maps them: `Conflict` → retry the decision,
//! `DuplicateIdempotencyKey` → replay the stored answer, `Unavailable` → 503 with `Retry-After`.

use fulfillment_core::{DecodeError, SubscriptionId};

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The stream has moved since the caller read it; decide again on fresh state.
    #[error("subscription {subscription_id} changed concurrently (expected version {expected}, found {actual})")]
    Conflict {
        /// Stream that moved.
        subscription_id: SubscriptionId,
        /// Version the caller decided against.
        expected: u64,
        /// Version found.
        actual: u64,
    },
    /// Another request with the same idempotency key committed first.
    #[error("idempotency key already used")]
    DuplicateIdempotencyKey,
    /// An event id is already in the log.
    #[error("event {0} is already in the log")]
    DuplicateEventId(uuid::Uuid),
    /// The log cannot take or serve requests now (disk full, read-only, closed).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// A stored event cannot be read back (corruption or a newer writer).
    #[error("stored event at position {position} is unreadable: {source}")]
    Unreadable {
        /// Where.
        position: u64,
        /// Why.
        source: DecodeError,
    },
}

impl From<sqlx::Error> for LogError {
    fn from(e: sqlx::Error) -> Self {
        LogError::Unavailable(e.to_string())
    }
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> Self {
        LogError::Unavailable(e.to_string())
    }
}
