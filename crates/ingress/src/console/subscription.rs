//! A subscription's page (`/console/customers/{customerId}/subscriptions/{id}`): its summary,
//! the forms that change it ([`super::subscription_changes`] receives them) and its timeline.
//!
//! In: the signed-in partner, the customer and subscription ids in the path, and after a change
//! what it did (`?done=`) or why it failed. Out: the page, read from the subscription's stream in
//! the log (so it shows every write that returned, with no read-model lag); another partner's
//! subscription, or one under another customer, is not found.

use super::error_pages::{not_found_page, read_failure};
use super::forms::FieldErrors;
use super::layout::{
    action_needed_cell, date_time, described_by, field_error, hidden_tokens, layout, status_badge, text_input,
    FormTokens, Nav, SubscriptionRow,
};
use super::signed_in::SignedIn;
use super::subscription_changes::done_message;
use super::{page, timeline, ConsoleState};
use crate::partner::subscriptions::{self, TimelineEntry};
use crate::partner::views::activation_link;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use fulfillment_core::{Plan, Status, SubscriptionId};
use maud::{html, Markup};
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

/// The subscription page's route.
pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/customers/{customer_id}/subscriptions/{id}", get(subscription))
}

#[derive(Debug, Deserialize)]
struct DetailQuery {
    #[serde(default)]
    done: Option<String>,
}

/// What the detail page reports about the last change.
pub(super) struct Feedback<'a> {
    /// Status of the page (200, or the failed change's).
    pub(super) status: StatusCode,
    /// A change that succeeded.
    pub(super) done: Option<&'a str>,
    /// Why a change failed, by field.
    pub(super) errors: &'a FieldErrors,
    /// The failed form's field and what was typed in it.
    pub(super) submitted: Option<(&'a str, &'a str)>,
}

/// Renders the detail page, from the subscription's stream (so it shows every write that
/// returned, with no read-model lag).
pub(super) async fn render_subscription(
    state: &ConsoleState,
    signed_in: &SignedIn,
    customer_id: &str,
    id: SubscriptionId,
    feedback: Feedback<'_>,
) -> Response {
    let nav = signed_in.nav();
    let (entries, subscription) = match subscriptions::timeline(&state.app, &signed_in.partner(), customer_id, id).await
    {
        Ok(found) => found,
        Err(e) => return read_failure(&nav, e, "You have no subscription with this ID under this customer."),
    };
    let plan = state.app.directory.plan_of(&subscription.purchase);
    let form_id = Uuid::new_v4().to_string();
    let details = SubscriptionPage {
        customer_id,
        row: SubscriptionRow {
            subscription: &subscription,
            activation_link: activation_link(&state.app.directory, &subscription),
        },
        plan,
        timeline: &entries,
        now: state.app.clock.now(),
        done: feedback.done,
        errors: feedback.errors,
        submitted: feedback.submitted,
    };
    page(feedback.status, subscription_page(&nav, &signed_in.tokens(&form_id), &details))
}

/// `GET`: the page, with what the last change did when `?done=` names it.
async fn subscription(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, raw_id)): Path<(String, String)>,
    query: Result<Query<DetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(id) = raw_id.parse::<SubscriptionId>() else {
        return not_found_page(Some(&signed_in.nav()), "You have no subscription with this ID.");
    };
    let done = query.ok().and_then(|Query(q)| q.done).and_then(|d| done_message(&d));
    let span = tracing::info_span!("console_subscription", subscription_id = %id);
    let feedback = Feedback { status: StatusCode::OK, done, errors: &FieldErrors::default(), submitted: None };
    render_subscription(&state, &signed_in, &customer_id, id, feedback).instrument(span).await
}

/// Everything the subscription page shows.
struct SubscriptionPage<'a> {
    /// Customer in the path.
    customer_id: &'a str,
    /// The subscription and its publisher link.
    row: SubscriptionRow<'a>,
    /// Its catalog plan (quantity bounds), when still in the catalog.
    plan: Option<&'a Plan>,
    /// Its history.
    timeline: &'a [TimelineEntry],
    /// Now, for the cancellation window.
    now: DateTime<Utc>,
    /// A change that just succeeded, to confirm.
    done: Option<&'a str>,
    /// Which form failed and why, when re-rendered after an error.
    errors: &'a FieldErrors,
    /// What the failed form held, to keep the user's input.
    submitted: Option<(&'a str, &'a str)>,
}

