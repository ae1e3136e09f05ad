//! The changes a partner makes on a subscription's page, each its own form posted to
//! `/console/customers/{customerId}/subscriptions/{id}/{action}`: `nickname`, `quantity`,
//! `auto-renew`, `reseller` and `cancel`.
//!
//! In: the form (the field it changes, the etag the page showed, the session's CSRF token and the
//! form's id). Out: the change made through the partner API's own write path
//! ([`change_subscription`], with the etag as `If-Match` and the form's idempotency key), then a
//! redirect to the page saying what was done; or the page again with the error next to the form
//! that was sent.

use super::error_pages::not_found_page;
use super::forms::{self, form_key};
use super::signed_in::SignedIn;
use super::subscription::{render_subscription, Feedback};
use super::{see_other, ConsoleState};
use crate::error::ApiError;
use crate::partner::subscriptions::{change_subscription, SubscriptionPatch};
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use fulfillment_core::SubscriptionId;
use tracing::{warn, Instrument};

/// The change routes.
pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/customers/{customer_id}/subscriptions/{id}/{action}", post(change))
}

/// What a successful change says on the page it returns to.
pub(super) fn done_message(action: &str) -> Option<&'static str> {
    Some(match action {
        "nickname" => "Nickname saved.",
        "quantity" => "Licenses updated.",
        "auto-renew" => "Auto-renew updated.",
        "reseller" => "Indirect reseller MPN ID saved.",
        "cancel" => "Subscription cancelled.",
        _ => return None,
    })
}

/// The patch a change form asks for, and what was typed (kept in the form after an error).
fn patch_for(action: &str, form: &forms::Change) -> Result<(SubscriptionPatch, String), ApiError> {
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let mut patch = SubscriptionPatch::default();
    let typed = match action {
        "nickname" => {
            patch.friendly_name = Some(text(&form.friendly_name));
            text(&form.friendly_name)
        }
        "quantity" => {
            let typed = text(&form.quantity);
            patch.quantity = Some(forms::parse_count("quantity", "Quantity", &typed)?);
            typed
        }
        "auto-renew" => {
            patch.auto_renew_enabled = Some(match text(&form.auto_renew).as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(ApiError::invalid("autoRenewEnabled", "must be on or off")),
            });
            String::new()
        }
        "reseller" => {
            let typed = text(&form.mpn_id);
            if typed.is_empty() {
                return Err(ApiError::invalid("partnerId", "must not be empty"));
            }
            patch.partner_id = Some(typed.clone());
            typed
        }
        "cancel" => {
            patch.status = Some("deleted".into());
            patch.cancellation_reason = Some(text(&form.reason)).filter(|r| !r.is_empty());
            text(&form.reason)
        }
        _ => return Err(ApiError::NotFound("no such change".into())),
    };
    Ok((patch, typed))
}

/// `POST .../{action}`: makes the change, then back to the page (`?done=`), or the page again
/// with the error.
async fn change(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, raw_id, action)): Path<(String, String, String)>,
    form: Result<Form<forms::Change>, FormRejection>,
) -> Response {
    let nav = signed_in.nav();
    let form = match signed_in.accept(form) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let (Ok(id), Some(_)) = (raw_id.parse::<SubscriptionId>(), done_message(&action)) else {
        return not_found_page(Some(&nav), "There is no such change for this subscription.");
    };
    let span = tracing::info_span!("console_change", subscription_id = %id, action = %action);
    async {
        let partner = signed_in.partner();
        let fallback = match action.as_str() {
            "nickname" => "friendly_name",
            "quantity" => "quantity",
            "auto-renew" => "auto_renew",
            "reseller" => "mpn_id",
            _ => "cancel",
        };
        let (result, typed) = match patch_for(&action, &form) {
            Ok((patch, typed)) => {
                let path = format!("/console/customers/{customer_id}/subscriptions/{id}/{action}");
                let fields = [
                    form.version.as_str(),
                    form.friendly_name.as_deref().unwrap_or(""),
                    form.quantity.as_deref().unwrap_or(""),
                    form.auto_renew.as_deref().unwrap_or(""),
                    form.mpn_id.as_deref().unwrap_or(""),
                    form.reason.as_deref().unwrap_or(""),
                ];
                let key = form_key(&partner, &form.tokens.form_id, &path, &fields);
                let if_match = Some(form.version.clone()).filter(|v| !v.is_empty());
                let result =
                    change_subscription(&state.app, &partner, &customer_id, id, &patch, if_match, key.as_ref()).await;
                (result, typed)
            }
            Err(e) => (Err(e), String::new()),
        };
        match result {
            Ok(_) => see_other(&format!("/console/customers/{customer_id}/subscriptions/{id}?done={action}")),
            Err(error) => {
                let (status, errors) = forms::describe(&error, fallback);
                if status == StatusCode::NOT_FOUND {
                    return not_found_page(Some(&nav), "You have no subscription with this ID under this customer.");
                }
                if status.is_server_error() {
                    warn!(%error, "console change failed");
                }
                // After a stale page (412) or a reused form, the page shows the current values
                // as its message says; otherwise it keeps what was typed, to be corrected.
                let stale = matches!(error, ApiError::PreconditionFailed { .. } | ApiError::IdempotencyKeyReused(_));
                let submitted_field = if fallback == "cancel" { "reason" } else { fallback };
                let submitted = (!stale).then_some((submitted_field, typed.as_str()));
                let feedback = Feedback { status, done: None, errors: &errors, submitted };
                render_subscription(&state, &signed_in, &customer_id, id, feedback).await
            }
        }
    }
    .instrument(span)
    .await
}
