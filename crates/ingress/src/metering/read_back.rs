//! `GET /usageEvents`: the publisher's accepted usage events, read back from the usage read
//! model. Filters as the spec names them: `usageStartDate` (required), `UsageEndDate` (default
//! now), `offerId`, `planId`, `dimension`, `azureSubscriptionId`, `reconStatus`.
//!
//! SaaS usage has no Azure subscription, so a filter on one matches nothing; every accepted
//! event's reconciliation status is `Accepted`. Unknown parameters are refused (strict input),
//! and an answer is at most [`MAX_RECORDS`] events: a wider query is asked to narrow its range.

use super::request::parse_date_or_instant;
use super::views;
use crate::error::ApiError;
use crate::security::bearer::PublisherCaller;
use crate::state::AppState;
use axum::extract::{Query, State};
use chrono::Duration;
use fulfillment_read_model::UsageFilter;
use serde_json::Value;
use std::collections::HashMap;

/// Most usage events one answer holds.
pub const MAX_RECORDS: u32 = 10_000;

/// The query parameters this operation takes.
const PARAMETERS: [&str; 9] = [
    "api-version",
    "usageStartDate",
    "UsageEndDate",
    "usageEndDate",
    "offerId",
    "planId",
    "dimension",
    "azureSubscriptionId",
    "reconStatus",
];

/// The reconciliation statuses of the spec's `ReconStatus`.
const RECON_STATUSES: [&str; 4] = ["Submitted", "Accepted", "Rejected", "Mismatch"];

fn bad(field: &str, message: String) -> ApiError {
    ApiError::BadRequest { field: field.into(), message }
}

/// `GET /usageEvents`.
pub(super) async fn usage_events(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(bad(unknown, format!("unknown query parameter {unknown:?}")));
    }
    let text = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let start = text("usageStartDate").ok_or_else(|| bad("usageStartDate", "usageStartDate is required".into()))?;
    let (start, _) = parse_date_or_instant(start)
        .ok_or_else(|| bad("usageStartDate", format!("{start:?} is not a date (2020-12-03) or date-time")))?;
    // Events are kept by hour: a start inside an hour includes that hour.
    let from = fulfillment_core::usage_hour(start);
    let to = match text("UsageEndDate").or_else(|| text("usageEndDate")) {
        None => state.clock.now(),
        Some(end) => match parse_date_or_instant(end) {
            // A bare end date includes that whole day.
            Some((day, true)) => day
                .checked_add_signed(Duration::days(1))
                .ok_or_else(|| bad("UsageEndDate", format!("{end:?} is out of range")))?,
            Some((instant, false)) => instant,
            None => return Err(bad("UsageEndDate", format!("{end:?} is not a date (2020-12-03) or date-time"))),
        },
    };
    if to < from {
        return Err(bad("UsageEndDate", "UsageEndDate is before usageStartDate".into()));
    }
    if let Some(recon) = text("reconStatus").filter(|r| !RECON_STATUSES.contains(r)) {
        return Err(bad("reconStatus", format!("{recon:?} is not one of {}", RECON_STATUSES.join(", "))));
    }
    let matches_nothing = text("azureSubscriptionId").is_some() || text("reconStatus").is_some_and(|r| r != "Accepted");
    if matches_nothing {
        return Ok(axum::Json(Value::Array(Vec::new())));
    }
    let filter = UsageFilter {
        publisher_id: publisher.id.clone(),
        from,
        to,
        offer_id: text("offerId").map(str::to_owned),
        plan_id: text("planId").map(str::to_owned),
        dimension: text("dimension").map(str::to_owned),
        limit: MAX_RECORDS + 1,
    };
    state.catch_up().await?;
    let records = state.usage.usage_events(&filter).await?;
    if records.len() > MAX_RECORDS as usize {
        return Err(bad(
            "usageStartDate",
            format!(
                "more than {MAX_RECORDS} usage events match; narrow the dates or filter by offer, plan or dimension"
            ),
        ));
    }
    Ok(axum::Json(records.iter().map(|r| views::read_back(&state.directory, r)).collect()))
}
