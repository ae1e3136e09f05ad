//! SaaS API subscription operations: resolve, list, get, list available plans, activate,
//! change plan or quantity, delete.

use super::{accepted_operation, current, lenient_quantity, load_owned, rejection, views, API_VERSION};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::idempotency::{self, StoredResponse};
use crate::security::bearer::PublisherCaller;
use crate::state::AppState;
use crate::write_model::{envelopes, prepare};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fulfillment_core::{decide, Command, RequestedChange, Source, SourceKind, Status, SubscriptionId};
use fulfillment_log::AppendBatch;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use tracing::info;
use uuid::Uuid;

/// Subscriptions per page of the list operation (as the marketplace documents).
const PAGE_SIZE: u32 = 100;

fn publisher_source(publisher: &PublisherCaller) -> Source {
    Source { kind: SourceKind::Publisher, actor_id: publisher.id.clone() }
}

/// `POST /saas/subscriptions/resolve` with `x-ms-marketplace-token`: the authorization code
/// from the partner's activation link.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let invalid =
        |message: &str| ApiError::BadRequest { field: "x-ms-marketplace-token".into(), message: message.into() };
    let raw = headers
        .get("x-ms-marketplace-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("the x-ms-marketplace-token header is required"))?;
    // Clients are told to URL-decode the landing page's token; accept it still encoded too.
    let token = percent_decode_str(raw).decode_utf8().map_err(|_| invalid("the token is not valid UTF-8"))?;
    state.catch_up().await?;
    let s = state
        .read_models
        .subscription_by_authorization_code(&token)
        .await?
        .filter(|s| s.purchase.publisher_id == publisher.id)
        .ok_or_else(|| invalid("the token is invalid"))?;
    let expired = state.clock.now() > s.purchased_at + state.directory.resolve_token_ttl;
    if expired && s.status != Status::Subscribed {
        return Err(invalid("the token has expired"));
    }
    info!(publisher_id = %publisher.id, subscription_id = %s.id, "token resolved");
    Ok(axum::Json(json!({
        "id": s.id,
        "subscriptionName": s.purchase.friendly_name,
        "offerId": s.purchase.offer_id,
        "planId": s.purchase.plan_id,
        "quantity": s.purchase.quantity,
        "subscription": views::subscription(&s),
    })))
}

/// `GET /saas/subscriptions/?continuationToken=`: the publisher's subscriptions, 100 a page.
pub(crate) async fn list(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let bad_token =
        || ApiError::BadRequest { field: "continuationToken".into(), message: "invalid continuation token".into() };
    let after = match query.get("continuationToken").map(String::as_str).filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
            let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
            Some(text.parse::<SubscriptionId>().map_err(|_| bad_token())?)
        }
    };
    state.catch_up().await?;
    let mut page = state.read_models.publisher_subscriptions(&publisher.id, after, PAGE_SIZE + 1).await?;
    let more = page.len() > PAGE_SIZE as usize;
    page.truncate(PAGE_SIZE as usize);
    let mut body = json!({ "subscriptions": page.iter().map(views::subscription).collect::<Vec<_>>() });
    if let (true, Some(last)) = (more, page.last()) {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.id.to_string());
        body["@nextLink"] = format!(
            "{}/api/saas/subscriptions/?continuationToken={token}&api-version={API_VERSION}",
            state.links_base()
        )
        .into();
    }
    Ok(axum::Json(body))
}

/// `GET /saas/subscriptions/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (_, loaded) = load_owned(&state, &publisher.id, &id).await?;
    Ok(axum::Json(views::subscription(current(&loaded)?)))
}

/// `GET /saas/subscriptions/{id}/listAvailablePlans[?planId=]`: plans of the subscription's
/// offer, from the catalog.
pub(crate) async fn plans(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let (_, loaded) = load_owned(&state, &publisher.id, &id).await?;
    let s = current(&loaded)?;
    let plans: Vec<Value> = match state.directory.offer(&s.purchase.offer_id) {
        None => vec![],
        Some(offer) => offer
            .plans
            .iter()
            .filter(|p| query.get("planId").is_none_or(|wanted| wanted.is_empty() || *wanted == p.id))
            .map(|p| views::plan(offer, p))
            .collect(),
    };
    Ok(axum::Json(json!({ "plans": plans })))
}

/// The spec's `SubscriberPlan`, read leniently.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriberPlan {
    #[serde(default)]
    plan_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_quantity")]
    quantity: Option<u32>,
}

/// Reads a SaaS body: malformed JSON and wrong fields are both 400 on this API.
fn saas_body<T>(body: Result<T, ApiError>) -> Result<T, ApiError> {
    match body {
        Ok(b) => Ok(b),
        Err(ApiError::Invalid(errors)) => {
            let e = errors.into_iter().next().map(|e| (e.field, e.message)).unwrap_or_default();
            Err(ApiError::BadRequest { field: e.0, message: e.1 })
        }
        Err(other) => Err(other),
    }
}

/// What an activation asks for.
pub(crate) struct Activation {
    pub plan_id: String,
    pub quantity: Option<u32>,
}

/// Reads an activation body; `planId` is required. The handler and the fuzz target run this
/// same code.
pub(crate) fn activation(body: Result<SubscriberPlan, ApiError>) -> Result<Activation, ApiError> {
    let body = saas_body(body)?;
    let plan_id = body
        .plan_id
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::BadRequest { field: "planId".into(), message: "planId is required".into() })?;
    Ok(Activation { plan_id, quantity: body.quantity })
}

/// What a change request asks for: a plan or a quantity, never both.
pub(crate) enum Requested {
    Plan(String),
    Quantity(u32),
}

