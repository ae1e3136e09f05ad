//! Idempotent writes, as one reusable flow rather than code repeated in handlers.
//!
//! A write with a key (a webhook's `webhook-id`, a partner's `Idempotency-Key`) stores its
//! answer in the same log transaction as its events. A repeat with the same request gets the
//! stored answer (marked `Idempotent-Replayed: true`); a different request under the same key
//! is a 422. Two racing deliveries of one key cannot both append: the log's unique key lets one
//! commit and the other replays its answer. Records are kept for a retention period
//! ([`IdempotencyRetention`], seven days by default) and then deleted by [`forget_expired`]; a
//! request repeated after that is decided anew, which the domain answers without a second fact
//! (a change to the value already held decides no events, a stale webhook timestamp is refused).

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fulfillment_log::{AppendBatch, IdempotencyRecord, LogError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::debug;

/// How often a write is decided again after losing a race on its subscription.
const MAX_ATTEMPTS: usize = 8;

/// Longest idempotency key accepted.
const MAX_KEY_CHARS: usize = 255;

/// An answer as stored for replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
    /// `Location` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `ETag` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl StoredResponse {
    /// Renders the answer; `replayed` marks answers served from the store.
    pub fn render(&self, replayed: bool) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, axum::Json(self.body.clone())).into_response();
        let headers = response.headers_mut();
        for (name, value) in [(header::LOCATION, &self.location), (header::ETAG, &self.etag)] {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
        if replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// A key and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Namespace (`partner:<id>`, `webhook:<publisher>`).
    pub scope: String,
    /// The caller's key.
    pub key: String,
    /// SHA-256 of what identifies the request (method, path, body).
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// Builds a key from its parts, fingerprinting `request_parts`.
    pub fn new(scope: String, key: String, request_parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in request_parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        IdempotencyKey { scope, key, fingerprint: format!("{:x}", hash.finalize()) }
    }

    /// Reads an optional `Idempotency-Key` header (400 when unusable).
    pub fn from_header(headers: &HeaderMap, scope: String, request_parts: &[&[u8]]) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value.to_str().map_err(|_| ApiError::BadRequest {
            field: "Idempotency-Key".into(),
            message: "must be visible ASCII".into(),
        })?;
        if key.is_empty() || key.len() > MAX_KEY_CHARS {
            return Err(ApiError::BadRequest {
                field: "Idempotency-Key".into(),
                message: format!("must be 1 to {MAX_KEY_CHARS} characters"),
            });
        }
        Ok(Some(IdempotencyKey::new(scope, key.to_owned(), request_parts)))
    }
}

/// Runs a write: `attempt` decides against fresh state and returns what to append and what to
/// answer. Handles replays of stored answers, races (decide again), and the 2xx-only-after-
/// commit rule. Returns the answer and whether it was replayed.
pub async fn write<F, Fut>(
    state: &AppState,
    key: Option<&IdempotencyKey>,
    mut attempt: F,
) -> Result<(StoredResponse, bool), ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(AppendBatch, StoredResponse), ApiError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Some(key) = key {
            if let Some(stored) = state.log.idempotency_record(&key.scope, &key.key).await? {
                return replay(key, stored).map(|r| (r, true));
            }
        }
        let (mut batch, response) = attempt().await?;
        if let Some(key) = key {
            batch.idempotency = Some(IdempotencyRecord {
                scope: key.scope.clone(),
                key: key.key.clone(),
                fingerprint: key.fingerprint.clone(),
                response: serde_json::to_value(&response).map_err(|e| ApiError::Internal(e.to_string()))?,
            });
        }
        if batch.streams.iter().all(|s| s.events.is_empty()) && batch.idempotency.is_none() {
            return Ok((response, false));
        }
        match state.log.append(batch).await {
            Ok(_) => return Ok((response, false)),
            Err(LogError::Conflict { subscription_id, .. }) => {
                debug!(%subscription_id, "lost a race on the subscription; deciding again");
            }
            Err(LogError::DuplicateIdempotencyKey) => {
                debug!("a concurrent request with the same key committed first")
            }
            Err(LogError::DuplicateEventId(id)) => {
                debug!(event_id = %id, "event id collision; deciding again")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable("too many concurrent changes to the same subscription".into()))
}

fn replay(key: &IdempotencyKey, stored: IdempotencyRecord) -> Result<StoredResponse, ApiError> {
    if stored.fingerprint != key.fingerprint {
        return Err(ApiError::IdempotencyKeyReused(format!(
            "key {:?} was already used for a different request; use a new key for a new request",
            key.key
        )));
    }
    serde_json::from_value(stored.response)
        .map_err(|e| ApiError::Internal(format!("stored idempotent answer unreadable: {e}")))
}

/// How long idempotency records are kept, and how often the expired ones are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyRetention {
    /// Age after which a record is deleted: longer than any client's retry window (webhook
    /// senders retry for up to 8 hours).
    pub keep: std::time::Duration,
    /// Time between sweeps.
    pub sweep_every: std::time::Duration,
}

impl Default for IdempotencyRetention {
    /// Seven days, swept hourly.
    fn default() -> Self {
        IdempotencyRetention {
            keep: std::time::Duration::from_secs(7 * 24 * 3600),
            sweep_every: std::time::Duration::from_secs(3600),
        }
    }
}

/// Deletes the records older than the retention, at start and then every `sweep_every`, until
/// `shutdown`. The events they answered for stay in the log.
pub async fn forget_expired(
    log: std::sync::Arc<dyn fulfillment_log::EventLog>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    retention: IdempotencyRetention,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let keep = chrono::Duration::from_std(retention.keep).unwrap_or(chrono::Duration::MAX);
    let mut every = tokio::time::interval(retention.sweep_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let cutoff = clock.now().checked_sub_signed(keep).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        match log.forget_idempotency_before(cutoff).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, %cutoff, "idempotency records past their retention deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "deleting expired idempotency records failed; retrying at the next sweep")
            }
        }
    }
}
