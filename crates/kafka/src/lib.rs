//! How `fulfillment` talks to Kafka, in one place for every component that does.
//!
//! The event log's Kafka backend (`fulfillment-log`), the projector's consumer group
//! (`fulfillment-projector`) and the billing relay (`fulfillment-relay`) all produce to or
//! consume from Kafka. What they must agree on lives here, so it is configured and reviewed once:
//!
//! - [`idempotent_producer`]: `acks=all`, idempotent, keys partitioned like the Java client
//!   (durable ack, invariant 1; order per subscription, invariant 3);
//! - [`manually_committed_consumer`]: a group member whose offsets are committed only by its
//!   owner, never by a timer;
//! - [`create_topic_if_missing`], [`served_partitions`], [`last_offsets`]: topic admin and
//!   metadata;
//! - [`CloudEvent`]: the CloudEvents Kafka binding's headers on the way out, and
//!   [`ReceivedMessage`] reading headers and value on the way in;
//! - [`seek_partitions`], [`commit_offsets_hint`]: moving a consumer's committed offsets.
//!
//! In: broker addresses, topic names, settings. Out: rdkafka clients configured the way the
//! architecture asks, and the errors of setting them up ([`KafkaClientError`]). Nothing here
//! knows what an event, a read model or a billing event is.

mod cloud_event;
mod consumer;
mod error;
mod offsets;
mod producer;
mod received;
mod topics;

pub use cloud_event::CloudEvent;
pub use consumer::manually_committed_consumer;
pub use error::KafkaClientError;
pub use offsets::{commit_offsets_hint, seek_partitions};
pub use producer::idempotent_producer;
pub use received::ReceivedMessage;
pub use topics::{create_topic_if_missing, last_offsets, served_partitions};
