//! The SaaS Fulfillment API v2 (`/api/saas/subscriptions/...`), compatible with Microsoft's
//! `saasapi.v2.json`, so an ISV's existing client works by changing only its base URL.
//!
//! Its contract differs from the partner API's in ways clients depend on: rule violations are
//! 400 (not 409/422), `api-version=2018-08-31` is required, `x-ms-requestid` and
//! `x-ms-correlationid` are echoed (or generated), and changes are asynchronous operations
//! (202 with `Operation-Location`). Publishers authenticate with bearer tokens and see only
//! subscriptions of their own offers; anything else is 404.

pub(crate) mod operations;
pub(crate) mod subscriptions;
mod views;

use crate::error::ApiError;
use crate::state::AppState;
use crate::write_model::{load, Loaded};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fulfillment_core::{Rejection, Subscription, SubscriptionId};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

/// The only API version the spec defines.
pub const API_VERSION: &str = "2018-08-31";

/// Seconds a client should wait before polling an operation.
const OPERATION_RETRY_AFTER_SECONDS: u32 = 5;

/// The `/api` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/saas/subscriptions/resolve", post(subscriptions::resolve))
        .route("/saas/subscriptions", get(subscriptions::list))
        .route("/saas/subscriptions/", get(subscriptions::list))
        .route(
            "/saas/subscriptions/{id}",
            get(subscriptions::get).patch(subscriptions::update).delete(subscriptions::delete),
        )
        .route("/saas/subscriptions/{id}/listAvailablePlans", get(subscriptions::plans))
        .route("/saas/subscriptions/{id}/activate", post(subscriptions::activate))
        .route("/saas/subscriptions/{id}/operations", get(operations::list))
        .route("/saas/subscriptions/{id}/operations/{operation_id}", get(operations::get).patch(operations::update))
}

/// What every route under `/api` (the SaaS API and the Metering API) answers by: a required
/// `api-version`, and request and correlation ids echoed.
pub fn api_conventions(routes: Router<AppState>) -> Router<AppState> {
    routes.layer(axum::middleware::from_fn(require_api_version)).layer(axum::middleware::from_fn(request_ids))
}

/// Echoes `x-ms-requestid` and `x-ms-correlationid`, generating them when absent, on every
/// answer including errors.
async fn request_ids(request: Request, next: Next) -> Response {
    let (request_id, correlation_id) = {
        let id = |name: &str| {
            request.headers().get(name).filter(|v| !v.is_empty() && v.len() <= 128).cloned().unwrap_or_else(|| {
                HeaderValue::from_str(&Uuid::new_v4().to_string()).expect("a UUID is a valid header value")
            })
        };
        (id("x-ms-requestid"), id("x-ms-correlationid"))
    };
    let span = tracing::info_span!("saas_api", request_id = ?request_id, correlation_id = ?correlation_id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    response.headers_mut().insert("x-ms-requestid", request_id);
    response.headers_mut().insert("x-ms-correlationid", correlation_id);
    response
}

/// Refuses requests without `api-version=2018-08-31` (400 problem).
async fn require_api_version(request: Request, next: Next) -> Response {
    let version = request.uri().query().unwrap_or("").split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "api-version").then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
    });
    match version.as_deref() {
        Some(API_VERSION) => next.run(request).await,
        Some(other) => ApiError::BadRequest {
            field: "api-version".into(),
            message: format!("unsupported api-version {other:?}; use {API_VERSION}"),
        }
        .into_response(),
        None => ApiError::BadRequest {
            field: "api-version".into(),
            message: format!("the api-version query parameter is required; use {API_VERSION}"),
        }
        .into_response(),
    }
}

