//! The consumer configuration of a `fulfillment` consumer group (the projector on the events
//! topic): offsets are never committed by a timer or on receipt, only by their owner after the
//! batch they cover was handled (house style, after svix's Kafka bridge).

use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaResult;
use rdkafka::ClientConfig;
use std::time::Duration;

/// A member of consumer `group` on `brokers` that starts from the earliest message of a
/// partition the group never committed, commits nothing by itself, and is dropped from the group
/// `session_timeout` after it stops heartbeating.
pub fn manually_committed_consumer(
    brokers: &str,
    group: &str,
    session_timeout: Duration,
) -> KafkaResult<StreamConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_timeout.as_millis().to_string())
        .set("heartbeat.interval.ms", (session_timeout.as_millis() / 4).max(100).to_string())
        // The rebalance timeout: how long a rebalance waits for members to rejoin before it
        // drops them. A killed instance never rejoins, so librdkafka's default (5 minutes)
        // would stall the group that long; a batch takes far less than this bound.
        .set("max.poll.interval.ms", (session_timeout.as_millis() * 3).max(10_000).to_string())
        // How long the broker may hold a fetch while it has less than `fetch.min.bytes`: the
        // default 500 ms is added to a billing event's latency whenever traffic is light
        // (measured with `bench e2e`).
        .set("fetch.wait.max.ms", "10")
        .create()
}
