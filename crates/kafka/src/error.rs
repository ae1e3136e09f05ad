//! Errors of the Kafka plumbing: a client that cannot be created, a topic that cannot be, a
//! consumed message that does not read. Callers turn them into their own errors (the log into a
//! 503, the projector into a retried batch, the relay into a retried round).

/// Why setting up a Kafka client, a topic, or reading a consumed message failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// The client (producer, consumer) could not be created or configured.
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic could not be created.
    #[error("creating topic {topic}: {reason}")]
    TopicCreation {
        /// Topic.
        topic: String,
        /// The client's or the broker's answer.
        reason: String,
    },
    /// A consumed message lacks a header or a value, or one of them is not what it should be.
    #[error("{0}")]
    Unreadable(String),
}
