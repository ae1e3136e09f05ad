//! [`SignedIn`]: the extractor that makes a console route require a session, and checks the
//! CSRF token of every form a signed-in page sends.
//!
//! In: the session cookie ([`super::cookies`]), looked up in the session table
//! ([`crate::security::sessions`]); a submitted form. Out: the signed-in partner (as the
//! [`PartnerCaller`] the partner API's functions take), or a redirect to the sign-in page, or a
//! 403 page for a form that did not come from this session.

use super::cookies::{cookie, SESSION_COOKIE};
use super::error_pages::{bad_form, error_page};
use super::forms;
use super::layout::{FormTokens, Nav};
use super::{page, see_other, ConsoleState};
use crate::security::bearer::PartnerCaller;
use crate::security::credentials::tokens_match;
use crate::security::sessions::Session;
use axum::extract::rejection::FormRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use tracing::warn;

/// A signed-in partner. Taking it in a handler makes the route require a session; without one
/// the browser is sent to the sign-in page.
pub(super) struct SignedIn {
    pub(super) session_id: String,
    pub(super) session: Session,
}

impl SignedIn {
    pub(super) fn partner(&self) -> PartnerCaller {
        PartnerCaller { id: self.session.partner_id.clone() }
    }

    pub(super) fn nav(&self) -> Nav<'_> {
        Nav { partner_id: &self.session.partner_id, csrf_token: &self.session.csrf_token }
    }

    /// Hidden fields for a freshly rendered form.
    pub(super) fn tokens<'a>(&'a self, form_id: &'a str) -> FormTokens<'a> {
        FormTokens { csrf_token: &self.session.csrf_token, form_id }
    }

    /// A signed-in page's form, read and checked: the page answering an unreadable form or one
    /// whose CSRF token is not this session's comes back as the error.
    pub(super) fn accept<T: forms::SessionForm>(
        &self,
        form: Result<Form<T>, FormRejection>,
    ) -> Result<T, Box<Response>> {
        let form = match form {
            Ok(Form(form)) => form,
            Err(rejection) => return Err(Box::new(bad_form(Some(&self.nav()), rejection))),
        };
        match self.csrf_refusal(form.csrf()) {
            Some(refused) => Err(Box::new(refused)),
            None => Ok(form),
        }
    }

    /// The refusal of a form whose CSRF token is not this session's (`None`: the form is ours).
    fn csrf_refusal(&self, submitted: &str) -> Option<Response> {
        if tokens_match(&self.session.csrf_token, submitted) {
            None
        } else {
            warn!(partner_id = %self.session.partner_id, "console form refused: CSRF token missing or wrong");
            Some(page(
                StatusCode::FORBIDDEN,
                error_page(
                    Some(&self.nav()),
                    "This form has expired",
                    "The form did not come from this sign-in session. Nothing was changed; open the page again and \
                     repeat the change.",
                ),
            ))
        }
    }
}

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let session_id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| see_other("/console/sign-in"))?;
        let session = state.sessions.get(session_id).ok_or_else(|| see_other("/console/sign-in"))?;
        Ok(SignedIn { session_id: session_id.to_owned(), session })
    }
}
