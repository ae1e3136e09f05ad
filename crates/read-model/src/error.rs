//! Errors of the read-model stores, for every client: the projector retries a batch that failed
//! with any of them (without moving its position), the HTTP layer answers 503 (500 for
//! [`ReadModelError::Corrupt`]), the relay retries its round, audits report them.

/// Why a read-model store could not fold, answer or be opened.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// The read-model database failed.
    #[error("read-model store: {0}")]
    Store(#[from] sqlx::Error),
    /// A rebuild target cannot be created or finished (the path exists, a file operation
    /// failed); the live model is untouched.
    #[error("rebuild target: {0}")]
    Rebuild(String),
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
    /// A batch consumed from the events topic does not continue at the partition's stored
    /// offset (Kafka's own committed offset was ahead, or a seek raced); nothing was committed
    /// and the consumer seeks back to `expected`.
    #[error("partition {partition}: batch continues at offset {found} but the store expects {expected}")]
    OffsetGap {
        /// Partition.
        partition: i32,
        /// Next offset the store holds.
        expected: i64,
        /// Offset the batch offered instead.
        found: i64,
    },
}
