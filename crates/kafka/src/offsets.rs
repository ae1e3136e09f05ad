//! Moving a consumer group member's offsets by hand: back to re-read a batch that was not
//! handled, and forward, as a hint, after one was. Where the offsets that count are kept (the
//! projector keeps them with its read models) is the caller's.

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::debug;

/// Points each partition of `topic` in `offsets` at its offset, so the next receive reads from
/// there. A partition revoked meanwhile cannot be sought and is skipped: its new owner starts
/// from the offsets its owner stored.
pub fn seek_partitions<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) {
    for (&partition, &offset) in offsets {
        if let Err(e) = consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(5)) {
            debug!(partition, offset, error = %e, "seek skipped");
        }
    }
}

/// Commits `next_offsets` (the next offset to read, per partition of `topic`) to Kafka without
/// waiting: a starting hint for the next owner of each partition, never what correctness rests
/// on.
pub fn commit_offsets_hint<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    next_offsets: &BTreeMap<i32, i64>,
) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in next_offsets {
        if list.add_partition_offset(topic, *partition, Offset::Offset(*offset)).is_err() {
            return;
        }
    }
    if let Err(e) = consumer.commit(&list, CommitMode::Async) {
        debug!(error = %e, "offset hint not committed to kafka (the store holds the real offsets)");
    }
}
