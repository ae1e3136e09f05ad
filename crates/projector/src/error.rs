//! Errors of the projector and its stores.

use fulfillment_log::LogError;

/// Why projecting or querying failed. The runner retries every one of them (after a pause)
/// without moving its position, so nothing is skipped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The read-model database failed.
    #[error("read-model store: {0}")]
    Store(#[from] sqlx::Error),
    /// Reading the log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// A stored row does not parse (written by a newer version, or edited by hand).
    #[error("read model row is unreadable: {0}")]
    Corrupt(String),
    /// Another projector moved the position under us; this batch was not committed.
    #[error("projector position moved concurrently (expected {expected}, found {found})")]
    PositionMoved {
        /// Position this batch started from.
        expected: u64,
        /// Position found in the store.
        found: u64,
    },
    /// A batch did not start right after the stored position.
    #[error("batch starts at {first} but the store is at {position}")]
    Gap {
        /// Stored position.
        position: u64,
        /// First position of the batch.
        first: u64,
    },
}
