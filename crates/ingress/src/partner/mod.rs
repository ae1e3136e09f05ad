//! The partner API under `/v1/customers/{customerId}/...`, the one a CSP partner (a reseller, in
//! Partner Center's terms) calls with a bearer API key: buying subscriptions for its customers
//! ([`orders`]), and listing, reading, changing and cancelling them, with each one's history
//! ([`subscriptions`]), in Partner Center's field names ([`views`]).
//!
//! In: requests authenticated as a [`crate::security::bearer::PartnerCaller`]. Out: events
//! appended to the log through [`crate::idempotency::write`] (purchases, changes) and answers
//! read from the read models or, where a read must be exact, from the log. A partner sees only
//! what it bought, and only under the customer it bought it for: anything else is 404.
//!
//! The console ([`crate::console`]) writes through the same two functions,
//! [`orders::place_order`] and [`subscriptions::change_subscription`], so it can do exactly what
//! this API lets a partner do. A customer id is the partner's own name for its customer, checked
//! the same way everywhere it is taken ([`check_customer_id`]).

pub(crate) mod orders;
pub(crate) mod subscriptions;
pub(crate) mod views;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;

/// The partner API's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().merge(orders::router()).merge(subscriptions::router())
}

/// Checks a customer id from the path: the partner's own identifier for its customer.
pub(crate) fn check_customer_id(raw: &str) -> Result<(), ApiError> {
    // "." and ".." would be path segments that URLs resolve away (links to the customer break).
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && raw != "."
        && raw != ".."
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest {
            field: "customerId".into(),
            message: "must be 1 to 128 letters, digits, '-', '_' or '.' (and not just \".\" or \"..\")".into(),
        })
    }
}