/// One change form; each gets its own id (the page's plus the action), so sending one form
/// of a page never replays another's answer.
fn change_form(base: &str, action: &str, tokens: &FormTokens<'_>, etag: &str, content: Markup) -> Markup {
    let form_id = format!("{}-{action}", tokens.form_id);
    html! {
        form method="post" action={ (base) "/" (action) } {
            (hidden_tokens(&FormTokens { csrf_token: tokens.csrf_token, form_id: &form_id }))
            input type="hidden" name="version" value=(etag);
            (content)
        }
    }
}

/// A subscription's detail page with its change forms and timeline.
fn subscription_page(nav: &Nav<'_>, tokens: &FormTokens<'_>, page: &SubscriptionPage<'_>) -> Markup {
    let s = page.row.subscription;
    let base = format!("/console/customers/{}/subscriptions/{}", page.customer_id, s.id);
    let etag = crate::partner::views::etag(s);
    let errors = page.errors;
    let kept = |field: &str, current: String| match page.submitted {
        Some((f, v)) if f == field => v.to_owned(),
        _ => current,
    };
    let open = !s.status.is_terminal();
    let window_open = s.within_cancellation_window(page.now);
    let (min, max) = page.plan.map(|p| (p.min_quantity, p.max_quantity)).unwrap_or((1, u32::MAX));
    layout(
        &s.purchase.friendly_name,
        Some(nav),
        html! {
            p { a href={ "/console/customers/" (page.customer_id) } { "Customer " (page.customer_id) } }
            @if let Some(done) = page.done { p.notice role="status" { (done) } }
            @if let Some(message) = errors.get("form") { p.error role="alert" { (message) } }
            (action_needed_cell(&page.row))
            section aria-labelledby="summary-heading" {
                h2 id="summary-heading" { "Summary" }
                dl {
                    dt { "Status" } dd { (status_badge(s)) }
                    dt { "Offer" } dd { (s.purchase.offer_id) " by " (s.purchase.publisher_id) }
                    dt { "Plan" } dd { (s.purchase.plan_id) }
                    dt { "Quantity" } dd { (s.purchase.quantity) " licenses" }
                    dt { "Term" } dd { (s.purchase.term) ", billed " (s.purchase.billing_cycle) }
                    dt { "Auto-renew" } dd { @if s.purchase.auto_renew { "On" } @else { "Off" } }
                    dt { "Indirect reseller MPN ID" } dd { (s.purchase.indirect_reseller_mpn_id.as_deref().unwrap_or("None")) }
                    dt { "Purchased" } dd { (date_time(&s.purchased_at)) }
                    dt { "Billing" } dd id="billing" {
                        @if let Some(at) = s.billing_started_at {
                            "Billing started on " (date_time(&at))
                            @if let Some(cancelled) = s.cancelled_at { "; stopped on " (date_time(&cancelled)) }
                        } @else {
                            "Not started: waiting for the publisher ("
                            (if s.licenses_assigned.is_some() { "licenses assigned" } else { "licenses not yet assigned" })
                            ", "
                            (if s.setup_confirmed { "setup confirmed" } else { "setup not yet confirmed" })
                            ")"
                        }
                    }
                    @if let Some(term) = &s.current_term {
                        dt { "Current term" }
                        dd id="current-term" {
                            "Term " (term.number) ": " (date_time(&term.start_date)) " to " (date_time(&term.end_date))
                            @if s.status == Status::Expired { "; expired" }
                            @else if !open {}
                            @else if s.purchase.auto_renew { "; renews on " (date_time(&term.end_date)) }
                            @else { "; expires on " (date_time(&term.end_date)) }
                        }
                    }
                    @if let (true, Some(deadline)) = (s.action_needed(), s.activation_deadline) {
                        dt { "Activation deadline" }
                        dd { "Cancelled automatically if not activated by " (date_time(&deadline)) }
                    }
                    @if let Some(suspension) = s.suspension_in_force() {
                        dt { "Suspended" }
                        dd id="suspension" {
                            (suspension.reason) " since " (date_time(&suspension.suspended_at))
                            "; cancelled automatically if not reinstated by " (date_time(&suspension.grace_until))
                        }
                    }
                    (metered_usage(s, page.plan))
                    @if let Some(c) = &s.cancellation {
                        dt { "Cancellation" }
                        dd { (cancellation_words(&c.reason)) "; " (if c.refundable { "refundable" } else { "not refundable" }) }
                    }
                }
            }
            @if open {
                section aria-labelledby="changes-heading" {
                    h2 id="changes-heading" { "Change this subscription" }
                    (change_form(&base, "nickname", tokens, &etag, html! {
                        (text_input(errors, "friendly_name", "Nickname", &kept("friendly_name", s.purchase.friendly_name.clone()), None, true))
                        button type="submit" { "Save nickname" }
                    }))
                    (change_form(&base, "quantity", tokens, &etag, html! {
                        label for="quantity" { "Quantity (licenses)" }
                        p.hint id="quantity-hint" { "This plan allows " (min) " to " (max) " licenses." }
                        input id="quantity" name="quantity" type="number" min=(min) max=(max)
                            value=(kept("quantity", s.purchase.quantity.to_string())) required
                            aria-invalid=[errors.get("quantity").map(|_| "true")]
                            aria-describedby=[described_by(errors, "quantity", Some("quantity-hint"))];
                        (field_error(errors, "quantity"))
                        button type="submit" { "Update licenses" }
                    }))
                    (change_form(&base, "auto-renew", tokens, &etag, html! {
                        p id="auto-renew-state" { "Auto-renew is " strong { @if s.purchase.auto_renew { "on" } @else { "off" } } "." }
                        input type="hidden" name="auto_renew" value=(if s.purchase.auto_renew { "false" } else { "true" });
                        (field_error(errors, "auto_renew"))
                        button type="submit" aria-describedby=[described_by(errors, "auto_renew", Some("auto-renew-state"))] {
                            @if s.purchase.auto_renew { "Turn auto-renew off" } @else { "Turn auto-renew on" }
                        }
                    }))
                    (change_form(&base, "reseller", tokens, &etag, html! {
                        (text_input(errors, "mpn_id", "Indirect reseller MPN ID", &kept("mpn_id", s.purchase.indirect_reseller_mpn_id.clone().unwrap_or_default()), None, true))
                        button type="submit" { "Save MPN ID" }
                    }))
                    (change_form(&base, "cancel", tokens, &etag, html! {
                        h3 { "Cancel" }
                        @if window_open {
                            p.hint id="cancel-hint" {
                                "You can cancel with a full refund until " (date_time(&s.cancellation_allowed_until)) "."
                            }
                            label for="reason" { "Reason (optional)" }
                            input id="reason" name="reason" type="text" value=(kept("reason", String::new()))
                                aria-invalid=[errors.get("cancel").map(|_| "true")]
                                aria-describedby=[described_by(errors, "cancel", None)];
                            (field_error(errors, "cancel"))
                            button.danger type="submit" aria-describedby=[described_by(errors, "cancel", Some("cancel-hint"))] {
                                "Cancel subscription"
                            }
                        } @else {
                            p.hint id="cancel-hint" {
                                "Cancellation is no longer possible: the cancellation window closed on "
                                (date_time(&s.cancellation_allowed_until)) "."
                            }
                            (field_error(errors, "cancel"))
                            button.danger type="submit" disabled
                                aria-describedby=[described_by(errors, "cancel", Some("cancel-hint"))] { "Cancel subscription" }
                        }
                    }))
                }
            } @else {
                p { "This subscription is cancelled; it can no longer be changed." }
            }
            (timeline::section(page.timeline))
        },
    )
}

