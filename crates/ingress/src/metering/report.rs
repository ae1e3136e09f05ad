//! Recording usage: `POST /usageEvent` and `POST /batchUsageEvent` decide every item
//! against its subscription's state and append the accepted ones in one append.
//!
//! In: the items read from the request (or the status of an unreadable one). Out: each item's
//! outcome, in request order: the accepted report, or why not. Items for the same subscription
//! are decided in order against the state the earlier ones left, so a batch repeating a
//! dimension and hour accepts the first and answers the second `Duplicate`. The append goes
//! through [`idempotency::write`]: if another writer changed one of the subscriptions first,
//! the whole batch is decided again against the new states, so racing reports for the same
//! hour are accepted once, and nothing is answered before the log committed it.

use super::request::UsageItem;
use super::status::{ItemError, UsageStatus};
use crate::error::ApiError;
use crate::idempotency::{self, StoredResponse};
use crate::state::AppState;
use crate::write_model::{append, envelopes, load, Loaded};
use fulfillment_core::{
    decide, fold, AcceptedUsage, Command, EventEnvelope, Plan, Source, SourceKind, Subscription, SubscriptionId,
    UsageReport,
};
use fulfillment_log::AppendBatch;
use std::collections::btree_map::{BTreeMap, Entry};
use std::sync::{Arc, Mutex};

/// What one item came to.
pub type Outcome = Result<AcceptedUsage, ItemError>;

/// One subscription a request reports on: what the append needs of it as loaded (its stream
/// version and the events of the deadlines reached; its state moves to `current`), the state
/// after the items accepted so far, their events, and (once a duplicate needed them) the
/// reports its stream holds.
struct Reported {
    loaded: Loaded,
    current: Option<Subscription>,
    events: Vec<EventEnvelope>,
    recorded: Option<Vec<AcceptedUsage>>,
}

/// Decides and records `items` for `publisher_id`; returns each item's outcome once the accepted
/// ones are committed.
pub async fn record(
    state: &AppState,
    publisher_id: &str,
    items: &[Result<UsageItem, ItemError>],
) -> Result<Vec<Outcome>, ApiError> {
    let decided: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    idempotency::write(state, None, || {
        let decided = decided.clone();
        async move {
            let (batch, outcomes) = decide_all(state, publisher_id, items).await?;
            *decided.lock().map_err(|_| ApiError::Internal("usage outcomes lock poisoned".into()))? = outcomes;
            let response = StoredResponse { status: 200, body: serde_json::Value::Null, location: None, etag: None };
            Ok((batch, response))
        }
    })
    .await?;
    let outcomes =
        std::mem::take(&mut *decided.lock().map_err(|_| ApiError::Internal("usage outcomes lock poisoned".into()))?);
    Ok(outcomes)
}

/// Decides every item against fresh states; returns the append and the outcomes.
async fn decide_all(
    state: &AppState,
    publisher_id: &str,
    items: &[Result<UsageItem, ItemError>],
) -> Result<(AppendBatch, Vec<Outcome>), ApiError> {
    let now = state.clock.now();
    let source = Source { kind: SourceKind::Publisher, actor_id: publisher_id.to_owned() };
    let mut reported: BTreeMap<SubscriptionId, Reported> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                outcomes.push(Err(error.clone()));
                continue;
            }
        };
        let entry = match reported.entry(item.resource_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(vacant) => {
                let mut loaded = load(state, item.resource_id).await?;
                let current = loaded.subscription.take();
                vacant.insert(Reported { loaded, current, events: Vec::new(), recorded: None })
            }
        };
        let mut outcome = decide_one(state, publisher_id, &source, entry, item, now);
        if let Err(error) = &mut outcome {
            if let Some(usage_event_id) = error.duplicate_of {
                error.accepted = accepted_report(state, item.resource_id, usage_event_id, entry).await?.map(Box::new);
            }
        }
        outcomes.push(outcome);
    }
    let streams = reported
        .into_iter()
        .filter(|(_, r)| !r.events.is_empty())
        .map(|(id, r)| append(id, &r.loaded, r.events))
        .collect();
    Ok((AppendBatch { streams, idempotency: None }, outcomes))
}

/// The accepted report a duplicate is answered with: among this request's own events, else
/// from the subscription's stream in the log, read at most once per request (the state keeps
/// only the hours; a duplicate is the rare case, so it pays the read).
async fn accepted_report(
    state: &AppState,
    id: SubscriptionId,
    usage_event_id: uuid::Uuid,
    entry: &mut Reported,
) -> Result<Option<AcceptedUsage>, ApiError> {
    let is_it = |usage: &AcceptedUsage| usage.usage_event_id == usage_event_id;
    if let Some(usage) = entry.events.iter().filter_map(AcceptedUsage::recorded).find(is_it) {
        return Ok(Some(usage));
    }
    if entry.recorded.is_none() {
        let stream = state.log.read_stream(id).await?;
        entry.recorded = Some(stream.iter().filter_map(|e| AcceptedUsage::recorded(&e.envelope)).collect());
    }
    Ok(entry.recorded.iter().flatten().rev().find(|u| is_it(u)).cloned())
}

/// Decides one item against the subscription's running state, keeping its event when accepted.
fn decide_one(
    state: &AppState,
    publisher_id: &str,
    source: &Source,
    entry: &mut Reported,
    item: &UsageItem,
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let s = match &entry.current {
        None => return Err(ItemError::from_rejection(fulfillment_core::Rejection::NotFound)),
        Some(s) if s.purchase.publisher_id != publisher_id => {
            let message = "the subscription is not one of this publisher's offers".to_owned();
            return Err(ItemError::new(UsageStatus::ResourceNotAuthorized, "resourceId", message));
        }
        Some(s) => s,
    };
    let report = UsageReport {
        dimension: item.dimension.clone(),
        quantity: item.quantity,
        effective_start_time: item.effective_start_time,
        plan_id: item.plan_id.clone(),
    };
    let command = Command::ReportUsage { report, plan: catalog_plan(state, s) };
    let events = decide(Some(s), &command, now).map_err(ItemError::from_rejection)?;
    let recorded = envelopes(s.id, source, now, now, events);
    let accepted = recorded.iter().find_map(AcceptedUsage::recorded);
    let accepted =
        accepted.ok_or_else(|| ItemError::new(UsageStatus::Error, "usageEvent", "nothing was recorded".into()))?;
    entry.current = fold(entry.current.take(), &recorded).state;
    entry.events.extend(recorded);
    Ok(accepted)
}

/// The subscription's plan from the catalog; a plan no longer in the catalog has no dimensions,
/// so every report against it is `InvalidDimension`.
fn catalog_plan(state: &AppState, s: &Subscription) -> Plan {
    state.directory.plan_of(&s.purchase).cloned().unwrap_or_else(|| Plan {
        id: s.purchase.plan_id.clone(),
        min_quantity: 0,
        max_quantity: 0,
        terms: Vec::new(),
        metering_dimensions: Vec::new(),
    })
}
