//! The Metering API's answer to each usage event: its status (the spec's `StatusEnum`), where
//! each status comes from, and how a single `usageEvent` turns it into an HTTP answer.
//!
//! In: a domain [`Rejection`], or a reading error of the request. Out: [`ItemError`] (status,
//! field, message), rendered by [`single_error`] as the spec's error bodies, which are also
//! RFC 9457 problem documents (`type`, `title`, `status`, `detail` beside the spec's `code`,
//! `message`, `target`, `details`, or `additionalInfo` for a duplicate).
//!
//! [`ItemError`] is not a second error type of the crate beside [`crate::error::ApiError`]: it
//! is an answer, one per usage event, that a batch returns inside a 200. A request that cannot
//! be answered at all (log unavailable, bad credentials) is still an `ApiError`.

use super::views;
use crate::error::problem;
use axum::http::StatusCode;
use axum::response::Response;
use fulfillment_core::{AcceptedUsage, Rejection, SubscriptionId};
use serde::Serialize;
use serde_json::json;

/// The spec's `StatusEnum` (the ones this service answers; `Error` is for the unexpected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UsageStatus {
    /// Recorded; it will be billed.
    Accepted,
    /// More than 24 hours late.
    Expired,
    /// A report for this dimension and hour was already accepted.
    Duplicate,
    /// Something unexpected.
    Error,
    /// No such subscription.
    ResourceNotFound,
    /// The subscription belongs to another publisher.
    ResourceNotAuthorized,
    /// The subscription is not active (pending, suspended, cancelled or expired).
    ResourceNotActive,
    /// The plan has no such dimension.
    InvalidDimension,
    /// The quantity is not a number above zero this service can hold.
    InvalidQuantity,
    /// A field is missing or malformed.
    BadArgument,
}

impl UsageStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Accepted => "Accepted",
            UsageStatus::Expired => "Expired",
            UsageStatus::Duplicate => "Duplicate",
            UsageStatus::Error => "Error",
            UsageStatus::ResourceNotFound => "ResourceNotFound",
            UsageStatus::ResourceNotAuthorized => "ResourceNotAuthorized",
            UsageStatus::ResourceNotActive => "ResourceNotActive",
            UsageStatus::InvalidDimension => "InvalidDimension",
            UsageStatus::InvalidQuantity => "InvalidQuantity",
            UsageStatus::BadArgument => "BadArgument",
        }
    }
}

/// Why one usage event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Its status.
    pub status: UsageStatus,
    /// The field at fault (`usageEvent` for the whole event).
    pub target: String,
    /// What is wrong.
    pub message: String,
    /// For a duplicate: the report accepted earlier (found by [`super::report`]).
    pub accepted: Option<Box<AcceptedUsage>>,
    /// For a duplicate: the accepted report's usage event id.
    pub duplicate_of: Option<uuid::Uuid>,
}

impl ItemError {
    /// An error of `status` about `target`.
    pub fn new(status: UsageStatus, target: &str, message: String) -> Self {
        ItemError { status, target: target.to_owned(), message, accepted: None, duplicate_of: None }
    }

    /// The status of a usage event the domain refused.
    pub fn from_rejection(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        let duplicate_of = match &rejection {
            Rejection::DuplicateUsage { usage_event_id, .. } => Some(*usage_event_id),
            _ => None,
        };
        let (status, target) = match &rejection {
            Rejection::NotFound => (UsageStatus::ResourceNotFound, "resourceId"),
            Rejection::NotSubscribed(_) | Rejection::Unsubscribed | Rejection::Expired => {
                (UsageStatus::ResourceNotActive, "resourceId")
            }
            Rejection::UsageBeforeActivation { .. } => (UsageStatus::ResourceNotActive, "effectiveStartTime"),
            Rejection::UsagePlanMismatch { .. } => (UsageStatus::BadArgument, "planId"),
            Rejection::UnknownDimension { .. } => (UsageStatus::InvalidDimension, "dimension"),
            Rejection::InvalidField { field: "quantity", .. } => (UsageStatus::InvalidQuantity, "quantity"),
            Rejection::InvalidField { field, .. } => (UsageStatus::BadArgument, *field),
            Rejection::UsageExpired { .. } => (UsageStatus::Expired, "effectiveStartTime"),
            Rejection::DuplicateUsage { .. } => (UsageStatus::Duplicate, "usageEvent"),
            _ => (UsageStatus::Error, "usageEvent"),
        };
        ItemError { duplicate_of, ..ItemError::new(status, target, message) }
    }

    /// The spec's error object for a batch item (`UsageEventConflictResponse`): the status as
    /// its `code`, except a duplicate's, which is `Conflict` with the accepted event, as the
    /// marketplace answers it.
    pub fn batch_error(&self, resource_id: Option<SubscriptionId>) -> serde_json::Value {
        match (&self.accepted, resource_id) {
            (Some(accepted), Some(id)) => json!({
                "code": "Conflict",
                "message": self.message,
                "additionalInfo": { "acceptedMessage": views::accepted(id, accepted, UsageStatus::Duplicate) },
            }),
            _ => json!({ "code": self.status.as_str(), "message": self.message }),
        }
    }
}

/// The HTTP answer of a single `usageEvent` that was not accepted: 409 for a duplicate (with the
/// accepted event), 403 for another publisher's subscription, 400 for everything else.
pub fn single_error(error: &ItemError, resource_id: Option<SubscriptionId>) -> Response {
    let detail = format!("{}: {}", error.status.as_str(), error.message);
    match (error.status, &error.accepted, resource_id) {
        (UsageStatus::Duplicate, Some(accepted), Some(id)) => problem(
            StatusCode::CONFLICT,
            "usage-duplicate",
            &detail,
            json!({
                "code": "Conflict",
                "message": error.message,
                "additionalInfo": { "acceptedMessage": views::accepted(id, accepted, UsageStatus::Duplicate) },
            }),
        ),
        _ => {
            let status = match error.status {
                UsageStatus::ResourceNotAuthorized => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            let detail_entry =
                json!({ "code": error.status.as_str(), "message": error.message, "target": error.target });
            problem(
                status,
                &format!("usage-{}", error.status.as_str()),
                &detail,
                json!({
                    "code": error.status.as_str(),
                    "message": error.message,
                    "target": error.target,
                    "details": [detail_entry],
                }),
            )
        }
    }
}
