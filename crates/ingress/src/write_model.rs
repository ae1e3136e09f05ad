//! The write model: running a domain command against one subscription. Take its state from the
//! log (read and folded, or kept in memory by the embedded log), let the caller check ownership
//! and `decide`, wrap the decided events in envelopes, and prepare the append against the stream
//! version the state was folded from (optimistic concurrency).
//!
//! In: a subscription id, and the events a handler decided. Out: the [`StreamState`] to decide
//! against, [`EventEnvelope`]s, and the [`StreamAppend`] that [`crate::idempotency::write`]
//! commits (deciding again when another writer got there first). Every write path (webhooks, the
//! SaaS API, the partner API and through it the console) goes through here.

use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use fulfillment_core::{fold, Event, EventEnvelope, Source, Subscription, SubscriptionId, EVENT_SCHEMA_VERSION};
use fulfillment_log::{StreamAppend, StreamState};
use uuid::Uuid;

/// One subscription's state as the log holds it now (strongly consistent: the embedded log
/// answers from states it updates before answering any append).
pub async fn load(state: &AppState, id: SubscriptionId) -> Result<StreamState, ApiError> {
    Ok(state.log.stream_state(id).await?)
}

/// Wraps decided events in envelopes: fresh v7 ids, the caller as source.
pub fn envelopes(
    id: SubscriptionId,
    source: &Source,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    events: Vec<Event>,
) -> Vec<EventEnvelope> {
    events
        .into_iter()
        .map(|event| EventEnvelope {
            event_id: Uuid::now_v7(),
            subscription_id: id,
            schema_version: EVENT_SCHEMA_VERSION,
            source: source.clone(),
            occurred_at,
            recorded_at,
            event,
        })
        .collect()
}

/// The state after appending `envelopes` to `loaded`, and the append itself.
pub fn prepare(
    id: SubscriptionId,
    loaded: &StreamState,
    envelopes: Vec<EventEnvelope>,
) -> (Option<Subscription>, StreamAppend) {
    let after = fold(loaded.subscription.clone(), &envelopes).state;
    (after, StreamAppend { subscription_id: id, expected_version: loaded.version, events: envelopes })
}

/// Parses a subscription id from a path; anything that is not a UUID is simply not found.
pub fn parse_subscription_id(raw: &str) -> Result<SubscriptionId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("subscription not found".into()))
}