/// Maps a domain rejection to the SaaS API's statuses: 404 for unknown subscriptions and
/// operations, 409 when an operation update conflicts, 400 for everything else.
pub(crate) fn rejection(r: Rejection) -> ApiError {
    match r {
        Rejection::NotFound => ApiError::NotFound("subscription not found".into()),
        Rejection::OperationNotFound => ApiError::NotFound("operation not found".into()),
        // A suspended subscription's plan and quantity wait for its reinstatement: a conflict
        // with its state, as on the partner API, not a bad request.
        Rejection::OperationAlreadyCompleted { .. }
        | Rejection::NewerOperationCompleted { .. }
        | Rejection::Suspended { .. } => ApiError::Conflict { code: r.code().into(), message: r.to_string() },
        Rejection::InvalidField { field, message } => ApiError::BadRequest { field: field.into(), message },
        other => ApiError::Rejected { code: other.code().into(), message: other.to_string() },
    }
}

/// Loads a subscription from the log, 404 unless it belongs to `publisher_id`.
pub(crate) async fn load_owned(
    state: &AppState,
    publisher_id: &str,
    raw_id: &str,
) -> Result<(SubscriptionId, Loaded), ApiError> {
    let not_found = || ApiError::NotFound("subscription not found".into());
    let id: SubscriptionId = raw_id.parse().map_err(|_| not_found())?;
    let loaded = load(state, id).await?;
    match &loaded.subscription {
        Some(s) if s.purchase.publisher_id == publisher_id => Ok((id, loaded)),
        _ => Err(not_found()),
    }
}

/// The subscription inside a [`Loaded`] state known to hold one.
pub(crate) fn current(loaded: &Loaded) -> Result<&Subscription, ApiError> {
    loaded.subscription.as_ref().ok_or_else(|| ApiError::NotFound("subscription not found".into()))
}

/// A quantity as real clients send it: a number, a numeric string, or empty (`""`, `null`).
pub(crate) fn lenient_quantity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(u64),
        Text(String),
        Nothing(()),
    }
    let invalid =
        |what: &str| serde::de::Error::custom(format!("expected a quantity from 0 to {}, got {what}", u32::MAX));
    match Loose::deserialize(deserializer).map_err(|_| invalid("something else"))? {
        Loose::Number(n) => u32::try_from(n).map(Some).map_err(|_| invalid(&n.to_string())),
        Loose::Text(t) if t.trim().is_empty() => Ok(None),
        Loose::Text(t) => t.trim().parse::<u32>().map(Some).map_err(|_| invalid(&format!("{t:?}"))),
        Loose::Nothing(()) => Ok(None),
    }
}

/// A 202 for an accepted operation, with the headers real clients poll with.
pub(crate) fn accepted_operation(state: &AppState, subscription_id: SubscriptionId, operation_id: Uuid) -> Response {
    let location = format!(
        "{}/api/saas/subscriptions/{subscription_id}/operations/{operation_id}?api-version={API_VERSION}",
        state.links_base()
    );
    let mut response = axum::http::StatusCode::ACCEPTED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert("operation-location", v);
    }
    if let Ok(v) = HeaderValue::from_str(&operation_id.to_string()) {
        h.insert("operation-id", v);
    }
    h.insert("retry-after", HeaderValue::from(OPERATION_RETRY_AFTER_SECONDS));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "lenient_quantity")]
        quantity: Option<u32>,
    }

    fn quantity(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json).map(|b| b.quantity).map_err(|e| e.to_string())
    }

    #[test]
    fn quantities_are_read_the_way_real_clients_send_them() {
        assert_eq!(quantity(r#"{"quantity": 20}"#), Ok(Some(20)));
        assert_eq!(quantity(r#"{"quantity": "20"}"#), Ok(Some(20)));
        assert_eq!(quantity(r#"{"quantity": " 7 "}"#), Ok(Some(7)));
        assert_eq!(quantity(r#"{"quantity": ""}"#), Ok(None));
        assert_eq!(quantity(r#"{"quantity": null}"#), Ok(None));
        assert_eq!(quantity(r#"{}"#), Ok(None));
        assert!(quantity(r#"{"quantity": -1}"#).is_err());
        assert!(quantity(r#"{"quantity": "lots"}"#).is_err());
        assert!(quantity(r#"{"quantity": 1.5}"#).is_err());
        assert!(quantity(r#"{"quantity": 99999999999}"#).is_err());
    }
}
