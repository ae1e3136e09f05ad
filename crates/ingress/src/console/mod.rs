//! The partner console at `/console`: the Partner Center flow (customers, a customer's
//! subscriptions, purchase, a subscription's detail page) as server-rendered HTML.
//!
//! In: a browser's requests under `/console`. Out: HTML pages, and writes made through the partner
//! API's functions. It has no write path of its own: purchases and changes go through
//! [`crate::partner::orders::place_order`] and
//! [`crate::partner::subscriptions::change_subscription`] with the same checks, events and
//! idempotency, so what a partner can do here is exactly what the API lets it do. Each
//! rendered form carries a fresh id used as the write's idempotency key, so a double submit
//! makes one change.
//!
//! Security: sign-in with a partner API key (checked like a bearer key, in constant time, never
//! logged) starts a server-side session ([`crate::security::sessions`]); the cookie is `HttpOnly`,
//! `SameSite=Strict`, `Secure` behind TLS; every form carries the session's CSRF token and
//! the sign-in form a pre-session one (against login CSRF); another partner's customers and
//! subscriptions are not found; pages are `no-store` with a strict Content-Security-Policy.
//!
//! One module per page, each with its routes, handlers and markup: [`sign_in`], [`customers`],
//! [`purchase`] (and the order confirmation), [`subscription`] with [`subscription_changes`]
//! (the forms on it) and [`timeline`] (its history). What they share: [`layout`] (the page frame
//! and form widgets), [`forms`] (what forms send, errors in words, a form's idempotency key),
//! [`signed_in`] (the session extractor and CSRF check), [`cookies`], [`security_headers`] and
//! [`error_pages`].

mod cookies;
mod customers;
mod error_pages;
mod forms;
mod layout;
mod purchase;
mod security_headers;
mod sign_in;
mod signed_in;
mod subscription;
mod subscription_changes;
mod timeline;

use crate::security::sessions::Sessions;
use crate::state::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;
use std::sync::Arc;

/// State of the console routes: the API's state plus the session table.
#[derive(Clone)]
pub(crate) struct ConsoleState {
    app: AppState,
    sessions: Arc<Sessions>,
}

/// The console's routes, to nest at `/console` in the API's router: each page's module brings its
/// own, and around them the HTML error pages and the security headers.
pub(crate) fn router(app: AppState) -> Router<AppState> {
    let state = ConsoleState { app, sessions: Arc::new(Sessions::default()) };
    Router::new()
        .route("/style.css", get(stylesheet))
        .merge(sign_in::router())
        .merge(customers::router())
        .merge(purchase::router())
        .merge(subscription::router())
        .merge(subscription_changes::router())
        .fallback(error_pages::not_found)
        .method_not_allowed_fallback(error_pages::method_not_allowed)
        .layer(axum::middleware::map_response(error_pages::html_errors))
        .layer(axum::middleware::map_response(security_headers::security_headers))
        .with_state(state)
}

/// A rendered page with its status.
fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A 303 to `to` (a path built from checked ids). Unlike `Redirect::to`, never panics: a path
/// that cannot be a header value sends the browser to the customer list instead.
fn see_other(to: &str) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/console/customers"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// `/console/style.css`.
async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], layout::STYLESHEET).into_response()
}
