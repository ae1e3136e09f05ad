//! Bearer authentication extractors. A handler that takes [`PartnerCaller`] or
//! [`BillingCaller`] cannot run for an unauthenticated request: authentication is in the type.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

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

/// An authenticated CSP partner.
#[derive(Debug, Clone)]
pub struct PartnerCaller {
    /// Partner id.
    pub id: String,
}

impl FromRequestParts<AppState> for PartnerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let partner = state.directory.partner_by_key(token).ok_or_else(|| ApiError::bearer("invalid API key"))?;
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
        let token = bearer_token(parts)?;
        let consumer =
            state.directory.billing_consumer_by_key(token).ok_or_else(|| ApiError::bearer("invalid API key"))?;
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
        let token = bearer_token(parts)?;
        let publisher =
            state.directory.publisher_by_token(token).ok_or_else(|| ApiError::bearer("invalid access token"))?;
        Ok(PublisherCaller { id: publisher.id.clone() })
    }
}
