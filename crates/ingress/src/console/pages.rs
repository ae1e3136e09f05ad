//! The console's HTML, rendered on the server with maud (escaped by construction).
//!
//! Markup choices are for accessibility first: one `h1` per page, every input has a `label`,
//! errors are tied to their field with `aria-describedby` and announced with `role="alert"`,
//! tables have header cells, and nothing needs JavaScript or a mouse.

use super::forms::FieldErrors;
use crate::partner_subscriptions::{Outcome, TimelineEntry};
use chrono::{DateTime, Utc};
use fulfillment_core::{Event, OperationOutcome, Plan, SourceKind, Status, Subscription};
use fulfillment_read_model::CustomerSummary;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The stylesheet, served at `/console/style.css` (a file of our own, so the Content-Security-
/// Policy can forbid inline styles and scripts altogether).
pub(crate) const STYLESHEET: &str = r#"
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f6}
header{background:#0f3d63;color:#fff;padding:.5rem 1rem}
header nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;max-width:60rem;margin:auto}
header a{color:#fff}
header form{margin-left:auto}
main{max-width:60rem;margin:auto;padding:1rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem}
a{color:#0b57a4}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
section,.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
table{width:100%;border-collapse:collapse;background:#fff}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #ddd;vertical-align:top}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{font-weight:600}dd{margin:0}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input,select{font:inherit;padding:.4rem;width:100%;max-width:24rem;border:1px solid #888;border-radius:4px}
input[aria-invalid=true]{border-color:#b00020;border-width:2px}
button,.button{font:inherit;padding:.45rem 1rem;margin-top:.5rem;border-radius:4px;border:1px solid #0f3d63;background:#0f3d63;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#fff;color:#0f3d63}
button.danger{background:#b00020;border-color:#b00020}
button:disabled{background:#ccc;border-color:#ccc;color:#555;cursor:not-allowed}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.error{color:#b00020;font-weight:600;margin:.25rem 0}
.notice{background:#e7f4e4;border:1px solid #5a9e4b;padding:.5rem 1rem;border-radius:4px}
.action-needed{background:#fff4e5;border:1px solid #e08a00;padding:.75rem 1rem;border-radius:4px}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.9rem;font-weight:600}
.badge.pending{background:#fff4e5;color:#8a4b00}.badge.active{background:#e7f4e4;color:#2d6a1f}.badge.deleted{background:#eee;color:#555}
.hint{color:#555;font-size:.9rem;margin:.25rem 0}
code{word-break:break-all}
ol.timeline{padding-left:1.25rem}ol.timeline li{margin:.5rem 0}
@media (max-width:40rem){th.optional,td.optional{display:none}dl{grid-template-columns:1fr}td{overflow-wrap:anywhere}main{padding:.5rem}}
"#;

/// Who is signed in, for the page header.
pub(crate) struct Nav<'a> {
    /// The partner.
    pub(crate) partner_id: &'a str,
    /// The session's CSRF token (for the sign-out form).
    pub(crate) csrf_token: &'a str,
}

/// Hidden fields every form of a signed-in page carries.
pub(crate) struct FormTokens<'a> {
    /// The session's CSRF token.
    pub(crate) csrf_token: &'a str,
    /// A fresh id for this rendering of the form (the write's idempotency key, so a double
    /// submit makes one change).
    pub(crate) form_id: &'a str,
}

fn hidden_tokens(tokens: &FormTokens<'_>) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(tokens.csrf_token);
        input type="hidden" name="form_id" value=(tokens.form_id);
    }
}

/// A date as people read it, in UTC (stated, so nobody guesses the zone).
pub(crate) fn date_time(at: &DateTime<Utc>) -> String {
    at.format("%-d %b %Y, %H:%M UTC").to_string()
}

fn layout(title: &str, nav: Option<&Nav<'_>>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Fulfillment console" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        strong { "Fulfillment console" }
                        @if let Some(nav) = nav {
                            a href="/console/customers" { "Customers" }
                            a href="/console/purchase" { "Buy a subscription" }
                            span { "Signed in as " strong { (nav.partner_id) } }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(nav.csrf_token);
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// An error message tied to a field by id.
fn field_error(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(message) = errors.get(field) {
            p.error id={ (field) "-error" } role="alert" { (message) }
        }
    }
}

fn described_by(errors: &FieldErrors, field: &str, hint: Option<&str>) -> Option<String> {
    let mut ids = Vec::new();
    if errors.get(field).is_some() {
        ids.push(format!("{field}-error"));
    }
    if let Some(hint) = hint {
        ids.push(hint.to_owned());
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// The sign-in page.
pub(crate) fn sign_in(csrf_token: &str, error: Option<&str>) -> Markup {
    let errors = FieldErrors::single("api_key", error);
    layout(
        "Sign in",
        None,
        html! {
            section {
                p { "Sign in with one of your partner API keys." }
                form method="post" action="/console/sign-in" {
                    input type="hidden" name="csrf" value=(csrf_token);
                    label for="api_key" { "Partner API key" }
                    input id="api_key" name="api_key" type="password" autocomplete="current-password" required
                        aria-invalid=[errors.get("api_key").map(|_| "true")]
                        aria-describedby=[described_by(&errors, "api_key", None)];
                    (field_error(&errors, "api_key"))
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn status_badge(s: &Subscription) -> Markup {
    let (class, text) = match s.status {
        Status::PendingFulfillment => ("pending", "Action needed"),
        Status::Subscribed => ("active", "Active"),
        Status::Unsubscribed => ("deleted", "Cancelled"),
    };
    html! { span class={ "badge " (class) } { (text) } }
}

/// The customers a partner has bought for.
pub(crate) fn customers(nav: &Nav<'_>, customers: &[CustomerSummary]) -> Markup {
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

/// One subscription's row in a customer's table, with what the page needs beyond the state.
pub(crate) struct SubscriptionRow<'a> {
    /// The subscription.
    pub(crate) subscription: &'a Subscription,
    /// The publisher's landing page with the authorization code.
    pub(crate) activation_link: Option<String>,
}

fn action_needed_cell(row: &SubscriptionRow<'_>) -> Markup {
    let s = row.subscription;
    html! {
        @if s.action_needed() {
            div.action-needed {
                strong { "Action needed" }
                p.hint { "The customer finishes setup at the publisher's site with this authorization code." }
                @if let Some(link) = &row.activation_link {
                    p { a href=(link) rel="noopener noreferrer" target="_blank" { "Go to publisher's site" } }
                }
                p { "Authorization code: " code { (s.authorization_code) } }
            }
        }
    }
}

/// A customer's subscriptions.
pub(crate) fn customer(nav: &Nav<'_>, customer_id: &str, rows: &[SubscriptionRow<'_>]) -> Markup {
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
                                a href={ "/console/customers/" (customer_id) "/subscriptions/" (s.id) } { (s.friendly_name) }
                            }
                            td.optional { (s.offer_id) " (" (s.plan_id) ")" br; span.hint { "by " (s.publisher_id) } }
                            td { (s.quantity) }
                            td { (status_badge(s)) (action_needed_cell(row)) }
                        }
                    }
                }
            }
        },
    )
}

/// What the purchase form was filled with (kept when it comes back with errors).
#[derive(Debug, Clone, Default)]
pub(crate) struct PurchaseValues {
    pub(crate) customer_id: String,
    pub(crate) offer_plan: String,
    pub(crate) quantity: String,
    pub(crate) term: String,
    pub(crate) billing_cycle: String,
    pub(crate) friendly_name: String,
    pub(crate) mpn_id: String,
}

/// An offer's plans as the purchase form lists them.
pub(crate) struct OfferChoice<'a> {
    /// Offer id.
    pub(crate) offer_id: &'a str,
    /// Its publisher.
    pub(crate) publisher_id: &'a str,
    /// Plans with their display names.
    pub(crate) plans: Vec<(&'a Plan, String)>,
}

fn text_input(
    errors: &FieldErrors,
    field: &str,
    label: &str,
    value: &str,
    hint: Option<(&str, &str)>,
    required: bool,
) -> Markup {
    html! {
        label for=(field) { (label) }
        @if let Some((id, text)) = hint { p.hint id=(id) { (text) } }
        input id=(field) name=(field) type="text" value=(value) required[required]
            aria-invalid=[errors.get(field).map(|_| "true")]
            aria-describedby=[described_by(errors, field, hint.map(|h| h.0))];
        (field_error(errors, field))
    }
}

fn select(errors: &FieldErrors, field: &str, label: &str, selected: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        label for=(field) { (label) }
        select id=(field) name=(field) aria-invalid=[errors.get(field).map(|_| "true")]
            aria-describedby=[described_by(errors, field, None)] {
            @for (value, text) in options {
                option value=(value) selected[*value == selected] { (text) }
            }
        }
        (field_error(errors, field))
    }
}

/// The purchase form.
pub(crate) fn purchase(
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
pub(crate) fn order_confirmation(nav: &Nav<'_>, customer_id: &str, rows: &[SubscriptionRow<'_>]) -> Markup {
    layout(
        "Thank you for your purchase",
        Some(nav),
        html! {
            p.notice role="status" { "The order is placed. The customer's subscription waits for the publisher to finish setup." }
            @for row in rows {
                @let s = row.subscription;
                section {
                    h2 { (s.friendly_name) }
                    dl {
                        dt { "Customer" } dd { (customer_id) }
                        dt { "Offer" } dd { (s.offer_id) " by " (s.publisher_id) }
                        dt { "Plan" } dd { (s.plan_id) }
                        dt { "Quantity" } dd { (s.quantity) }
                        dt { "Status" } dd { (status_badge(s)) }
                    }
                    (action_needed_cell(row))
                    p { a href={ "/console/customers/" (customer_id) "/subscriptions/" (s.id) } { "View subscription" } }
                }
            }
        },
    )
}

fn describe(entry: &TimelineEntry) -> String {
    match &entry.event.envelope.event {
        Event::SubscriptionPurchased(p) => format!(
            "Purchased {} licenses of {} ({}), term {}, billed {}",
            p.quantity, p.offer_id, p.plan_id, p.term, p.billing_cycle
        ),
        Event::LicensesAssigned { assigned_count } => format!("Publisher assigned {assigned_count} licenses"),
        Event::SetupConfirmed { plan_id, quantity } => {
            format!("Publisher confirmed setup of plan {plan_id} with {quantity} licenses")
        }
        Event::QuantityChanged { previous_quantity, quantity } => {
            format!("Licenses changed from {previous_quantity} to {quantity}")
        }
        Event::NicknameChanged { friendly_name } => format!("Nickname changed to \u{201c}{friendly_name}\u{201d}"),
        Event::AutoRenewChanged { auto_renew: true } => "Auto-renew turned on".into(),
        Event::AutoRenewChanged { auto_renew: false } => "Auto-renew turned off".into(),
        Event::IndirectResellerSet { mpn_id } => format!("Indirect reseller MPN ID set to {mpn_id}"),
        Event::Cancelled(c) => format!(
            "Cancelled: {} ({})",
            c.reason,
            if c.refundable { "inside the cancellation window, refundable" } else { "not refundable" }
        ),
        Event::OperationRequested { action, plan_id, quantity, .. } => {
            format!("Publisher requested {action:?} to plan {plan_id} with {quantity} licenses")
        }
        Event::OperationCompleted { outcome: OperationOutcome::Succeeded, .. } => {
            "Publisher completed the requested change".into()
        }
        Event::OperationCompleted { .. } => "Publisher reported the requested change failed".into(),
    }
}

fn by_whom(kind: SourceKind, actor: &str) -> String {
    match kind {
        SourceKind::Partner => format!("partner {actor}"),
        SourceKind::Publisher => format!("publisher {actor}"),
        SourceKind::System => "the system".into(),
    }
}

fn billing_words(kind: &str) -> &'static str {
    match kind {
        "billing.started" => "billing started",
        "billing.quantity_changed" => "billing quantity changed",
        "billing.plan_changed" => "billing plan changed",
        "billing.stopped" => "billing stopped",
        _ => "billing changed",
    }
}

/// Everything the subscription page shows.
pub(crate) struct SubscriptionPage<'a> {
    /// Customer in the path.
    pub(crate) customer_id: &'a str,
    /// The subscription and its publisher link.
    pub(crate) row: SubscriptionRow<'a>,
    /// Its catalog plan (quantity bounds), when still in the catalog.
    pub(crate) plan: Option<&'a Plan>,
    /// Its history.
    pub(crate) timeline: &'a [TimelineEntry],
    /// Now, for the cancellation window.
    pub(crate) now: DateTime<Utc>,
    /// A change that just succeeded, to confirm.
    pub(crate) done: Option<&'a str>,
    /// Which form failed and why, when re-rendered after an error.
    pub(crate) errors: &'a FieldErrors,
    /// What the failed form held, to keep the user's input.
    pub(crate) submitted: Option<(&'a str, &'a str)>,
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
pub(crate) fn subscription(nav: &Nav<'_>, tokens: &FormTokens<'_>, page: &SubscriptionPage<'_>) -> Markup {
    let s = page.row.subscription;
    let base = format!("/console/customers/{}/subscriptions/{}", page.customer_id, s.id);
    let etag = crate::views::etag(s);
    let errors = page.errors;
    let kept = |field: &str, current: String| match page.submitted {
        Some((f, v)) if f == field => v.to_owned(),
        _ => current,
    };
    let open = s.status != Status::Unsubscribed;
    let window_open = s.within_cancellation_window(page.now);
    let (min, max) = page.plan.map(|p| (p.min_quantity, p.max_quantity)).unwrap_or((1, u32::MAX));
    layout(
        &s.friendly_name,
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
                    dt { "Offer" } dd { (s.offer_id) " by " (s.publisher_id) }
                    dt { "Plan" } dd { (s.plan_id) }
                    dt { "Quantity" } dd { (s.quantity) " licenses" }
                    dt { "Term" } dd { (s.term) ", billed " (s.billing_cycle) }
                    dt { "Auto-renew" } dd { @if s.auto_renew { "On" } @else { "Off" } }
                    dt { "Indirect reseller MPN ID" } dd { (s.indirect_reseller_mpn_id.as_deref().unwrap_or("None")) }
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
                    @if let Some(c) = &s.cancellation {
                        dt { "Cancellation" }
                        dd { (c.reason) "; " (if c.refundable { "refundable" } else { "not refundable" }) }
                    }
                }
            }
            @if open {
                section aria-labelledby="changes-heading" {
                    h2 id="changes-heading" { "Change this subscription" }
                    (change_form(&base, "nickname", tokens, &etag, html! {
                        (text_input(errors, "friendly_name", "Nickname", &kept("friendly_name", s.friendly_name.clone()), None, true))
                        button type="submit" { "Save nickname" }
                    }))
                    (change_form(&base, "quantity", tokens, &etag, html! {
                        label for="quantity" { "Quantity (licenses)" }
                        p.hint id="quantity-hint" { "This plan allows " (min) " to " (max) " licenses." }
                        input id="quantity" name="quantity" type="number" min=(min) max=(max)
                            value=(kept("quantity", s.quantity.to_string())) required
                            aria-invalid=[errors.get("quantity").map(|_| "true")]
                            aria-describedby=[described_by(errors, "quantity", Some("quantity-hint"))];
                        (field_error(errors, "quantity"))
                        button type="submit" { "Update licenses" }
                    }))
                    (change_form(&base, "auto-renew", tokens, &etag, html! {
                        p id="auto-renew-state" { "Auto-renew is " strong { @if s.auto_renew { "on" } @else { "off" } } "." }
                        input type="hidden" name="auto_renew" value=(if s.auto_renew { "false" } else { "true" });
                        (field_error(errors, "auto_renew"))
                        button type="submit" aria-describedby=[described_by(errors, "auto_renew", Some("auto-renew-state"))] {
                            @if s.auto_renew { "Turn auto-renew off" } @else { "Turn auto-renew on" }
                        }
                    }))
                    (change_form(&base, "reseller", tokens, &etag, html! {
                        (text_input(errors, "mpn_id", "Indirect reseller MPN ID", &kept("mpn_id", s.indirect_reseller_mpn_id.clone().unwrap_or_default()), None, true))
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
            section aria-labelledby="timeline-heading" {
                h2 id="timeline-heading" { "Timeline" }
                ol.timeline {
                    @for entry in page.timeline {
                        @let e = &entry.event.envelope;
                        li {
                            time datetime=(e.occurred_at.to_rfc3339()) { (date_time(&e.occurred_at)) }
                            ": " (describe(entry)) ", by " (by_whom(e.source.kind, &e.source.actor_id)) "."
                            @match &entry.outcome {
                                Outcome::Rejected { reason, .. } => { " " strong { "Not applied: " (reason) "." } }
                                Outcome::Duplicate => { " (a repeat; ignored)" }
                                Outcome::Applied => {}
                            }
                            @for (_, kind) in &entry.billing { " " strong { (PreEscaped("&rarr; ")) (billing_words(kind)) "." } }
                        }
                    }
                }
            }
        },
    )
}

/// A page for errors that have no form to return to (not found, expired form, ...).
pub(crate) fn error(nav: Option<&Nav<'_>>, title: &str, message: &str) -> Markup {
    layout(
        title,
        nav,
        html! {
            p role="alert" { (message) }
            p { a href="/console/customers" { "Back to your customers" } }
        },
    )
}
