//! The write model: running a domain command against one subscription. Take its state from the
//! log (read and folded, or kept in memory by the embedded log), bring it up to "now" by reaching
//! every deadline that already fell due (a term that ended renews or expires first, so a command
//! is never decided against a state the scheduler has not caught up yet), let the caller check
//! ownership and `decide`, wrap the decided events in envelopes, and prepare the append (the
//! deadlines' events first) against the stream version the state was folded from (optimistic
//! concurrency).
//!
//! In: a subscription id, and the events a handler decided. Out: the [`StreamState`] to decide
//! against, [`EventEnvelope`]s, and the [`StreamAppend`] that [`crate::idempotency::write`]
//! commits (deciding again when another writer got there first). Every write path (webhooks, the
//! SaaS API, the partner API and through it the console) goes through here.

use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use fulfillment_core::{
    fold, reach_due_deadlines, Event, EventEnvelope, Source, Subscription, SubscriptionId, EVENT_SCHEMA_VERSION,
};
use fulfillment_log::{StreamAppend, StreamState};
use uuid::Uuid;

/// A subscription's state to decide against: as the log holds it, then with every deadline due
/// now reached.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The state, deadlines reached (`None` before the purchase).
    pub subscription: Option<Subscription>,
    /// The stream version the log's state was folded from: the append's expected version.
    pub version: u64,
    /// The events of the deadlines reached, appended before the command's own.
    due: Vec<EventEnvelope>,
}

/// One subscription's state as the log holds it now (strongly consistent: the embedded log
/// answers from states it updates before answering any append), with every deadline due at the
/// clock's now reached ([`reach_due_deadlines`]).
pub async fn load(state: &AppState, id: SubscriptionId) -> Result<Loaded, ApiError> {
    let StreamState { subscription, version } = state.log.stream_state(id).await?;
    let (subscription, due) = reach_due_deadlines(subscription, state.clock.now(), 0);
    Ok(Loaded { subscription, version, due })
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

/// The state after appending `envelopes` to `loaded`, and the append itself: the events of the
/// deadlines `load` reached, then `envelopes`.
pub fn prepare(
    id: SubscriptionId,
    loaded: &Loaded,
    envelopes: Vec<EventEnvelope>,
) -> (Option<Subscription>, StreamAppend) {
    let after = fold(loaded.subscription.clone(), &envelopes).state;
    (after, append(id, loaded, envelopes))
}

/// The append alone, for a caller that already holds the state after it (the Metering API
/// folds each accepted report as it decides the next): the events of the deadlines `load`
/// reached, then `envelopes`.
pub fn append(id: SubscriptionId, loaded: &Loaded, envelopes: Vec<EventEnvelope>) -> StreamAppend {
    let mut events = loaded.due.clone();
    events.extend(envelopes);
    StreamAppend { subscription_id: id, expected_version: loaded.version, events }
}

/// Parses a subscription id from a path; anything that is not a UUID is simply not found.
pub fn parse_subscription_id(raw: &str) -> Result<SubscriptionId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("subscription not found".into()))
}
