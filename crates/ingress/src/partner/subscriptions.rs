//! A partner's subscriptions: list a customer's, read one, change one (`PATCH` with nickname,
//! quantity, auto-renew, indirect reseller, or `status: "deleted"` to cancel), and read its
//! event history. Another partner's subscription, or a subscription under another customer,
//! is simply not found.

use super::check_customer_id;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::partner::views::{etag, subscription_view};
use crate::security::bearer::PartnerCaller;
use crate::state::AppState;
use crate::write_model::{envelopes, load, parse_subscription_id, prepare};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use fulfillment_core::{apply, decide, Command, Event, Plan, Source, SourceKind, Subscription, SubscriptionId};
use fulfillment_log::{AppendBatch, StoredEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use tracing::{info, Instrument};

/// The subscription routes.
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/customers/{customer_id}/subscriptions", axum::routing::get(list))
        .route("/v1/customers/{customer_id}/subscriptions/{id}", axum::routing::get(get).patch(patch))
        .route("/v1/customers/{customer_id}/subscriptions/{id}/events", axum::routing::get(events))
}

fn owned<'a>(
    s: Option<&'a Subscription>,
    partner: &PartnerCaller,
    customer_id: &str,
) -> Result<&'a Subscription, ApiError> {
    s.filter(|s| s.purchase.partner_id == partner.id && s.purchase.customer_id == customer_id)
        .ok_or_else(|| ApiError::NotFound("subscription not found".into()))
}

