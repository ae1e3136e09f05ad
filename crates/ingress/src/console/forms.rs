//! What the console's forms send, how API errors become words next to a form field, and the
//! idempotency key a form's write is sent under ([`form_key`]).
//!
//! The console writes only through the partner API's own functions, so its errors are the
//! API's errors; this module is the one place they are translated for people: field names
//! become labels, and errors without a field land on the form that was sent.

use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::security::bearer::PartnerCaller;
use axum::http::StatusCode;
use serde::Deserialize;

/// Errors to show, keyed by form field (`form` for the page as a whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// One error (or none).
    pub(crate) fn single(field: &str, message: Option<&str>) -> Self {
        FieldErrors(message.map(|m| (field.to_owned(), m.to_owned())).into_iter().collect())
    }

    /// The message for `field`.
    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

/// The console field an API field name belongs to, with its label.
fn console_field(api_field: &str) -> Option<(&'static str, &'static str)> {
    let name = api_field.rsplit('.').next().unwrap_or(api_field);
    Some(match name {
        "customerId" => ("customer_id", "Customer ID"),
        "offerId" | "planId" => ("offer_plan", "Offer and plan"),
        "quantity" => ("quantity", "Quantity"),
        "termDuration" => ("term", "Term"),
        "billingCycle" => ("billing_cycle", "Billing cycle"),
        "friendlyName" => ("friendly_name", "Nickname"),
        "partnerIdOnRecord" | "partnerId" => ("mpn_id", "Indirect reseller MPN ID"),
        "autoRenewEnabled" => ("auto_renew", "Auto-renew"),
        "status" => ("cancel", "Cancellation"),
        _ => return None,
    })
}

