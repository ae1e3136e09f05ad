//! Errors of the projector and its stores.

use fulfillment_log::LogError;

/// Why projecting or querying failed. The runner retries every one of them (after a pause)
/// without moving its position, so nothing is skipped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The read-model database failed.
    #[error("read-model store: {0}")]
    Store(#[from] sqlx::Error),
    /// A rebuild target cannot be created or finished (the path exists, a file operation
    /// failed); the live model is untouched.
    #[error("rebuild target: {0}")]
    Rebuild(String),
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
    /// The Kafka consumer failed (unreachable broker, group errors); the batch is re-read.
    #[error("kafka consumer: {0}")]
    Consumer(String),
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
