//! SaaS API operations: list the outstanding ones, read one, and report an outcome.

use super::{current, load_owned, rejection, views};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::idempotency::{self, StoredResponse};
use crate::security::bearer::PublisherCaller;
use crate::state::AppState;
use crate::write_model::{envelopes, prepare};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fulfillment_core::{decide, Command, OperationOutcome, OperationStatus, Source, SourceKind};
use fulfillment_log::AppendBatch;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;
use uuid::Uuid;

/// `GET /saas/subscriptions/{id}/operations`: operations still in progress.
pub(crate) async fn list(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (_, loaded) = load_owned(&state, &publisher.id, &id).await?;
    let s = current(&loaded)?;
    let outstanding: Vec<Value> = s
        .operations
        .iter()
        .filter(|o| o.status == OperationStatus::InProgress)
        .map(|o| views::operation(s, o))
        .collect();
    Ok(axum::Json(json!({ "operations": outstanding })))
}

fn operation_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("operation not found".into()))
}

/// `GET /saas/subscriptions/{id}/operations/{operationId}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path((id, op)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let (_, loaded) = load_owned(&state, &publisher.id, &id).await?;
    let s = current(&loaded)?;
    let operation = s.operation(operation_id(&op)?).ok_or_else(|| ApiError::NotFound("operation not found".into()))?;
    Ok(axum::Json(views::operation(s, operation)))
}

/// The spec's `UpdateOperation`; `planId` and `quantity` are accepted and ignored (the
/// operation already says what it changes).
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateOperation {
    status: String,
}

/// Reads an operation update body: `status` is `Success` or `Failure`, anything else is 400.
/// The handler and the fuzz target run this same code.
pub(crate) fn operation_outcome(body: Result<UpdateOperation, ApiError>) -> Result<OperationOutcome, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(ApiError::Invalid(errors)) => {
            let (field, message) = errors
                .into_iter()
                .next()
                .map(|e| (e.field, e.message))
                .unwrap_or_else(|| ("status".into(), String::new()));
            return Err(ApiError::BadRequest { field, message });
        }
        Err(other) => return Err(other),
    };
    match body.status.as_str() {
        "Success" => Ok(OperationOutcome::Succeeded),
        "Failure" => Ok(OperationOutcome::Failed),
        other => Err(ApiError::BadRequest {
            field: "status".into(),
            message: format!("status must be \"Success\" or \"Failure\", not {other:?}"),
        }),
    }
}

/// `PATCH /saas/subscriptions/{id}/operations/{operationId}` with `Success` or `Failure`.
pub(crate) async fn update(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path((id, op)): Path<(String, String)>,
    body: Result<JsonBody<UpdateOperation>, ApiError>,
) -> Result<Response, ApiError> {
    let outcome = operation_outcome(body.map(|b| b.value))?;
    let operation_id = operation_id(&op)?;
    idempotency::write(&state, None, || async {
        let (id, loaded) = load_owned(&state, &publisher.id, &id).await?;
        let s = current(&loaded)?;
        let now = state.clock.now();
        let events = decide(Some(s), &Command::CompleteOperation { operation_id, outcome }, now).map_err(rejection)?;
        let source = Source { kind: SourceKind::Publisher, actor_id: publisher.id.clone() };
        let (_, stream) = prepare(id, &loaded, envelopes(id, &source, now, now, events));
        let response = StoredResponse { status: 200, body: Value::Null, location: None, etag: None };
        Ok((AppendBatch { streams: vec![stream], idempotency: None }, response))
    })
    .await?;
    info!(publisher_id = %publisher.id, subscription_id = %id, operation_id = %operation_id, ?outcome, "operation completed");
    Ok(StatusCode::OK.into_response())
}
