//! `POST /v1/customers/{customerId}/orders` (buy), `GET .../orders/{orderId}` and
//! `GET .../orders/{orderId}/lineitems/{n}/activationlinks`: the purchase flow of the partner
//! API. One order may hold several line items; each becomes a subscription, all appended in one
//! atomic batch.

use super::check_customer_id;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::partner::views::activation_link;
use crate::security::bearer::PartnerCaller;
use crate::security::credentials::random_token;
use crate::state::AppState;
use crate::write_model::envelopes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use fulfillment_core::{
    decide, BillingCycle, Command, Purchase, PurchaseOrder, Source, SourceKind, Subscription, SubscriptionId, Term,
};
use fulfillment_log::{AppendBatch, StreamAppend};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;
use uuid::Uuid;

/// The order routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{customer_id}/orders", post(create_order))
        .route("/v1/customers/{customer_id}/orders/{order_id}", get(get_order))
        .route(
            "/v1/customers/{customer_id}/orders/{order_id}/lineitems/{line_item}/activationlinks",
            get(line_item_activation_links),
        )
}

/// Most line items in one order.
const MAX_LINE_ITEMS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderRequest {
    pub(crate) line_items: Vec<LineItemRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LineItemRequest {
    pub(crate) offer_id: String,
    pub(crate) plan_id: String,
    pub(crate) quantity: u32,
    pub(crate) term_duration: String,
    pub(crate) billing_cycle: String,
    #[serde(default)]
    pub(crate) friendly_name: Option<String>,
    #[serde(default)]
    pub(crate) partner_id_on_record: Option<String>,
    #[serde(default)]
    pub(crate) auto_renew_enabled: Option<bool>,
}

/// A fresh authorization code. It identifies the purchase at the publisher's site, so it must be
/// unguessable.
fn authorization_code() -> String {
    random_token()
}

fn order_view(
    state: &AppState,
    customer_id: &str,
    order_id: Uuid,
    created: &str,
    subscriptions: &[Subscription],
) -> Value {
    let items: Vec<Value> = subscriptions
        .iter()
        .map(|s| {
            json!({
                "lineItemNumber": s.purchase.line_item_number,
                "offerId": s.purchase.offer_id,
                "planId": s.purchase.plan_id,
                "subscriptionId": s.id,
                "quantity": s.purchase.quantity,
                "termDuration": s.purchase.term,
                "billingCycle": s.purchase.billing_cycle,
                "friendlyName": s.purchase.friendly_name,
                "partnerIdOnRecord": s.purchase.indirect_reseller_mpn_id,
                "activationLink": activation_link(&state.directory, s),
                "authorizationCode": s.purchase.authorization_code,
                "links": {
                    "subscription": { "uri": format!("/v1/customers/{customer_id}/subscriptions/{}", s.id), "method": "GET", "headers": [] },
                    "activationLinks": {
                        "uri": format!("/v1/customers/{customer_id}/orders/{order_id}/lineitems/{}/activationlinks", s.purchase.line_item_number),
                        "method": "GET",
                        "headers": []
                    },
                },
            })
        })
        .collect();
    json!({
        "id": order_id,
        "referenceCustomerId": customer_id,
        "status": "completed",
        "creationDate": created,
        "lineItems": items,
        "links": { "self": { "uri": format!("/v1/customers/{customer_id}/orders/{order_id}"), "method": "GET", "headers": [] } },
        "attributes": { "objectType": "Order" },
    })
}

/// Buys one subscription per line item.
pub(crate) async fn create_order(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<OrderRequest>,
) -> Result<Response, ApiError> {
    let path = format!("/v1/customers/{customer_id}/orders");
    let key = IdempotencyKey::from_header(
        &headers,
        format!("partner:{}", partner.id),
        &[Method::POST.as_str().as_bytes(), path.as_bytes(), &body.raw],
    )?;
    let (response, replayed) = place_order(&state, &partner, &customer_id, &body.value, key.as_ref()).await?;
    Ok(response.render(replayed))
}

/// The one write path for purchases, shared by the partner API and the console: validates the
/// order, decides a purchase per line item and appends them in one batch under `key`. Returns
/// the order's representation and whether it is a replay of an earlier answer.
pub(crate) async fn place_order(
    state: &AppState,
    partner: &PartnerCaller,
    customer_id: &str,
    request: &OrderRequest,
    key: Option<&IdempotencyKey>,
) -> Result<(StoredResponse, bool), ApiError> {
    check_customer_id(customer_id)?;
    if request.line_items.is_empty() || request.line_items.len() > MAX_LINE_ITEMS {
        return Err(ApiError::invalid("lineItems", format!("must hold 1 to {MAX_LINE_ITEMS} line items")));
    }
    let (response, replayed) = idempotency::write(state, key, || async {
        let now = state.clock.now();
        let order_id = Uuid::new_v4();
        let source = Source { kind: SourceKind::Partner, actor_id: partner.id.clone() };
        let mut batch = AppendBatch::default();
        let mut subscriptions = Vec::new();
        for (n, item) in request.line_items.iter().enumerate() {
            let prefix = format!("lineItems[{n}].");
            let offer = state.directory.offer(&item.offer_id).ok_or_else(|| {
                ApiError::invalid(format!("{prefix}offerId"), format!("unknown offer {:?}", item.offer_id))
            })?;
            let plan = offer.plan(&item.plan_id).ok_or_else(|| {
                let known: Vec<&str> = offer.plans.iter().map(|p| p.id.as_str()).collect();
                ApiError::invalid(
                    format!("{prefix}planId"),
                    format!("offer {} has no plan {:?}; plans: {}", offer.id, item.plan_id, known.join(", ")),
                )
            })?;
            let term: Term = item
                .term_duration
                .parse()
                .map_err(|e: String| ApiError::invalid(format!("{prefix}termDuration"), e))?;
            let billing_cycle: BillingCycle = item
                .billing_cycle
                .parse()
                .map_err(|e: String| ApiError::invalid(format!("{prefix}billingCycle"), e))?;
            let purchase = Purchase {
                order_id,
                line_item_number: n as u32,
                customer_id: customer_id.to_owned(),
                partner_id: partner.id.clone(),
                publisher_id: offer.publisher.clone(),
                offer_id: offer.id.clone(),
                plan_id: plan.id.clone(),
                quantity: item.quantity,
                term,
                billing_cycle,
                auto_renew: item.auto_renew_enabled.unwrap_or(true),
                friendly_name: item.friendly_name.clone().unwrap_or_else(|| format!("{} {}", offer.id, plan.id)),
                indirect_reseller_mpn_id: item.partner_id_on_record.clone().filter(|m| !m.is_empty()),
                authorization_code: authorization_code(),
            };
            let order = PurchaseOrder { purchase, plan: plan.clone(), policy: state.directory.policy };
            let id = SubscriptionId(Uuid::new_v4());
            let events = decide(None, &Command::Purchase(Box::new(order)), now)
                .map_err(|r| ApiError::from_rejection(r, &prefix))?;
            let envelopes = envelopes(id, &source, now, now, events);
            subscriptions.extend(fulfillment_core::fold(None, &envelopes).state);
            batch.streams.push(StreamAppend { subscription_id: id, expected_version: 0, events: envelopes });
        }
        let body = order_view(state, customer_id, order_id, &now.to_rfc3339(), &subscriptions);
        let location = format!("/v1/customers/{customer_id}/orders/{order_id}");
        Ok((batch, StoredResponse { status: 201, body, location: Some(location), etag: None }))
    })
    .await?;
    if !replayed {
        info!(partner_id = %partner.id, customer_id = %customer_id, order_id = %response.body["id"], line_items = request.line_items.len(), "order placed");
    }
    Ok((response, replayed))
}

pub(crate) async fn owned_order(
    state: &AppState,
    partner: &PartnerCaller,
    customer_id: &str,
    order_id: &str,
) -> Result<(Uuid, Vec<Subscription>), ApiError> {
    let not_found = || ApiError::NotFound("order not found".into());
    let order_id: Uuid = order_id.parse().map_err(|_| not_found())?;
    state.catch_up().await?;
    let subscriptions = state.read_models.order_subscriptions(&partner.id, order_id).await?;
    if subscriptions.is_empty() || subscriptions.iter().any(|s| s.purchase.customer_id != customer_id) {
        return Err(not_found());
    }
    Ok((order_id, subscriptions))
}

/// One order with its line items.
pub(crate) async fn get_order(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path((customer_id, order_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let (order_id, subscriptions) = owned_order(&state, &partner, &customer_id, &order_id).await?;
    let created = subscriptions[0].purchased_at.to_rfc3339();
    Ok(axum::Json(order_view(&state, &customer_id, order_id, &created, &subscriptions)))
}

/// The activation link of one line item, in the Partner Center collection shape.
pub(crate) async fn line_item_activation_links(
    State(state): State<AppState>,
    partner: PartnerCaller,
    Path((customer_id, order_id, line_item)): Path<(String, String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let (order_id, subscriptions) = owned_order(&state, &partner, &customer_id, &order_id).await?;
    let n: u32 = line_item.parse().map_err(|_| ApiError::NotFound("line item not found".into()))?;
    let s = subscriptions
        .iter()
        .find(|s| s.purchase.line_item_number == n)
        .ok_or_else(|| ApiError::NotFound("line item not found".into()))?;
    let items: Vec<Value> = activation_link(&state.directory, s)
        .into_iter()
        .map(|uri| json!({ "lineItemNumber": n, "link": { "uri": uri, "method": "GET", "headers": [] } }))
        .collect();
    Ok(axum::Json(json!({
        "totalCount": items.len(),
        "items": items,
        "links": { "self": { "uri": format!("/customers/{customer_id}/orders/{order_id}/lineitems/{n}/activationlinks"), "method": "GET", "headers": [] } },
        "attributes": { "objectType": "Collection" },
    })))
}
