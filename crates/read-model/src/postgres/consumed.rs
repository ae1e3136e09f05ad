//! The Kafka projector's batches: messages consumed from the events topic, folded with the next
//! offset of every partition they came from, in one transaction. The offsets committed here, not
//! Kafka's, are what the projector resumes from, and what a reader waits on to see its own
//! writes.

use super::{fold_and_write_at, lock_position, PostgresReadModel};
use crate::ReadModelError;
use fulfillment_log::StoredEvent;
use sqlx::{Postgres, QueryBuilder};
use std::collections::{BTreeMap, HashMap};

/// One message consumed from the events topic, as the Kafka projector hands it to the store.
#[derive(Debug, Clone)]
pub struct ConsumedMessage {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The event it carries.
    pub event: StoredEvent,
    /// Whether its append committed ([`fulfillment_log::resolve_committed`]); a phantom only
    /// moves the offset.
    pub committed: bool,
}

impl PostgresReadModel {
    /// Folds messages consumed from `topic` by consumer `group` and commits, in one transaction,
    /// the read models, the billing outbox rows and the next offset of every partition in the
    /// batch. Messages below a partition's stored offset were folded already (by this instance
    /// before a restart, or by another before a rebalance) and are skipped; a batch that does
    /// not continue exactly at the stored offset fails with [`ReadModelError::OffsetGap`] and
    /// changes nothing, so the caller seeks back. Returns the highest log position folded.
    pub async fn project_consumed(
        &self,
        group: &str,
        topic: &str,
        messages: &[ConsumedMessage],
    ) -> Result<u64, ReadModelError> {
        let mut tx = self.pool.begin().await?;
        let start = lock_position(&mut tx).await?;
        let mut partitions: Vec<i32> = messages.iter().map(|m| m.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let stored: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT kafka_partition, next_offset FROM consumer_offsets
             WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3)",
        )
        .bind(group)
        .bind(topic)
        .bind(&partitions)
        .fetch_all(&mut *tx)
        .await?;
        let mut next: HashMap<i32, i64> = partitions.iter().map(|p| (*p, 0)).collect();
        next.extend(stored);
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            let expected = next.get_mut(&message.partition).ok_or_else(|| {
                ReadModelError::Corrupt(format!("partition {} missing from the batch's offsets", message.partition))
            })?;
            if message.offset < *expected {
                continue;
            }
            if message.offset > *expected {
                return Err(ReadModelError::OffsetGap {
                    partition: message.partition,
                    expected: *expected,
                    found: message.offset,
                });
            }
            *expected += 1;
            if message.committed {
                events.push(message.event.clone());
            }
        }
        let mut position = start;
        if !events.is_empty() {
            position = position.max(events.iter().map(|e| e.position).max().unwrap_or(0));
            fold_and_write_at(&mut tx, &events, position).await?;
        }
        let mut offsets = QueryBuilder::<Postgres>::new(
            "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset) ",
        );
        let mut next: Vec<(i32, i64)> = next.into_iter().collect();
        next.sort_unstable();
        offsets.push_values(&next, |mut row, (partition, offset)| {
            row.push_bind(group).push_bind(topic).push_bind(*partition).push_bind(*offset);
        });
        offsets.push(
            " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET next_offset = excluded.next_offset",
        );
        offsets.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// The next offset to fold per partition of `topic` for consumer `group`, as committed with
    /// the read models (what a reader waits on to see its own writes).
    pub async fn consumed_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, ReadModelError> {
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(group)
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}
