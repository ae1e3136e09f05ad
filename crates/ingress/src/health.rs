//! Liveness and readiness. `/healthz` says the process answers; `/readyz` says it can take
//! writes (the log answers) and its read models are being kept up to date.

use crate::error::problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Always 200 while the process serves HTTP.
pub(crate) async fn live() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// 200 when the log and the projector are healthy, 503 problem+json otherwise.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let log = state.log.is_ready().await;
    let projector = state.projector_healthy.as_ref().map(|h| *h.borrow()).unwrap_or(true);
    if log && projector {
        return axum::Json(json!({ "status": "ready", "log": true, "projector": true })).into_response();
    }
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "the service is not ready",
        json!({ "log": log, "projector": projector }),
    );
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS));
    response
}
