//! The frame every console page is drawn in (head, stylesheet, navigation, one `h1`) and the
//! pieces of markup several pages share: form fields with their errors, a subscription's status
//! badge and its "action needed" box. Each page's own markup is in that page's module. All HTML
//! is rendered on the server with maud (escaped by construction).
//!
//! Markup choices are for accessibility first: one `h1` per page, every input has a `label`,
//! errors are tied to their field with `aria-describedby` and announced with `role="alert"`,
//! tables have header cells, and nothing needs JavaScript or a mouse.

use super::forms::FieldErrors;
use chrono::{DateTime, Utc};
use fulfillment_core::{Status, Subscription};
use maud::{html, Markup, DOCTYPE};

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

pub(crate) fn hidden_tokens(tokens: &FormTokens<'_>) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(tokens.csrf_token);
        input type="hidden" name="form_id" value=(tokens.form_id);
    }
}

/// A date as people read it, in UTC (stated, so nobody guesses the zone).
pub(crate) fn date_time(at: &DateTime<Utc>) -> String {
    at.format("%-d %b %Y, %H:%M UTC").to_string()
}

pub(crate) fn layout(title: &str, nav: Option<&Nav<'_>>, content: Markup) -> Markup {
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
pub(crate) fn field_error(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(message) = errors.get(field) {
            p.error id={ (field) "-error" } role="alert" { (message) }
        }
    }
}

pub(crate) fn described_by(errors: &FieldErrors, field: &str, hint: Option<&str>) -> Option<String> {
    let mut ids = Vec::new();
    if errors.get(field).is_some() {
        ids.push(format!("{field}-error"));
    }
    if let Some(hint) = hint {
        ids.push(hint.to_owned());
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub(crate) fn text_input(
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

pub(crate) fn select(
    errors: &FieldErrors,
    field: &str,
    label: &str,
    selected: &str,
    options: &[(&str, &str)],
) -> Markup {
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

pub(crate) fn status_badge(s: &Subscription) -> Markup {
    let (class, text) = match s.status {
        Status::PendingFulfillment => ("pending", "Action needed"),
        Status::Subscribed => ("active", "Active"),
        Status::Suspended => ("suspended", "Suspended"),
        Status::Unsubscribed => ("deleted", "Cancelled"),
        Status::Expired => ("expired", "Expired"),
    };
    html! { span class={ "badge " (class) } { (text) } }
}

/// One subscription's row in a customer's table, with what the page needs beyond the state.
pub(crate) struct SubscriptionRow<'a> {
    /// The subscription.
    pub(crate) subscription: &'a Subscription,
    /// The publisher's landing page with the authorization code.
    pub(crate) activation_link: Option<String>,
}

pub(crate) fn action_needed_cell(row: &SubscriptionRow<'_>) -> Markup {
    let s = row.subscription;
    html! {
        @if s.action_needed() {
            div.action-needed {
                strong { "Action needed" }
                p.hint { "The customer finishes setup at the publisher's site with this authorization code." }
                @if let Some(link) = &row.activation_link {
                    p { a href=(link) rel="noopener noreferrer" target="_blank" { "Go to publisher's site" } }
                }
                p { "Authorization code: " code { (s.purchase.authorization_code) } }
            }
        }
    }
}
