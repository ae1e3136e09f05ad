//! The Kafka-protocol broker the Kafka-mode tests use: a real broker over TCP on loopback
//! (`FULFILLMENT_TEST_KAFKA`, default `127.0.0.1:9092`; `scripts/test.sh` installs and starts
//! Tansu there). Every test gets its own topics and consumer group, so tests share the broker
//! without seeing each other's events.

use fulfillment::EventLogBackend;
use fulfillment_log::KafkaLogOptions;
use fulfillment_projector::KafkaProjectorOptions;
use std::time::Duration;

/// The broker's bootstrap address.
pub fn brokers() -> String {
    std::env::var("FULFILLMENT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Event-log options on a fresh topic of 3 partitions of the test broker.
pub fn fresh_log_options() -> KafkaLogOptions {
    fresh_log_options_on(&brokers())
}

/// Event-log options on a fresh topic of 3 partitions of `brokers`.
pub fn fresh_log_options_on(brokers: &str) -> KafkaLogOptions {
    KafkaLogOptions {
        topic: unique("test.events"),
        partitions: 3,
        delivery_timeout: Duration::from_secs(5),
        ..KafkaLogOptions::new(brokers)
    }
}

/// Projector options for `log` with a fresh consumer group, short session timeout so a
/// rebalance after an instance leaves happens quickly.
pub fn projector_options(log: &KafkaLogOptions) -> KafkaProjectorOptions {
    KafkaProjectorOptions {
        topic: log.topic.clone(),
        group: unique("test-projector"),
        batch: 100,
        session_timeout: Duration::from_secs(6),
        ..KafkaProjectorOptions::new(log.brokers.clone())
    }
}

/// The event-log backend of a fresh Kafka-mode service.
pub fn fresh_event_log() -> EventLogBackend {
    let log = fresh_log_options();
    let projector = projector_options(&log);
    EventLogBackend::Kafka { log, projector }
}