/// A cancellation's reason in words; the system's reasons are codes.
fn cancellation_words(reason: &str) -> String {
    match reason {
        fulfillment_core::ACTIVATION_DEADLINE_REASON => {
            "Cancelled by the system: the publisher did not activate it before the activation deadline".into()
        }
        fulfillment_core::SUSPENSION_GRACE_EXPIRED_REASON => {
            "Cancelled by the system: still suspended at the end of the grace period".into()
        }
        other => other.to_owned(),
    }
}

/// The term's metered usage per dimension of the plan (and any dimension usage was reported for
/// that the catalog no longer lists); nothing for a plan without dimensions and no usage.
fn metered_usage(s: &fulfillment_core::Subscription, plan: Option<&fulfillment_core::Plan>) -> Markup {
    let dimensions = plan.map(|p| p.metering_dimensions.as_slice()).unwrap_or_default();
    let usage = s.usage_by_dimension(dimensions);
    if usage.is_empty() {
        return html! {};
    }
    let rows: Vec<(&str, String)> = usage
        .iter()
        .map(|u| match u.dimension {
            Some(d) => (d.display_name.as_str(), format!("{} \u{00d7} {}", u.quantity, d.unit)),
            None => (u.id, u.quantity.to_string()),
        })
        .collect();
    html! {
        dt { "Metered usage this term" }
        dd id="metered-usage" {
            ul { @for (name, amount) in &rows { li { (name) ": " (amount) } } }
        }
    }
}
