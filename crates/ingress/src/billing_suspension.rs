//! `POST /v1/billing/subscriptions/{subscriptionId}/suspend` and `.../reinstate`: a billing
//! system tells us a payment failed (suspend, with a reason) or was settled (reinstate).
//! Suspended, a subscription bills nothing and accepts no quantity or plan change; still
//! suspended after `policy.suspension_grace_days`, the scheduler cancels it.
//!
//! In: an authenticated billing consumer, the subscription id, `{"reason": "..."}` to suspend
//! (nothing, or a JSON object, to reinstate), an optional `Idempotency-Key`. Out: 200 with the
//! subscription's status and suspension; 404 for an unknown subscription; 409 when it is not
//! active (suspend, `not-subscribed`) or not suspended (reinstate, `not-suspended`); a retry is
//! answered from its idempotency record. The event is recorded with source `system`, actor
//! `billing:<consumer id>`.

use crate::body::{parse_json, RawBody};
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::security::bearer::BillingCaller;
use crate::state::AppState;
use crate::write_model::{envelopes, load, parse_subscription_id, prepare};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use fulfillment_core::{decide, Command, Source, SourceKind, Subscription};
use fulfillment_log::AppendBatch;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, Instrument};

/// The suspension routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/billing/subscriptions/{subscription_id}/suspend", post(suspend))
        .route("/v1/billing/subscriptions/{subscription_id}/reinstate", post(reinstate))
}

/// Read strictly (JSON object, no repeated key); unknown fields are ignored, as everywhere.
#[derive(Deserialize)]
struct SuspendRequest {
    reason: String,
}

#[derive(Deserialize)]
struct ReinstateRequest {}

/// `POST .../suspend` with `{"reason": "paymentFailed"}`.
async fn suspend(
    State(state): State<AppState>,
    caller: BillingCaller,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> Result<Response, ApiError> {
    let SuspendRequest { reason } = parse_json(&raw)?;
    let command = Command::Suspend { reason, grace: state.directory.policy.suspension_grace };
    change(&state, &caller, &raw_id, "suspend", &headers, &raw, command).await
}

/// `POST .../reinstate`, with no body or `{}`.
async fn reinstate(
    State(state): State<AppState>,
    caller: BillingCaller,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> Result<Response, ApiError> {
    if !raw.is_empty() {
        let ReinstateRequest {} = parse_json(&raw)?;
    }
    change(&state, &caller, &raw_id, "reinstate", &headers, &raw, Command::Reinstate).await
}

/// Decides `command` against the subscription's stream and appends its event (once per
/// idempotency key).
async fn change(
    state: &AppState,
    caller: &BillingCaller,
    raw_id: &str,
    action: &str,
    headers: &HeaderMap,
    raw: &[u8],
    command: Command,
) -> Result<Response, ApiError> {
    let id = parse_subscription_id(raw_id)?;
    let path = format!("/v1/billing/subscriptions/{id}/{action}");
    let key = IdempotencyKey::from_header(headers, format!("billing:{}", caller.id), &[b"POST", path.as_bytes(), raw])?;
    let span = tracing::info_span!("billing_suspension", subscription_id = %id, consumer_id = %caller.id, action);
    let source = Source { kind: SourceKind::System, actor_id: format!("billing:{}", caller.id) };
    let (response, replayed) = idempotency::write(state, key.as_ref(), || {
        async {
            let loaded = load(state, id).await?;
            let current =
                loaded.subscription.as_ref().ok_or_else(|| ApiError::NotFound("subscription not found".into()))?;
            let now = state.clock.now();
            let events = decide(Some(current), &command, now).map_err(|r| ApiError::from_rejection(r, ""))?;
            let (after, stream) = prepare(id, &loaded, envelopes(id, &source, now, now, events));
            let after = after.ok_or_else(|| ApiError::Internal("subscription vanished while folding".into()))?;
            let batch = AppendBatch { streams: vec![stream], idempotency: None };
            Ok((batch, StoredResponse { status: 200, body: view(&after), location: None, etag: None }))
        }
        .instrument(span.clone())
    })
    .await?;
    if !replayed {
        span.in_scope(
            || info!(status = %response.body["status"], "billing system changed a subscription's suspension"),
        );
    }
    Ok(response.render(replayed))
}

/// What the billing system is answered: where the subscription stands now.
fn view(s: &Subscription) -> Value {
    json!({
        "subscriptionId": s.id,
        "status": s.status.partner_center_name(),
        "saasSubscriptionStatus": s.status.saas_name(),
        "suspension": s.suspension_in_force(),
    })
}
