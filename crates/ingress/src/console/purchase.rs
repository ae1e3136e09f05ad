//! Buying a subscription: the purchase form (`/console/purchase`) and the order confirmation
//! it leads to (`/console/customers/{customerId}/orders/{orderId}`).
//!
//! In: the form's customer, offer and plan, quantity, term, billing cycle, nickname and
//! indirect reseller, with the session's CSRF token and the form's id. Out: one order placed
//! through the partner API's own write path ([`place_order`]) under the form's idempotency key,
//! then a redirect to its confirmation; or the form again, filled as sent, with each error next
//! to its field.

use super::error_pages::read_failure;
use super::forms::{self, form_key, FieldErrors};
use super::layout::{
    action_needed_cell, described_by, field_error, hidden_tokens, layout, select, status_badge, text_input, FormTokens,
    Nav, SubscriptionRow,
};
use super::signed_in::SignedIn;
use super::{page, see_other, ConsoleState};
use crate::error::ApiError;
use crate::partner::orders::{owned_order, place_order, LineItemRequest, OrderRequest};
use crate::partner::views::activation_link;
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use fulfillment_core::Plan;
use maud::{html, Markup};
use serde::Deserialize;
use tracing::warn;
use uuid::Uuid;

/// The purchase routes.
pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/purchase", get(purchase_page).post(purchase))
        .route("/customers/{customer_id}/orders/{order_id}", get(order))
}

/// The catalog's offers and plans, as the form lists them.
fn offer_choices(app: &AppState) -> Vec<OfferChoice<'_>> {
    app.directory
        .offers()
        .into_iter()
        .map(|offer| OfferChoice {
            offer_id: &offer.id,
            publisher_id: &offer.publisher,
            plans: offer.plans.iter().map(|p| (p, offer.display(&p.id).display_name)).collect(),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct PurchaseQuery {
    #[serde(default)]
    customer: Option<String>,
}

/// `GET /console/purchase[?customer=]`: an empty purchase form.
async fn purchase_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    query: Result<Query<PurchaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let customer_id = query.ok().and_then(|Query(q)| q.customer).unwrap_or_default();
    let offers = offer_choices(&state.app);
    let values = PurchaseValues {
        customer_id,
        offer_plan: String::new(),
        quantity: "1".into(),
        term: "P1M".into(),
        billing_cycle: "monthly".into(),
        ..Default::default()
    };
    let form_id = Uuid::new_v4().to_string();
    let markup =
        purchase_form(&signed_in.nav(), &signed_in.tokens(&form_id), &offers, &values, &FieldErrors::default());
    page(StatusCode::OK, markup)
}

/// `POST /console/purchase`: places the order, or shows the form again with its errors.
async fn purchase(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    form: Result<Form<forms::Purchase>, FormRejection>,
) -> Response {
    let nav = signed_in.nav();
    let form = match signed_in.accept(form) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let partner = signed_in.partner();
    let customer_id = form.customer_id.trim().to_owned();
    let placed = async {
        let (offer_id, plan_id) =
            form.offer_plan.split_once('/').ok_or_else(|| ApiError::invalid("offerId", "Choose an offer and plan"))?;
        let quantity = forms::parse_count("quantity", "Quantity", &form.quantity)?;
        let request = OrderRequest {
            line_items: vec![LineItemRequest {
                offer_id: offer_id.to_owned(),
                plan_id: plan_id.to_owned(),
                quantity,
                term_duration: form.term.clone(),
                billing_cycle: form.billing_cycle.clone(),
                friendly_name: Some(form.friendly_name.trim().to_owned()).filter(|n| !n.is_empty()),
                partner_id_on_record: Some(form.mpn_id.trim().to_owned()).filter(|m| !m.is_empty()),
                auto_renew_enabled: None,
            }],
        };
        let fields = [
            customer_id.as_str(),
            &form.offer_plan,
            &form.quantity,
            &form.term,
            &form.billing_cycle,
            &form.friendly_name,
            &form.mpn_id,
        ];
        let key = form_key(&partner, &form.tokens.form_id, "/console/purchase", &fields);
        place_order(&state.app, &partner, &customer_id, &request, key.as_ref()).await
    }
    .await;
    match placed {
        Ok((response, _)) => {
            let order_id = response.body["id"].as_str().unwrap_or_default();
            see_other(&format!("/console/customers/{customer_id}/orders/{order_id}"))
        }
        Err(error) => {
            let (status, errors) = forms::describe(&error, "form");
            if status.is_server_error() {
                warn!(%error, "console purchase failed");
            }
            let values = PurchaseValues {
                customer_id: form.customer_id.clone(),
                offer_plan: form.offer_plan.clone(),
                quantity: form.quantity.clone(),
                term: form.term.clone(),
                billing_cycle: form.billing_cycle.clone(),
                friendly_name: form.friendly_name.clone(),
                mpn_id: form.mpn_id.clone(),
            };
            let form_id = Uuid::new_v4().to_string();
            let offers = offer_choices(&state.app);
            page(status, purchase_form(&nav, &signed_in.tokens(&form_id), &offers, &values, &errors))
        }
    }
}

/// `/console/customers/{customerId}/orders/{orderId}`: the order confirmation.
async fn order(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, order_id)): Path<(String, String)>,
) -> Response {
    let nav = signed_in.nav();
    match owned_order(&state.app, &signed_in.partner(), &customer_id, &order_id).await {
        Ok((_, subscriptions)) => {
            let rows: Vec<SubscriptionRow<'_>> = subscriptions
                .iter()
                .map(|s| SubscriptionRow { subscription: s, activation_link: activation_link(&state.app.directory, s) })
                .collect();
            page(StatusCode::OK, order_confirmation(&nav, &customer_id, &rows))
        }
        Err(e) => read_failure(&nav, e, "You have no order with this ID."),
    }
}