/// Turns a validation message into a sentence: `must be ...` reads after the field's label.
fn sentence(label: Option<&str>, message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let text = match label {
        Some(label) if message.starts_with("must ") || message.starts_with("is ") => format!("{label} {message}"),
        _ => {
            let mut chars = message.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
    };
    format!("{text}.")
}

/// How a failed console write is shown: the status of the re-rendered page and the errors,
/// next to their fields; errors with no field of their own go to `fallback_field` (the
/// submitted form's field).
pub(crate) fn describe(error: &ApiError, fallback_field: &str) -> (StatusCode, FieldErrors) {
    let mut errors = Vec::new();
    let mut add = |api_field: Option<&str>, message: &str| {
        let mapped = api_field.and_then(console_field);
        let field = mapped.map(|(f, _)| f).unwrap_or(fallback_field);
        if errors.iter().all(|(f, _): &(String, String)| f != field) {
            errors.push((field.to_owned(), sentence(mapped.map(|(_, l)| l), message)));
        }
    };
    let status = match error {
        ApiError::Invalid(list) => {
            for e in list {
                add(Some(&e.field), &e.message);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ApiError::BadRequest { field, message } => {
            add(Some(field), message);
            StatusCode::BAD_REQUEST
        }
        ApiError::Conflict { message, .. } | ApiError::Rejected { message, .. } => {
            add(None, message);
            StatusCode::CONFLICT
        }
        ApiError::PreconditionFailed { .. } => {
            errors.push((
                "form".into(),
                "Someone changed this subscription while you were looking at it. The page now shows its current \
                 values; make your change again."
                    .into(),
            ));
            StatusCode::PRECONDITION_FAILED
        }
        ApiError::IdempotencyKeyReused(_) => {
            errors.push((
                "form".into(),
                "This form was already sent with other values. The page now shows the current values; make your \
                 change again."
                    .into(),
            ));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ApiError::NotFound(_) => {
            errors.push(("form".into(), "This subscription does not exist or is not yours.".into()));
            StatusCode::NOT_FOUND
        }
        ApiError::Unavailable(_) | ApiError::Overloaded(_) => {
            errors.push(("form".into(), "The service is busy and nothing was changed. Try again in a moment.".into()));
            StatusCode::SERVICE_UNAVAILABLE
        }
        ApiError::RequestTimeout(_) => {
            errors.push((
                "form".into(),
                "The form took too long to arrive and nothing was changed. Send it again.".into(),
            ));
            StatusCode::REQUEST_TIMEOUT
        }
        ApiError::TooManyRequests { .. } => {
            errors.push(("form".into(), "Too many attempts failed. Wait a little, then try again.".into()));
            StatusCode::TOO_MANY_REQUESTS
        }
        ApiError::MalformedJson(_)
        | ApiError::PayloadTooLarge { .. }
        | ApiError::Unauthorized { .. }
        | ApiError::Internal(_) => {
            errors.push((
                "form".into(),
                "Something went wrong on our side and nothing was changed. Try again; if it keeps happening, \
                 contact support."
                    .into(),
            ));
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, FieldErrors(errors))
}

/// Fields every signed-in form sends.
#[derive(Debug, Deserialize)]
pub(crate) struct Tokens {
    /// The session's CSRF token.
    #[serde(default)]
    pub(crate) csrf: String,
    /// The rendering's id (idempotency key).
    #[serde(default)]
    pub(crate) form_id: String,
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) api_key: String,
}

/// A form sent by a signed-in page, which must carry the session's CSRF token.
pub(crate) trait SessionForm {
    /// The CSRF token the form carried.
    fn csrf(&self) -> &str;
}

impl SessionForm for SignOut {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl SessionForm for Purchase {
    fn csrf(&self) -> &str {
        &self.tokens.csrf
    }
}

impl SessionForm for Change {
    fn csrf(&self) -> &str {
        &self.tokens.csrf
    }
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub(crate) struct SignOut {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The purchase form.
#[derive(Debug, Deserialize)]
pub(crate) struct Purchase {
    #[serde(flatten)]
    pub(crate) tokens: Tokens,
    #[serde(default)]
    pub(crate) customer_id: String,
    #[serde(default)]
    pub(crate) offer_plan: String,
    #[serde(default)]
    pub(crate) quantity: String,
    #[serde(default)]
    pub(crate) term: String,
    #[serde(default)]
    pub(crate) billing_cycle: String,
    #[serde(default)]
    pub(crate) friendly_name: String,
    #[serde(default)]
    pub(crate) mpn_id: String,
}

/// Any of the subscription page's change forms (each sends its own field).
#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    #[serde(flatten)]
    pub(crate) tokens: Tokens,
    /// The etag the page showed (sent as `If-Match`).
    #[serde(default)]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) friendly_name: Option<String>,
    #[serde(default)]
    pub(crate) quantity: Option<String>,
    #[serde(default)]
    pub(crate) auto_renew: Option<String>,
    #[serde(default)]
    pub(crate) mpn_id: Option<String>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// The idempotency key of a console write: the form's id, fingerprinted with what was sent.
pub(super) fn form_key(partner: &PartnerCaller, form_id: &str, path: &str, fields: &[&str]) -> Option<IdempotencyKey> {
    if form_id.is_empty() || form_id.len() > 64 {
        return None;
    }
    let mut parts: Vec<&[u8]> = vec![b"POST", path.as_bytes()];
    parts.extend(fields.iter().map(|f| f.as_bytes()));
    Some(IdempotencyKey::new(format!("partner:{}", partner.id), format!("console:{form_id}"), &parts))
}

/// Reads a whole number typed into a form, with a message people understand.
pub(crate) fn parse_count(field: &str, label: &str, raw: &str) -> Result<u32, ApiError> {
    raw.trim().parse::<u32>().map_err(|_| {
        ApiError::invalid(field, format!("{label} must be a whole number, such as 5 (you typed {:?})", raw.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn validation_errors_land_next_to_their_field_with_its_label() {
        let error = ApiError::Invalid(vec![FieldError {
            field: "lineItems[0].friendlyName".into(),
            message: "must not be empty".into(),
        }]);
        let (status, errors) = describe(&error, "form");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(errors.get("friendly_name"), Some("Nickname must not be empty."));
        assert_eq!(errors.get("form"), None);
    }

    #[test]
    fn rule_violations_land_on_the_form_that_was_sent() {
        let error = ApiError::Conflict {
            code: "cancellation-window-closed".into(),
            message: "the cancellation window closed at 2026-01-04T00:00:00Z".into(),
        };
        let (status, errors) = describe(&error, "cancel");
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(errors.get("cancel"), Some("The cancellation window closed at 2026-01-04T00:00:00Z."));
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let (status, errors) = describe(&ApiError::Internal("disk I/O error at /var/lib".into()), "quantity");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let message = errors.get("form").unwrap();
        assert!(!message.contains("disk"), "{message}");
    }

    #[test]
    fn a_number_field_rejects_words_in_plain_language() {
        assert_eq!(parse_count("quantity", "Quantity", " 7 ").unwrap(), 7);
        let err = parse_count("quantity", "Quantity", "seven").unwrap_err();
        let (_, errors) = describe(&err, "form");
        assert_eq!(errors.get("quantity"), Some("Quantity must be a whole number, such as 5 (you typed \"seven\")."));
    }
}
