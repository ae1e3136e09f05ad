//! The partner's customers (`/console/customers`) and one customer's subscriptions
//! (`/console/customers/{customerId}`).
//!
//! In: the signed-in partner; the customer id in the path. Out: pages read from the read models
//! (after waiting briefly for this process's own writes), each subscription with its status and,
//! while the publisher has not finished setup, the activation link and authorization code. A
//! customer the partner bought nothing for is not found.

use super::error_pages::read_failure;
use super::layout::{action_needed_cell, date_time, layout, status_badge, Nav, SubscriptionRow};
use super::page;
use super::signed_in::SignedIn;
use super::ConsoleState;
use crate::error::ApiError;
use crate::partner::check_customer_id;
use crate::partner::views::activation_link;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use fulfillment_read_model::CustomerSummary;
use maud::{html, Markup};

/// The customer routes.
pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/customers", get(customers)).route("/customers/{customer_id}", get(customer))
}

/// `/console/customers`: the customers the partner bought for.
async fn customers(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let nav = signed_in.nav();
    let listed = async {
        state.app.catch_up().await?;
        Ok::<_, ApiError>(state.app.read_models.partner_customers(&signed_in.session.partner_id).await?)
    }
    .await;
    match listed {
        Ok(customers) => page(StatusCode::OK, customers_page(&nav, &customers)),
        Err(e) => read_failure(&nav, e, "No customers."),
    }
}

/// `/console/customers/{customerId}`: one customer's subscriptions.
async fn customer(State(state): State<ConsoleState>, signed_in: SignedIn, Path(customer_id): Path<String>) -> Response {
    let nav = signed_in.nav();
    let not_yours = "You have no customer with this ID.";
    let listed = async {
        check_customer_id(&customer_id).map_err(|_| ApiError::NotFound(String::new()))?;
        state.app.catch_up().await?;
        let found = state.app.read_models.customer_subscriptions(&signed_in.session.partner_id, &customer_id).await?;
        if found.is_empty() {
            return Err(ApiError::NotFound(String::new()));
        }
        Ok(found)
    }
    .await;
    match listed {
        Ok(subscriptions) => {
            let rows: Vec<SubscriptionRow<'_>> = subscriptions
                .iter()
                .map(|s| SubscriptionRow { subscription: s, activation_link: activation_link(&state.app.directory, s) })
                .collect();
            page(StatusCode::OK, customer_page(&nav, &customer_id, &rows))
        }
        Err(e) => read_failure(&nav, e, not_yours),
    }
}

/// The customers a partner has bought for.
fn customers_page(nav: &Nav<'_>, customers: &[CustomerSummary]) -> Markup {
    layout(
        "Customers",
        Some(nav),
        html! {
            p { a.button href="/console/purchase" { "Buy a subscription" } }
            @if customers.is_empty() {
                p { "You have not bought any subscription yet. Buy one to see its customer here." }
            } @else {
                table {
                    caption.hint { "Customers with subscriptions you bought, most recent purchase first" }
                    thead { tr {
                        th scope="col" { "Customer" }
                        th scope="col" { "Subscriptions" }
                        th scope="col" { "Action needed" }
                        th.optional scope="col" { "Last purchase" }
                    } }
                    tbody {
                        @for c in customers {
                            tr {
                                th scope="row" { a href={ "/console/customers/" (c.customer_id) } { (c.customer_id) } }
                                td { (c.subscriptions) }
                                td { @if c.action_needed > 0 { (c.action_needed) } @else { "None" } }
                                td.optional { (date_time(&c.latest_purchase)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A customer's subscriptions.
fn customer_page(nav: &Nav<'_>, customer_id: &str, rows: &[SubscriptionRow<'_>]) -> Markup {
    layout(
        &format!("Customer {customer_id}"),
        Some(nav),
        html! {
            p { a href="/console/customers" { "All customers" } }
            p { a.button href={ "/console/purchase?customer=" (customer_id) } { "Buy a subscription for this customer" } }
            h2 { "Subscriptions" }
            table {
                thead { tr {
                    th scope="col" { "Subscription" }
                    th.optional scope="col" { "Offer and publisher" }
                    th scope="col" { "Quantity" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for row in rows {
                        @let s = row.subscription;
                        tr {
                            th scope="row" {
                                a href={ "/console/customers/" (customer_id) "/subscriptions/" (s.id) } { (s.purchase.friendly_name) }
                            }
                            td.optional { (s.purchase.offer_id) " (" (s.purchase.plan_id) ")" br; span.hint { "by " (s.purchase.publisher_id) } }
                            td { (s.purchase.quantity) }
                            td { (status_badge(s)) (action_needed_cell(row)) }
                        }
                    }
                }
            }
        },
    )
}