/// What the purchase form was filled with (kept when it comes back with errors).
#[derive(Debug, Clone, Default)]
struct PurchaseValues {
    customer_id: String,
    offer_plan: String,
    quantity: String,
    term: String,
    billing_cycle: String,
    friendly_name: String,
    mpn_id: String,
}

/// An offer's plans as the purchase form lists them.
struct OfferChoice<'a> {
    /// Offer id.
    offer_id: &'a str,
    /// Its publisher.
    publisher_id: &'a str,
    /// Plans with their display names.
    plans: Vec<(&'a Plan, String)>,
}

/// The purchase form.
fn purchase_form(
    nav: &Nav<'_>,
    tokens: &FormTokens<'_>,
    offers: &[OfferChoice<'_>],
    values: &PurchaseValues,
    errors: &FieldErrors,
) -> Markup {
    let mut plan_options: Vec<(String, String)> = Vec::new();
    for offer in offers {
        for (plan, name) in &offer.plans {
            let terms: Vec<String> = plan.terms.iter().map(|t| t.to_string()).collect();
            plan_options.push((
                format!("{}/{}", offer.offer_id, plan.id),
                format!(
                    "{} by {}: {} ({} to {} licenses; terms {})",
                    offer.offer_id,
                    offer.publisher_id,
                    name,
                    plan.min_quantity,
                    plan.max_quantity,
                    terms.join(", ")
                ),
            ));
        }
    }
    let plan_refs: Vec<(&str, &str)> = plan_options.iter().map(|(v, t)| (v.as_str(), t.as_str())).collect();
    let terms = [
        ("P1M", "1 month"),
        ("P1Y", "1 year"),
        ("P2Y", "2 years"),
        ("P3Y", "3 years"),
        ("P4Y", "4 years"),
        ("P5Y", "5 years"),
    ];
    let cycles = [("monthly", "Monthly"), ("annual", "Annual"), ("oneTime", "One time")];
    layout(
        "Buy a subscription",
        Some(nav),
        html! {
            @if let Some(message) = errors.get("form") { p.error role="alert" { (message) } }
            form method="post" action="/console/purchase" {
                (hidden_tokens(tokens))
                (text_input(errors, "customer_id", "Customer ID", &values.customer_id,
                    Some(("customer_id-hint", "Your identifier for the customer: letters, digits, '-', '_' or '.'")), true))
                (select(errors, "offer_plan", "Offer and plan", &values.offer_plan, &plan_refs))
                label for="quantity" { "Quantity (licenses)" }
                input id="quantity" name="quantity" type="number" min="1" value=(values.quantity) required
                    aria-invalid=[errors.get("quantity").map(|_| "true")]
                    aria-describedby=[described_by(errors, "quantity", None)];
                (field_error(errors, "quantity"))
                (select(errors, "term", "Term", &values.term, &terms))
                (select(errors, "billing_cycle", "Billing cycle", &values.billing_cycle, &cycles))
                (text_input(errors, "friendly_name", "Nickname", &values.friendly_name,
                    Some(("friendly_name-hint", "Optional; the offer and plan are used when empty")), false))
                (text_input(errors, "mpn_id", "Indirect reseller MPN ID", &values.mpn_id,
                    Some(("mpn_id-hint", "Optional")), false))
                button type="submit" { "Buy" }
            }
        },
    )
}

/// The page after a purchase.
fn order_confirmation(nav: &Nav<'_>, customer_id: &str, rows: &[SubscriptionRow<'_>]) -> Markup {
    layout(
        "Thank you for your purchase",
        Some(nav),
        html! {
            p.notice role="status" { "The order is placed. The customer's subscription waits for the publisher to finish setup." }
            @for row in rows {
                @let s = row.subscription;
                section {
                    h2 { (s.purchase.friendly_name) }
                    dl {
                        dt { "Customer" } dd { (customer_id) }
                        dt { "Offer" } dd { (s.purchase.offer_id) " by " (s.purchase.publisher_id) }
                        dt { "Plan" } dd { (s.purchase.plan_id) }
                        dt { "Quantity" } dd { (s.purchase.quantity) }
                        dt { "Status" } dd { (status_badge(s)) }
                    }
                    (action_needed_cell(row))
                    p { a href={ "/console/customers/" (customer_id) "/subscriptions/" (s.id) } { "View subscription" } }
                }
            }
        },
    )
}
