//! The console's pages for errors that have no form to return to: not found, a method a page
//! does not take, a read that failed, a form that could not be read, and any error axum answered
//! by itself (so a browser never shows a JSON or plain-text error document).
//!
//! In: the error. Out: an HTML page with the right status, which says what happened in words
//! and never the cause of an internal error.

use super::forms;
use super::layout::{layout, Nav};
use super::page;
use crate::error::ApiError;
use crate::log_safe::log_safe;
use axum::extract::rejection::FormRejection;
use axum::http::{header, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use tracing::{info, warn};

/// A page for errors that have no form to return to (not found, expired form, ...).
pub(super) fn error_page(nav: Option<&Nav<'_>>, title: &str, message: &str) -> Markup {
    layout(
        title,
        nav,
        html! {
            p role="alert" { (message) }
            p { a href="/console/customers" { "Back to your customers" } }
        },
    )
}

/// 404: `what` says what was not found (the same words whether it does not exist or is another
/// partner's).
pub(super) fn not_found_page(nav: Option<&Nav<'_>>, what: &str) -> Response {
    page(StatusCode::NOT_FOUND, error_page(nav, "Not found", what))
}

/// 405: a form's address opened as a page, or the like.
pub(super) async fn method_not_allowed() -> Response {
    page(
        StatusCode::METHOD_NOT_ALLOWED,
        error_page(
            None,
            "This page cannot do that",
            "This address is for a form; open the page it belongs to instead.",
        ),
    )
}

/// 404 for an address the console does not have.
pub(super) async fn not_found() -> Response {
    not_found_page(None, "There is no page at this address.")
}

/// Turns an error while reading into a page: not found, or the service being busy.
pub(super) fn read_failure(nav: &Nav<'_>, error: ApiError, what: &str) -> Response {
    let (status, errors) = forms::describe(&error, "form");
    if status == StatusCode::NOT_FOUND {
        return not_found_page(Some(nav), what);
    }
    if status.is_server_error() {
        warn!(%error, "console page could not be read");
    }
    let message = errors.get("form").unwrap_or("Something went wrong; try again.").to_owned();
    page(status, error_page(Some(nav), "Cannot show this page", &message))
}

/// 400 for a form that could not be read (logged, safely, at INFO); a body the request limits
/// stopped gets their answer instead (413 too large, 408 too slow, 503 with `Retry-After` when
/// the bodies in flight fill the budget), as the APIs answer it.
pub(super) fn bad_form(nav: Option<&Nav<'_>>, rejection: FormRejection) -> Response {
    if let Some(limit) = crate::request_limits::cause(&rejection) {
        let error = ApiError::from(limit);
        let (status, errors) = forms::describe(&error, "form");
        let message = errors.get("form").unwrap_or("The form could not be read; try again.").to_owned();
        let mut response = page(status, error_page(nav, "The form could not be read", &message));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = header::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS);
            response.headers_mut().insert(header::RETRY_AFTER, retry);
        }
        return response;
    }
    info!(rejection = %log_safe(&rejection.body_text()), "console form unreadable");
    page(
        StatusCode::BAD_REQUEST,
        error_page(
            nav,
            "The form could not be read",
            "Nothing was changed. Open the page again and send the form from there.",
        ),
    )
}

/// Errors axum answers by itself inside the console (an undecodable path segment, say) become
/// HTML pages too, so a browser never shows a JSON or plain-text error document.
pub(super) async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_html = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (title, message) = match status {
        StatusCode::NOT_FOUND => ("Not found", "There is no page at this address."),
        s if s.is_server_error() => ("Something went wrong", "Something went wrong on our side; try again."),
        _ => ("This address cannot be read", "The address is not one the console knows. Nothing was changed."),
    };
    page(status, error_page(None, title, message))
}
