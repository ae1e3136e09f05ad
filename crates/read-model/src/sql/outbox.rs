//! The billing outbox's two readers, for both databases (see [`super`]): the billing feed pages
//! through it by cursor, the relay takes what is not on the billing topic yet and marks it.

use super::dialect::Statement;
use super::fold::ROWS_PER_STATEMENT;
use super::{Backend, Param, SqlStore};
use crate::{BillingFeed, BillingFeedEntry, BillingOutbox, OutboxEntry, ReadModelError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
impl<S: SqlStore> BillingFeed for S {
    async fn billing_events(&self, after: u64, limit: u32) -> Result<Vec<BillingFeedEntry>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        S::Db::fetch_decoded(
            &mut conn,
            "SELECT sequence, payload FROM billing_outbox WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            &[Param::Int(after as i64), Param::Int(limit as i64)],
            |row| {
                let payload = S::Db::text(row, 1)?;
                let event = serde_json::from_str(&payload).map_err(|e| ReadModelError::Corrupt(e.to_string()))?;
                Ok(BillingFeedEntry { sequence: S::Db::int(row, 0)? as u64, event })
            },
        )
        .await
    }
}

#[async_trait]
impl<S: SqlStore> BillingOutbox for S {
    async fn unpublished_billing(&self, limit: u32) -> Result<Vec<OutboxEntry>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        // Served by the partial index `billing_outbox_unpublished`.
        S::Db::fetch_decoded(
            &mut conn,
            "SELECT sequence, billing_event_id, subscription_id, event_type, payload FROM billing_outbox
             WHERE published_at IS NULL ORDER BY sequence LIMIT $1",
            &[Param::Int(limit as i64)],
            |row| {
                let billing_event_id = S::Db::text(row, 1)?;
                Ok(OutboxEntry {
                    sequence: S::Db::int(row, 0)? as u64,
                    billing_event_id: billing_event_id
                        .parse()
                        .map_err(|e: uuid::Error| ReadModelError::Corrupt(format!("billing_event_id: {e}")))?,
                    subscription_id: S::Db::text(row, 2)?,
                    event_type: S::Db::text(row, 3)?,
                    payload: S::Db::text(row, 4)?,
                })
            },
        )
        .await
    }

    async fn mark_billing_published(&self, sequences: &[u64], at: DateTime<Utc>) -> Result<(), ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        for chunk in sequences.chunks(ROWS_PER_STATEMENT) {
            let update = Statement::<S::Db>::new("UPDATE billing_outbox SET published_at = ")
                .param(Param::Time(at))
                .push(" WHERE published_at IS NULL AND sequence IN ")
                .tuple(chunk.iter().map(|sequence| Param::Int(*sequence as i64)));
            S::Db::execute(&mut conn, &update.sql, &update.params).await?;
        }
        Ok(())
    }
}
