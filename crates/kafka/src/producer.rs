//! The one producer configuration every `fulfillment` topic is written with: the events topic
//! (the log's Kafka backend) and the billing topic (the relay).

use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::time::Duration;

/// The producer every `fulfillment` topic is written with: idempotent and acknowledged by all
/// in-sync replicas, so the client's own retries never duplicate or reorder a partition's
/// messages; a message not acknowledged within `delivery_timeout` fails. `linger` is how long
/// the client waits to fill a batch.
///
/// Keys are hashed with murmur2, as the Java client and Kafka Streams hash them (librdkafka's
/// default is CRC32), so any Java tool keyed by subscription id agrees with us on partitions
/// (architecture doc, "Kafka client settings worth knowing"); `_random` only spreads keyless
/// messages, which `fulfillment` never sends.
pub fn idempotent_producer(brokers: &str, delivery_timeout: Duration, linger: Duration) -> KafkaResult<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
        .set("linger.ms", linger.as_millis().to_string())
        .create()
}
