//! Errors of the projector loops.

use fulfillment_log::LogError;
use fulfillment_read_model::ReadModelError;

/// Why folding a batch (or starting to) failed. The loops retry every one of them (after a
/// pause) without moving their position, so nothing is skipped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The read-model store failed or refused the batch.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// Reading the log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// The Kafka consumer failed (unreachable broker, group errors); the batch is re-read.
    #[error("kafka consumer: {0}")]
    Consumer(String),
    /// A message consumed from the events topic does not decode (written by a newer version,
    /// or not by `fulfillment`): the projector stops there rather than skip it.
    #[error("events topic message is unreadable: {0}")]
    Unreadable(String),
}