/// `GET /v1/customers/{customerId}/subscriptions`.
pub(crate) async fn list(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path(customer_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    check_customer_id(&customer_id)?;
    state.catch_up().await?;
    let subscriptions = state.read_models.customer_subscriptions(&partner.id, &customer_id).await?;
    if subscriptions.is_empty() {
        return Err(ApiError::NotFound("customer not found (no subscriptions bought by this partner)".into()));
    }
    let items: Vec<Value> =
        subscriptions.iter().map(|s| subscription_view(&state.directory, s, state.clock.now())).collect();
    Ok(axum::Json(json!({
        "totalCount": items.len(),
        "items": items,
        "attributes": { "objectType": "Collection" },
    })))
}

fn with_etag(body: Value, s: &Subscription) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(s)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// `GET /v1/customers/{customerId}/subscriptions/{id}[?asOf=<RFC 3339>]`. With `asOf`, the
/// state folded from the events recorded up to that instant (for audits), read from the log.
pub(crate) async fn get(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path((customer_id, id)): Path<(String, String)>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_subscription_id(&id)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest { field: "query".into(), message: e.body_text() })?;
    if let Some(raw) = query.get("asOf") {
        let as_of = chrono::DateTime::parse_from_rfc3339(raw).map_err(|e| ApiError::BadRequest {
            field: "asOf".into(),
            message: format!("asOf must be an RFC 3339 instant such as 2026-01-31T12:00:00Z: {e}"),
        })?;
        let stored = state.log.read_stream(id).await?;
        let known: Vec<_> = stored.into_iter().map(|e| e.envelope).filter(|e| e.recorded_at <= as_of).collect();
        let past = fulfillment_core::fold(None, &known).state;
        let s = owned(past.as_ref(), &partner, &customer_id)?;
        let mut body = subscription_view(&state.directory, s, as_of.to_utc());
        body["asOf"] = as_of.to_rfc3339().into();
        return Ok(axum::Json(body).into_response());
    }
    state.catch_up().await?;
    let found = state.read_models.subscription(id).await?;
    let s = owned(found.as_ref(), &partner, &customer_id)?;
    Ok(with_etag(subscription_view(&state.directory, s, state.clock.now()), s))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionPatch {
    #[serde(default)]
    pub(crate) friendly_name: Option<String>,
    #[serde(default)]
    pub(crate) quantity: Option<u32>,
    #[serde(default)]
    pub(crate) auto_renew_enabled: Option<bool>,
    /// Indirect reseller MPN ID; `null` or absent leaves it as is.
    #[serde(default)]
    pub(crate) partner_id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// Why the partner cancels (kept on the cancellation event).
    #[serde(default)]
    pub(crate) cancellation_reason: Option<String>,
}

/// Turns a patch into commands, in a fixed order. Unchanged fields decide no events, so a
/// client may send back the whole resource it read, as Partner Center clients do. `plan` is
/// the subscription's catalog plan (for quantity bounds).
fn commands(
    patch: &SubscriptionPatch,
    s: &Subscription,
    plan: Option<&Plan>,
) -> Result<(Vec<Command>, Option<Command>), ApiError> {
    let mut changes = Vec::new();
    if let Some(name) = &patch.friendly_name {
        changes.push(Command::ChangeNickname { friendly_name: name.clone() });
    }
    if let Some(quantity) = patch.quantity {
        let plan = plan.ok_or_else(|| ApiError::Conflict {
            code: "plan-unavailable".into(),
            message: format!(
                "plan {} of offer {} is no longer in the catalog",
                s.purchase.plan_id, s.purchase.offer_id
            ),
        })?;
        changes.push(Command::ChangeQuantity { quantity, plan: plan.clone() });
    }
    if let Some(auto_renew) = patch.auto_renew_enabled {
        changes.push(Command::SetAutoRenew { auto_renew });
    }
    if let Some(mpn_id) = patch.partner_id.as_ref().filter(|m| !m.is_empty()) {
        changes.push(Command::SetIndirectReseller { mpn_id: mpn_id.clone() });
    }
    // `deleted` always means "cancel", so cancelling twice is refused (409), as Partner Center does.
    let cancel = match patch.status.as_deref() {
        None => None,
        Some("deleted") => Some(Command::Cancel {
            reason: patch.cancellation_reason.clone().unwrap_or_else(|| "cancelled by partner".into()),
            by: SourceKind::Partner,
            operation_id: None,
        }),
        Some(current) if current == s.status.partner_center_name() => None,
        Some("active") | Some("pending") => {
            return Err(ApiError::Conflict {
                code: "status-not-settable".into(),
                message: "status can only be changed to \"deleted\" (cancel); it becomes active when the publisher completes fulfillment".into(),
            })
        }
        Some(other) => {
            return Err(ApiError::invalid("status", format!("unknown status {other:?}; the only status a partner sets is \"deleted\"")))
        }
    };
    Ok((changes, cancel))
}

/// `PATCH /v1/customers/{customerId}/subscriptions/{id}`.
pub(crate) async fn patch(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path((customer_id, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<SubscriptionPatch>,
) -> Result<Response, ApiError> {
    let id = parse_subscription_id(&raw_id)?;
    let path = format!("/v1/customers/{customer_id}/subscriptions/{id}");
    let key = IdempotencyKey::from_header(
        &headers,
        format!("partner:{}", partner.id),
        &[Method::PATCH.as_str().as_bytes(), path.as_bytes(), &body.raw],
    )?;
    let if_match = headers.get(header::IF_MATCH).map(|v| v.to_str().unwrap_or("").trim().to_owned());
    let (response, replayed) =
        change_subscription(&state, &partner, &customer_id, id, &body.value, if_match, key.as_ref()).await?;
    Ok(response.render(replayed))
}

/// The one write path for changing a subscription, shared by the partner API and the console:
/// decides the patch against the subscription's stream and appends the events under `key`.
/// Returns the subscription after the change and whether it is a replay of an earlier answer.
pub(crate) async fn change_subscription(
    state: &AppState,
    partner: &PartnerCaller,
    customer_id: &str,
    id: SubscriptionId,
    patch: &SubscriptionPatch,
    if_match: Option<String>,
    key: Option<&IdempotencyKey>,
) -> Result<(StoredResponse, bool), ApiError> {
    let span = tracing::info_span!("patch_subscription", subscription_id = %id, partner_id = %partner.id);
    let (response, replayed) = idempotency::write(state, key, || {
        async {
            let loaded = load(state, id).await?;
            let current = owned(loaded.subscription.as_ref(), partner, customer_id)?;
            if let Some(expected) = &if_match {
                if expected != "*" && *expected != etag(current) {
                    return Err(ApiError::PreconditionFailed { current: etag(current) });
                }
            }
            let now = state.clock.now();
            let plan = state.directory.plan_of(&current.purchase);
            let (changes, cancel) = commands(patch, current, plan)?;
            // Decide each change against the state the previous ones produce.
            let source = Source { kind: SourceKind::Partner, actor_id: partner.id.clone() };
            let mut working = loaded.subscription.clone();
            let mut events: Vec<Event> = Vec::new();
            for command in &changes {
                let decided = decide(working.as_ref(), command, now).map_err(|r| ApiError::from_rejection(r, ""))?;
                for e in envelopes(id, &source, now, now, decided.clone()) {
                    working = apply(working, &e).0;
                }
                events.extend(decided);
            }
            if let Some(cancel) = &cancel {
                if !events.is_empty() {
                    return Err(ApiError::invalid(
                        "status",
                        "cancel in a request of its own; this one also changes other fields",
                    ));
                }
                events = decide(working.as_ref(), cancel, now).map_err(|r| ApiError::from_rejection(r, ""))?;
            }
            let (after, stream) = prepare(id, &loaded, envelopes(id, &source, now, now, events));
            let after = after.ok_or_else(|| ApiError::Internal("subscription vanished while folding".into()))?;
            let body = subscription_view(&state.directory, &after, now);
            let batch = AppendBatch { streams: vec![stream], idempotency: None };
            Ok((batch, StoredResponse { status: 200, body, location: None, etag: Some(etag(&after)) }))
        }
        .instrument(span.clone())
    })
    .await?;
    if !replayed {
        span.in_scope(|| info!(status = %response.body["status"], version = %response.body["attributes"]["etag"], "subscription patched"));
    }
    Ok((response, replayed))
}

/// `GET /v1/customers/{customerId}/subscriptions/{id}/events`: the subscription's history
/// from the log, each event with what it did (applied, rejected with the reason, or ignored
/// as a duplicate) and the billing events it caused.
pub(crate) async fn events(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path((customer_id, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = parse_subscription_id(&id)?;
    let (entries, _) = timeline(&state, &partner, &customer_id, id).await?;
    let items: Vec<Value> = entries.iter().map(TimelineEntry::to_json).collect();
    Ok(axum::Json(json!({ "totalCount": items.len(), "items": items })))
}

/// What one event did when folded (core's, shared with the console's timeline).
pub(crate) use fulfillment_core::Outcome;

/// One event of a subscription's history with what it did.
#[derive(Debug, Clone)]
pub(crate) struct TimelineEntry {
    /// The event as stored.
    pub(crate) event: StoredEvent,
    /// What folding it did.
    pub(crate) outcome: Outcome,
    /// Billing events it caused: id and type.
    pub(crate) billing: Vec<(uuid::Uuid, &'static str)>,
    /// The subscription's status after it.
    pub(crate) status_after: Option<fulfillment_core::Status>,
}

impl TimelineEntry {
    fn to_json(&self) -> Value {
        let mut item = self.event.envelope.to_json();
        item["position"] = self.event.position.into();
        item["streamVersion"] = self.event.stream_version.into();
        item["outcome"] = match &self.outcome {
            Outcome::Applied => json!({ "result": "applied" }),
            Outcome::Rejected { code, reason } => json!({ "result": "rejected", "code": code, "reason": reason }),
            Outcome::Duplicate => json!({ "result": "duplicate" }),
        };
        item["billingEvents"] =
            self.billing.iter().map(|(id, kind)| json!({ "id": id, "type": kind })).collect::<Vec<_>>().into();
        item["statusAfter"] = self.status_after.map(|s| s.partner_center_name()).into();
        item
    }
}

/// A subscription's history as the partner sees it, read from the log (shared by the events
/// API and the console's timeline), and the state it folds to (strongly consistent, unlike
/// the read models).
pub(crate) async fn timeline(
    state: &AppState,
    partner: &PartnerCaller,
    customer_id: &str,
    id: SubscriptionId,
) -> Result<(Vec<TimelineEntry>, Subscription), ApiError> {
    let stored = state.log.read_stream(id).await?;
    let explained = fulfillment_core::explain(stored, |e| &e.envelope);
    let current = owned(explained.state.as_ref(), partner, customer_id)?.clone();
    let entries = explained
        .entries
        .into_iter()
        .map(|e| TimelineEntry {
            billing: e.billing.iter().map(|b| (b.id, b.kind.type_name())).collect(),
            event: e.event,
            outcome: e.outcome,
            status_after: e.status_after,
        })
        .collect();
    Ok((entries, current))
}
