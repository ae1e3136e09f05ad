//! Folding one batch of events, the same for every store: the stores differ only in how they
//! load the states before and write the rows after, so replay on SQLite and live on PostgreSQL
//! derive exactly the same billing events and rejections.

use crate::ReadModelError;
use fulfillment_core::{apply, Effect, Subscription, SubscriptionId};
use fulfillment_log::StoredEvent;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use tracing::warn;

/// A billing outbox row waiting to be written.
pub(crate) struct OutboxRow {
    pub billing_event_id: String,
    pub subscription_id: String,
    pub event_type: &'static str,
    pub log_position: i64,
    pub payload: String,
}

/// An event the fold rejected, waiting to be written.
pub(crate) struct RejectedRow {
    pub position: i64,
    pub event_id: String,
    pub subscription_id: String,
    pub code: String,
    pub reason: String,
}

/// What folding a batch produced besides the new states.
pub(crate) struct FoldedBatch {
    /// Billing events in fold order (their feed order at every replay).
    pub outbox: Vec<OutboxRow>,
    /// Events that broke a rule.
    pub rejected: Vec<RejectedRow>,
}

/// The distinct subscriptions a batch touches, sorted (the rows to load, in a stable order so
/// concurrent writers lock them in the same order).
pub(crate) fn touched_subscriptions(events: &[StoredEvent]) -> Vec<SubscriptionId> {
    let mut ids: Vec<SubscriptionId> = events.iter().map(|e| e.envelope.subscription_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Folds `events` in order into `states` (loaded for [`touched_subscriptions`]).
pub(crate) fn fold_batch(
    states: &mut HashMap<SubscriptionId, Option<Subscription>>,
    events: &[StoredEvent],
) -> Result<FoldedBatch, ReadModelError> {
    let mut folded = FoldedBatch { outbox: Vec::new(), rejected: Vec::new() };
    for stored_event in events {
        let envelope = &stored_event.envelope;
        let id = envelope.subscription_id;
        let state = states.remove(&id).flatten();
        let (state, effects) = apply(state, envelope);
        for effect in effects {
            match effect {
                Effect::Billing(billing) => folded.outbox.push(OutboxRow {
                    billing_event_id: billing.id.to_string(),
                    subscription_id: id.to_string(),
                    event_type: billing.kind.type_name(),
                    log_position: stored_event.position as i64,
                    payload: serde_json::to_string(&billing).map_err(|e| ReadModelError::Corrupt(e.to_string()))?,
                }),
                Effect::Rejected { event_id, reason, code } => {
                    warn!(subscription_id = %id, event_id = %event_id, position = stored_event.position, %code, %reason, "event rejected by the fold");
                    folded.rejected.push(RejectedRow {
                        position: stored_event.position as i64,
                        event_id: event_id.to_string(),
                        subscription_id: id.to_string(),
                        code,
                        reason,
                    });
                }
                Effect::Duplicate { .. } => {}
            }
        }
        states.insert(id, state);
    }
    Ok(folded)
}

/// Parses a stored subscription state.
pub(crate) fn parse_state(json: &str) -> Result<Subscription, ReadModelError> {
    serde_json::from_str(json).map_err(|e| ReadModelError::Corrupt(e.to_string()))
}

/// Encodes a subscription state for storage.
pub(crate) fn encode_state(subscription: &Subscription) -> Result<String, ReadModelError> {
    serde_json::to_string(subscription).map_err(|e| ReadModelError::Corrupt(e.to_string()))
}

/// Accumulates [`Fingerprint`](crate::Fingerprint) hashes row by row, the same way for every
/// store, so a fingerprint only depends on the rows, never on the backend's cursor.
#[derive(Default)]
pub(crate) struct FingerprintBuilder {
    per_subscription: BTreeMap<String, Sha256>,
    tables: BTreeMap<String, String>,
    current: Sha256,
}

impl FingerprintBuilder {
    /// Adds one row of `table` belonging to `subscription` (rows must come in key order).
    pub fn row(&mut self, table: &str, subscription: String, row: &str) {
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
    pub fn end_table(&mut self, table: &str) {
        let hash = std::mem::take(&mut self.current);
        self.tables.insert(table.to_owned(), format!("{:x}", hash.finalize()));
    }

    /// The fingerprint of a store folded up to `position`.
    pub fn finish(self, position: u64) -> crate::Fingerprint {
        crate::Fingerprint {
            position,
            tables: self.tables,
            subscriptions: self.per_subscription.into_iter().map(|(k, h)| (k, format!("{:x}", h.finalize()))).collect(),
        }
    }
}

/// Everything stored about one subscription as JSON (for `verify`'s readable diff).
pub(crate) fn rows_json(state: Option<&str>, billing: &[String], rejected: &[(i64, String)]) -> serde_json::Value {
    let parse =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::String(text.into()));
    serde_json::json!({
        "state": state.map(parse),
        "billingEvents": billing.iter().map(|b| parse(b)).collect::<Vec<_>>(),
        "rejectedEvents": rejected.iter().map(|(p, c)| serde_json::json!({"position": p, "code": c})).collect::<Vec<_>>(),
    })
}

/// Outbox rows as read from either store.
pub(crate) fn outbox_entries(
    rows: Vec<(i64, String, String, String, String)>,
) -> Result<Vec<crate::OutboxEntry>, ReadModelError> {
    rows.into_iter()
        .map(|(sequence, billing_event_id, subscription_id, event_type, payload)| {
            Ok(crate::OutboxEntry {
                sequence: sequence as u64,
                billing_event_id: billing_event_id
                    .parse()
                    .map_err(|e: uuid::Error| ReadModelError::Corrupt(format!("billing_event_id: {e}")))?,
                subscription_id,
                event_type,
                payload,
            })
        })
        .collect()
}
