//! `GET /v1/billing/events?after=<cursor>&limit=N`: the billing feed of the embedded mode.
//! Cursor-paged over the outbox: the cursor of an event never changes, and events only ever
//! appear after the last cursor, so a consumer that stores its cursor reads each event once
//! (and dedupes by the deterministic event `id` when it cannot store cursors atomically).

use crate::error::ApiError;
use crate::security::bearer::BillingCaller;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The billing feed's route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/billing/events", get(list))
}

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
const MAX_LIMIT: u32 = 1000;

fn param<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
    default: T,
    check: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<T, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<T>()
            .ok()
            .filter(|v| check(v))
            .ok_or_else(|| ApiError::BadRequest { field: name.into(), message: format!("{name} must be {expected}") }),
    }
}

/// One page of billing events.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: BillingCaller,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest { field: "query".into(), message: e.body_text() })?;
    let after: u64 = param(&query, "after", 0, |_| true, "a cursor returned by this feed (a non-negative integer)")?;
    let limit: u32 = param(
        &query,
        "limit",
        DEFAULT_LIMIT,
        |l| (1..=MAX_LIMIT).contains(l),
        &format!("an integer from 1 to {MAX_LIMIT}"),
    )?;
    tracing::debug!(consumer = %caller.id, after, limit, "billing feed read");
    state.catch_up().await?;
    let mut entries = state.billing_feed.billing_events(after, limit + 1).await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = entries.last().map(|e| e.sequence).unwrap_or(after);
    let items: Vec<Value> =
        entries.into_iter().map(|e| json!({ "cursor": e.sequence.to_string(), "event": e.event })).collect();
    Ok(axum::Json(json!({ "items": items, "nextCursor": next_cursor.to_string(), "hasMore": has_more })))
}
