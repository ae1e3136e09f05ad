//! Liveness and readiness. `/healthz` says the process answers; `/readyz` says it can take
//! writes (the log answers) and its read models are being kept up to date.

use crate::error::problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// `/healthz` and `/readyz` of the API's router.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(live)).route("/readyz", get(ready))
}

/// Always 200 while the process serves HTTP.
pub(crate) async fn live() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// 200 when the log and every background component (projector, billing relay) are healthy,
/// 503 problem+json otherwise.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let log = state.log.is_ready().await;
    readiness(Some(log), &state.health)
}

/// The readiness answer: every named check, and `status` when all pass.
fn readiness(log: Option<bool>, checks: &HealthChecks) -> Response {
    let mut report = serde_json::Map::new();
    if let Some(log) = log {
        report.insert("log".into(), json!(log));
    }
    for (name, healthy) in &checks.components {
        report.insert((*name).to_owned(), json!(*healthy.borrow()));
    }
    if report.values().all(|v| v == &json!(true)) {
        report.insert("status".into(), json!("ready"));
        return axum::Json(serde_json::Value::Object(report)).into_response();
    }
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "the service is not ready",
        serde_json::Value::Object(report),
    );
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS));
    response
}

/// The background components a process runs (projector, billing relay), reported by name on
/// `/readyz`, which is ready only when every one is healthy.
#[derive(Clone, Default)]
pub struct HealthChecks {
    /// `(name, healthy)` per component, for example `("projector", ...)`, `("billingRelay", ...)`.
    pub components: Vec<(&'static str, tokio::sync::watch::Receiver<bool>)>,
}

/// `/healthz` and `/readyz` alone, for processes that serve no API but must be probed by an
/// orchestrator (the projector in docker-compose).
pub fn health_router(checks: HealthChecks) -> Router {
    Router::new().route("/healthz", get(live)).route("/readyz", get(components_ready)).with_state(checks)
}

async fn components_ready(State(checks): State<HealthChecks>) -> Response {
    readiness(None, &checks)
}
