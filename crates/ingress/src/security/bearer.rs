//! Bearer authentication extractors. A handler that takes [`PartnerCaller`] or
//! [`BillingCaller`] cannot run for an unauthenticated request: authentication is in the type.
//! A wrong credential counts against the caller's address and the credential
//! ([`crate::security::auth_failures`]); while either is barred, the answer is 429 before any check.

use crate::error::ApiError;
use crate::security::auth_failures::Attempt;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use std::net::SocketAddr;

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::bearer("missing Authorization header"))?
        .to_str()
        .map_err(|_| ApiError::bearer("unreadable Authorization header"))?;
    let (scheme, token) =
        value.split_once(' ').ok_or_else(|| ApiError::bearer("expected 'Authorization: Bearer <key>'"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::bearer("expected 'Authorization: Bearer <key>'"));
    }
    Ok(token.trim())
}

/// The address a request came from, when it came through a listener.
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
}

/// Looks the bearer token up with `find`, within the failure limits: 429 while the caller's
/// address or this token is barred, 401 (counted) when `find` knows no such token.
fn authenticate<T>(
    parts: &Parts,
    state: &AppState,
    kind: &str,
    find: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ApiError> {
    let token = bearer_token(parts)?;
    let attempt = Attempt::from(peer(&parts.extensions)).presenting(kind, token);
    state.auth_failures.admit(&attempt).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    find(token).ok_or_else(|| {
        state.auth_failures.failed(&attempt);
        ApiError::bearer(format!("invalid {kind}"))
    })
}

/// An authenticated CSP partner.
#[derive(Debug, Clone)]
pub struct PartnerCaller {
    /// Partner id.
    pub id: String,
}

impl FromRequestParts<AppState> for PartnerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let partner = authenticate(parts, state, "API key", |token| state.directory.partner_by_key(token))?;
        Ok(PartnerCaller { id: partner.id.clone() })
    }
}

/// An authenticated billing system.
#[derive(Debug, Clone)]
pub struct BillingCaller {
    /// Consumer id.
    pub id: String,
}

impl FromRequestParts<AppState> for BillingCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let consumer = authenticate(parts, state, "API key", |token| state.directory.billing_consumer_by_key(token))?;
        Ok(BillingCaller { id: consumer.id.clone() })
    }
}

/// An authenticated ISV publisher (SaaS Fulfillment API bearer token).
#[derive(Debug, Clone)]
pub struct PublisherCaller {
    /// Publisher id.
    pub id: String,
}

impl FromRequestParts<AppState> for PublisherCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let publisher = authenticate(parts, state, "access token", |token| state.directory.publisher_by_token(token))?;
        Ok(PublisherCaller { id: publisher.id.clone() })
    }
}
