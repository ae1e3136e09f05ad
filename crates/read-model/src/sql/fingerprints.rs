//! What an audit compares, for both databases (see [`super`]): the same row texts from either,
//! hashed the same way, so equal models give equal fingerprints whatever their backend.

use super::{Backend, Param, SqlStore};
use crate::{Fingerprint, Fingerprints, FoldPosition, ReadModelError, RejectedEvent};
use async_trait::async_trait;
use fulfillment_core::SubscriptionId;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Per table, the query whose rows are hashed: the subscription id first, then the row as one
/// text, in a deterministic order.
const FINGERPRINTED_TABLES: [(&str, &str); 4] = [
    ("subscriptions", "SELECT subscription_id, state FROM subscriptions ORDER BY subscription_id"),
    (
        "billing_outbox",
        // Without `sequence`, the feed cursor: bookkeeping, not derived from the log (a
        // PostgreSQL identity value is not transactional, so a batch that failed before COMMIT
        // leaves a gap a fresh fold does not have). Rows in log order, several from one event
        // in fold order.
        "SELECT subscription_id, concat_ws(' ', billing_event_id, event_type, log_position, payload)
         FROM billing_outbox ORDER BY log_position, sequence",
    ),
    (
        "rejected_events",
        "SELECT subscription_id, concat_ws(' ', position, event_id, code, reason)
         FROM rejected_events ORDER BY position",
    ),
    (
        "usage_events",
        "SELECT subscription_id, concat_ws(' ', usage_event_id, log_position, payload)
         FROM usage_events ORDER BY usage_event_id",
    ),
];

#[async_trait]
impl<S: SqlStore> Fingerprints for S {
    async fn fingerprint(&self) -> Result<Fingerprint, ReadModelError> {
        let position = self.position().await?;
        let mut builder = FingerprintBuilder::default();
        let mut conn = self.connections().acquire().await?;
        for (table, query) in FINGERPRINTED_TABLES {
            S::Db::for_each_row(&mut conn, query, &[], |row| {
                builder.row(table, S::Db::text(row, 0)?, &S::Db::text(row, 1)?);
                Ok(())
            })
            .await?;
            builder.end_table(table);
        }
        Ok(builder.finish(position))
    }

    async fn subscription_rows(&self, id: &str) -> Result<serde_json::Value, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        let id = [Param::Text(id)];
        let text = |row: &<S::Db as sqlx::Database>::Row| Ok(S::Db::text(row, 0)?);
        let state =
            S::Db::fetch_decoded(&mut conn, "SELECT state FROM subscriptions WHERE subscription_id = $1", &id, text)
                .await?;
        let billing = S::Db::fetch_decoded(
            &mut conn,
            "SELECT payload FROM billing_outbox WHERE subscription_id = $1 ORDER BY sequence",
            &id,
            text,
        )
        .await?;
        let rejected = S::Db::fetch_decoded(
            &mut conn,
            "SELECT position, code FROM rejected_events WHERE subscription_id = $1 ORDER BY position",
            &id,
            |row| Ok((S::Db::int(row, 0)?, S::Db::text(row, 1)?)),
        )
        .await?;
        Ok(rows_json(state.first().map(String::as_str), &billing, &rejected))
    }

    async fn rejected_events(&self, id: SubscriptionId) -> Result<Vec<RejectedEvent>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        let id = id.to_string();
        S::Db::fetch_decoded(
            &mut conn,
            "SELECT position, event_id, code, reason FROM rejected_events WHERE subscription_id = $1 ORDER BY position",
            &[Param::Text(&id)],
            |row| {
                let event_id = S::Db::text(row, 1)?;
                Ok(RejectedEvent {
                    position: S::Db::int(row, 0)? as u64,
                    event_id: event_id.parse().map_err(|e: uuid::Error| ReadModelError::Corrupt(e.to_string()))?,
                    code: S::Db::text(row, 2)?,
                    reason: S::Db::text(row, 3)?,
                })
            },
        )
        .await
    }
}

/// Accumulates [`Fingerprint`] hashes row by row, the same way for every store, so a
/// fingerprint only depends on the rows, never on the backend's cursor.
#[derive(Default)]
struct FingerprintBuilder {
    per_subscription: BTreeMap<String, Sha256>,
    tables: BTreeMap<String, String>,
    current: Sha256,
}

impl FingerprintBuilder {
    /// Adds one row of `table` belonging to `subscription` (rows must come in key order).
    fn row(&mut self, table: &str, subscription: String, row: &str) {
        self.current.update(subscription.as_bytes());
        self.current.update(b"\t");
        self.current.update(row.as_bytes());
        self.current.update(b"\n");
        let h = self.per_subscription.entry(subscription).or_default();
        h.update(table.as_bytes());
        h.update(b"\t");
        h.update(row.as_bytes());
        h.update(b"\n");
    }

    /// Closes `table` after its last row.
    fn end_table(&mut self, table: &str) {
        let hash = std::mem::take(&mut self.current);
        self.tables.insert(table.to_owned(), format!("{:x}", hash.finalize()));
    }

    /// The fingerprint of a store folded up to `position`.
    fn finish(self, position: u64) -> Fingerprint {
        Fingerprint {
            position,
            tables: self.tables,
            subscriptions: self.per_subscription.into_iter().map(|(k, h)| (k, format!("{:x}", h.finalize()))).collect(),
        }
    }
}

/// Everything stored about one subscription as JSON (for `verify`'s readable diff).
fn rows_json(state: Option<&str>, billing: &[String], rejected: &[(i64, String)]) -> serde_json::Value {
    let parse =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::String(text.into()));
    serde_json::json!({
        "state": state.map(parse),
        "billingEvents": billing.iter().map(|b| parse(b)).collect::<Vec<_>>(),
        "rejectedEvents": rejected.iter().map(|(p, c)| serde_json::json!({"position": p, "code": c})).collect::<Vec<_>>(),
    })
}
