//! Signing in and out: `/console/` (to the customers or the sign-in page), `/console/sign-in`
//! (the form, and the partner API key it sends) and `/console/sign-out`.
//!
//! In: a partner API key typed into the form, with the pre-session CSRF token of the sign-in
//! cookie (against login CSRF). Out: a new session (its id in an `HttpOnly` cookie) and a
//! redirect to the customers, or the form again with what went wrong. A wrong key counts against
//! the address and the key like a wrong bearer key ([`crate::security::auth_failures`]); the
//! key itself is never logged.

use super::cookies::{cookie, over_tls, set_cookie, SESSION_COOKIE, SIGN_IN_COOKIE};
use super::error_pages::bad_form;
use super::forms::{self, FieldErrors};
use super::layout::{described_by, field_error, layout};
use super::signed_in::SignedIn;
use super::{page, see_other, ConsoleState};
use crate::security::auth_failures::Attempt;
use crate::security::bearer;
use crate::security::credentials::{random_token, tokens_match};
use crate::security::sessions;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use tracing::{info, warn};

/// The sign-in routes.
pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(show_sign_in).post(sign_in))
        .route("/sign-out", post(sign_out))
}

/// The address the request came from, when it came through a listener.
struct ConnectInfoIfAny(Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ConnectInfoIfAny {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfoIfAny(bearer::peer(&parts.extensions)))
    }
}

/// `/console/`: to the customers when signed in, else to the sign-in page.
async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let signed_in = cookie(&headers, SESSION_COOKIE).and_then(|id| state.sessions.get(id)).is_some();
    see_other(if signed_in { "/console/customers" } else { "/console/sign-in" })
}

/// The sign-in page with a fresh pre-session CSRF token, in its cookie and in the form.
fn sign_in_form(status: StatusCode, headers: &HeaderMap, error: Option<&str>) -> Response {
    let token = random_token();
    let mut response = page(status, sign_in_page(&token, error));
    set_cookie(&mut response, SIGN_IN_COOKIE, &token, "/console/sign-in", 3600, over_tls(headers));
    response
}

async fn show_sign_in(headers: HeaderMap) -> Response {
    sign_in_form(StatusCode::OK, &headers, None)
}

async fn sign_in(
    State(state): State<ConsoleState>,
    ConnectInfoIfAny(peer): ConnectInfoIfAny,
    headers: HeaderMap,
    form: Result<Form<forms::SignIn>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return bad_form(None, rejection),
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !tokens_match(expected, &form.csrf) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            &headers,
            Some("The sign-in form expired or did not come from this site. Please sign in again."),
        );
    }
    let attempt = Attempt::from(peer).presenting("API key", form.api_key.trim());
    if let Err(retry_after) = state.app.auth_failures.admit(&attempt) {
        let mut response = sign_in_form(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            Some("Too many sign-in attempts failed. Wait a little, then try again."),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    let Some(partner) = state.app.directory.partner_by_key(form.api_key.trim()) else {
        state.app.auth_failures.failed(&attempt);
        info!("console sign-in refused: unknown API key");
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            &headers,
            Some("That API key is not valid. Check it and try again."),
        );
    };
    // Signing in again (perhaps as another partner) ends the browser's previous session.
    if let Some(previous) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(previous);
    }
    let Some((session_id, _)) = state.sessions.create(&partner.id) else {
        warn!(partner_id = %partner.id, "console sign-in refused: the session table is full");
        let mut response = sign_in_form(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            Some("Too many people are signed in right now. Try again in a few minutes."),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    };
    info!(partner_id = %partner.id, "console sign-in");
    let mut response = see_other("/console/customers");
    let secure = over_tls(&headers);
    set_cookie(&mut response, SESSION_COOKIE, &session_id, "/console", sessions::ABSOLUTE_TIMEOUT.as_secs(), secure);
    set_cookie(&mut response, SIGN_IN_COOKIE, "", "/console/sign-in", 0, secure);
    response
}

async fn sign_out(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    form: Result<Form<forms::SignOut>, FormRejection>,
) -> Response {
    if let Err(refused) = signed_in.accept(form) {
        return *refused;
    }
    state.sessions.remove(&signed_in.session_id);
    info!(partner_id = %signed_in.session.partner_id, "console sign-out");
    let mut response = see_other("/console/sign-in");
    set_cookie(&mut response, SESSION_COOKIE, "", "/console", 0, over_tls(&headers));
    response
}

/// The sign-in page.
fn sign_in_page(csrf_token: &str, error: Option<&str>) -> Markup {
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
