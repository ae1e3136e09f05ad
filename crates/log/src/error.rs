//! Errors of the event log. The ingress maps them: `Conflict` → retry the decision,
//! `DuplicateIdempotencyKey` → replay the stored answer, `Unavailable` and `Damaged` → 503 with
//! `Retry-After`. `Damaged` and `Tampered` also stop the service from starting on such a log.

use crate::chain::ChainBreak;
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
    /// The storage reports damage (SQLite: "database disk image is malformed", "file is not a
    /// database", or a failed `quick_check`/`integrity_check`). Unlike `Unavailable` this does
    /// not pass by itself: the embedded log stays unready from the first report on.
    #[error("event log storage is damaged: {0}")]
    Damaged(String),
    /// A hash chain does not check out: an event was edited, replaced or removed in storage.
    #[error("the hash chain of {0}")]
    Tampered(ChainBreak),
    /// A stored event cannot be read back (corruption or a newer writer).
    #[error("stored event at position {position} is unreadable: {source}")]
    Unreadable {
        /// Where.
        position: u64,
        /// Why.
        source: DecodeError,
    },
}

/// SQLite's primary result codes that mean the file itself is damaged: `SQLITE_CORRUPT` (11)
/// and `SQLITE_NOTADB` (26). Extended codes (`SQLITE_CORRUPT_INDEX`, ...) carry them in the low
/// byte.
fn is_damage(code: i32) -> bool {
    matches!(code & 0xff, 11 | 26)
}

impl From<sqlx::Error> for LogError {
    fn from(e: sqlx::Error) -> Self {
        let damaged = match &e {
            sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(is_damage),
            _ => false,
        };
        if damaged {
            LogError::Damaged(e.to_string())
        } else {
            LogError::Unavailable(e.to_string())
        }
    }
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> Self {
        let damaged = match &e {
            rusqlite::Error::SqliteFailure(failure, _) => is_damage(failure.extended_code),
            _ => false,
        };
        if damaged {
            LogError::Damaged(e.to_string())
        } else {
            LogError::Unavailable(e.to_string())
        }
    }
}