/// Reads a change request body: exactly one of `planId` or `quantity`. The handler and the
/// fuzz target run this same code.
pub(crate) fn requested_change(body: Result<SubscriberPlan, ApiError>) -> Result<Requested, ApiError> {
    let body = saas_body(body)?;
    match (body.plan_id.filter(|p| !p.is_empty()), body.quantity) {
        (Some(plan), None) => Ok(Requested::Plan(plan)),
        (None, Some(quantity)) => Ok(Requested::Quantity(quantity)),
        _ => Err(ApiError::BadRequest {
            field: "planId".into(),
            message: "send exactly one of planId or quantity; plan and quantity change in separate requests".into(),
        }),
    }
}

/// `POST /saas/subscriptions/{id}/activate`: the publisher confirms account setup. Together
/// with licenses assigned, it starts billing.
pub(crate) async fn activate(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
    body: Result<JsonBody<SubscriberPlan>, ApiError>,
) -> Result<Response, ApiError> {
    let Activation { plan_id, quantity } = activation(body.map(|b| b.value))?;
    idempotency::write(&state, None, || async {
        let (id, loaded) = load_owned(&state, &publisher.id, &id).await?;
        let s = current(&loaded)?;
        match s.status {
            Status::Unsubscribed | Status::Expired => {
                return Err(ApiError::NotFound("subscription is unsubscribed".into()))
            }
            Status::Subscribed | Status::Suspended => {
                return Err(ApiError::Rejected {
                    code: "already-subscribed".into(),
                    message: "the subscription is already activated".into(),
                })
            }
            Status::PendingFulfillment => {}
        }
        let command =
            Command::ConfirmSetup { plan_id: plan_id.clone(), quantity: quantity.unwrap_or(s.purchase.quantity) };
        let now = state.clock.now();
        let events = decide(Some(s), &command, now).map_err(rejection)?;
        let (after, stream) = prepare(id, &loaded, envelopes(id, &publisher_source(&publisher), now, now, events));
        let billing = after.as_ref().and_then(|a| a.billing_started_at).is_some();
        info!(publisher_id = %publisher.id, subscription_id = %id, billing_started = billing, "subscription activated");
        let response = StoredResponse { status: 200, body: Value::Null, location: None, etag: None };
        Ok((AppendBatch { streams: vec![stream], idempotency: None }, response))
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `PATCH /saas/subscriptions/{id}` with exactly one of `planId` or `quantity`: starts an
/// operation; the change takes effect when the publisher reports it succeeded.
pub(crate) async fn update(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
    body: Result<JsonBody<SubscriberPlan>, ApiError>,
) -> Result<Response, ApiError> {
    let requested = requested_change(body.map(|b| b.value))?;
    let operation_id = Uuid::new_v4();
    let (response, _) = idempotency::write(&state, None, || async {
        let (id, loaded) = load_owned(&state, &publisher.id, &id).await?;
        let s = current(&loaded)?;
        let offer = state.directory.offer(&s.purchase.offer_id);
        let catalog_plan = |plan: &str| {
            offer.and_then(|o| o.plan(plan)).cloned().ok_or_else(|| ApiError::BadRequest {
                field: "planId".into(),
                message: format!("plan {plan:?} is not available for offer {}", s.purchase.offer_id),
            })
        };
        let change = match &requested {
            Requested::Plan(plan) => RequestedChange::Plan(catalog_plan(plan)?),
            Requested::Quantity(quantity) => {
                RequestedChange::Quantity { quantity: *quantity, plan: catalog_plan(&s.purchase.plan_id)? }
            }
        };
        let now = state.clock.now();
        let events = decide(Some(s), &Command::RequestChange { operation_id, change }, now).map_err(rejection)?;
        let (_, stream) = prepare(id, &loaded, envelopes(id, &publisher_source(&publisher), now, now, events));
        let response =
            StoredResponse { status: 202, body: json!({ "subscriptionId": id }), location: None, etag: None };
        Ok((AppendBatch { streams: vec![stream], idempotency: None }, response))
    })
    .await?;
    let id: SubscriptionId = serde_json::from_value(response.body["subscriptionId"].clone())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    info!(publisher_id = %publisher.id, subscription_id = %id, operation_id = %operation_id, "change requested");
    Ok(accepted_operation(&state, id, operation_id))
}

/// `DELETE /saas/subscriptions/{id}`: the publisher cancels the subscription; recorded at
/// once, with an `Unsubscribe` operation that has already succeeded.
pub(crate) async fn delete(
    State(state): State<AppState>,
    publisher: PublisherCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let operation_id = Uuid::new_v4();
    let (id, _) = load_owned(&state, &publisher.id, &id).await?;
    idempotency::write(&state, None, || async {
        let (id, loaded) = load_owned(&state, &publisher.id, &id.to_string()).await?;
        let s = current(&loaded)?;
        let command = Command::Cancel {
            reason: "cancelled by the publisher".into(),
            by: SourceKind::Publisher,
            operation_id: Some(operation_id),
        };
        let now = state.clock.now();
        let events = decide(Some(s), &command, now).map_err(rejection)?;
        let (_, stream) = prepare(id, &loaded, envelopes(id, &publisher_source(&publisher), now, now, events));
        let response = StoredResponse { status: 202, body: Value::Null, location: None, etag: None };
        Ok((AppendBatch { streams: vec![stream], idempotency: None }, response))
    })
    .await?;
    info!(publisher_id = %publisher.id, subscription_id = %id, operation_id = %operation_id, "subscription deleted by publisher");
    Ok(accepted_operation(&state, id, operation_id))
}
