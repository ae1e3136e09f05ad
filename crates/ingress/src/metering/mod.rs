//! The Marketplace Metering Service API v1 (`/api/usageEvent`, `/api/batchUsageEvent`,
//! `/api/usageEvents`), compatible with Microsoft's `meteringapi.v1.json`, so a publisher's
//! existing metering client works by changing only its base URL.
//!
//! Publishers report usage of their plans' custom dimensions (configured per plan,
//! `metering_dimensions`) with their SaaS API token; the rules are core's
//! (`fulfillment_core::UsageReport`): an active subscription of the caller's, its current
//! plan, a configured dimension, a quantity above zero, at most 24 hours late, one accepted
//! report per dimension and hour. Each accepted report is a `subscription.usage_reported`
//! event in the subscription's stream, folded into `billing.usage` and the usage read model.
//!
//! Conventions shared with the SaaS API (`api-version=2018-08-31` required, `x-ms-requestid` and
//! `x-ms-correlationid` echoed) come from [`crate::saas::api_conventions`]. Answers: a single
//! event is 200 when accepted, 409 `Duplicate` with the accepted event, 403 for another
//! publisher's subscription, 400 with the spec's `code`/`target`/`details` otherwise; a batch is
//! 200 with each item's own status, 400 only when the body itself is unusable.

mod read_back;
mod report;
mod request;
mod status;
mod views;

use crate::body::parse_json;
use crate::body::RawBody;
use crate::error::ApiError;
use crate::security::bearer::PublisherCaller;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use request::UsageItem;
use serde_json::{json, Value};
use status::ItemError;
use tracing::{info, Instrument};

/// The metering routes (nested under `/api` with the SaaS API's conventions).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/usageEvent", post(usage_event))
        .route("/batchUsageEvent", post(batch_usage_event))
        .route("/usageEvents", get(read_back::usage_events))
}

/// Reads a body as strict JSON; malformed is the spec's 400 `BadArgument`.
fn json_body(body: &RawBody) -> Result<Value, ApiError> {
    parse_json::<Value>(&body.0).map_err(|e| request::bad_body(e.to_string()))
}

/// A request the Metering API cannot read at all: 400 in the spec's `BadArgument` shape.
fn unreadable(error: ApiError) -> Response {
    match error {
        ApiError::BadRequest { field, message } => {
            status::single_error(&ItemError::new(status::UsageStatus::BadArgument, &field, message), None)
        }
        other => other.into_response(),
    }
}

/// `POST /usageEvent`: one usage event.
async fn usage_event(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    body: RawBody,
) -> Result<Response, ApiError> {
    let raw = match json_body(&body) {
        Ok(raw) => raw,
        Err(error) => return Ok(unreadable(error)),
    };
    let item: Result<UsageItem, ItemError> = request::usage_item(&raw);
    let resource_id = item.as_ref().ok().map(|i| i.resource_id);
    let span =
        tracing::info_span!("usage_event", publisher_id = %publisher.id, subscription_id = tracing::field::Empty);
    if let Some(id) = resource_id {
        span.record("subscription_id", tracing::field::display(id));
    }
    let outcome = report::record(&state, &publisher.id, std::slice::from_ref(&item)).instrument(span.clone()).await?;
    let _entered = span.enter();
    match outcome.into_iter().next() {
        Some(Ok(accepted)) => {
            info!(usage_event_id = %accepted.usage_event_id, dimension = %accepted.dimension, "usage accepted");
            let id = resource_id.ok_or_else(|| ApiError::Internal("accepted usage without a resource".into()))?;
            Ok(axum::Json(views::accepted(id, &accepted, status::UsageStatus::Accepted)).into_response())
        }
        Some(Err(error)) => {
            info!(status = error.status.as_str(), "usage refused");
            Ok(status::single_error(&error, resource_id))
        }
        None => Err(ApiError::Internal("no outcome for the usage event".into())),
    }
}

/// `POST /batchUsageEvent`: up to 25 usage events, each answered on its own.
async fn batch_usage_event(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    body: RawBody,
) -> Result<Response, ApiError> {
    let raw_items = match json_body(&body).and_then(request::batch_items) {
        Ok(items) => items,
        Err(error) => return Ok(unreadable(error)),
    };
    let items: Vec<Result<UsageItem, ItemError>> = raw_items.iter().map(request::usage_item).collect();
    let span = tracing::info_span!("batch_usage_event", publisher_id = %publisher.id, items = items.len());
    let outcomes = report::record(&state, &publisher.id, &items).instrument(span.clone()).await?;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    span.in_scope(|| info!(accepted, refused = outcomes.len() - accepted, "usage batch recorded"));
    let result: Vec<Value> = raw_items
        .iter()
        .zip(&items)
        .zip(&outcomes)
        .map(|((raw, item), outcome)| views::batch_item(raw, item.as_ref().ok(), outcome))
        .collect();
    Ok(axum::Json(json!({ "result": result, "count": result.len() })).into_response())
}
