//! The one error type of the HTTP layer and its single mapping to RFC 9457 problem+json.
//!
//! Each variant documents the status it becomes. Internal errors are logged with their cause
//! and answered with a generic message, so nothing about our storage leaks to callers.
//!
//! The router's own answers are problem+json too, from here: no route (404), no such method
//! (405), a handler that panicked (500), and any error axum produced by itself
//! ([`ensure_problem_json`]).

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fulfillment_core::Rejection;
use fulfillment_log::LogError;
use fulfillment_read_model::ReadModelError;
use serde_json::json;
use tracing::error;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// A field-level validation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path or parameter name of the field.
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Everything an HTTP request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400: a header, query parameter or path segment is unusable.
    #[error("{message}")]
    BadRequest {
        /// The parameter or header.
        field: String,
        /// Why.
        message: String,
    },
    /// 400: a business rule refuses the request, on APIs (the SaaS Fulfillment API) whose
    /// contract answers rule violations with 400 rather than 409.
    #[error("{message}")]
    Rejected {
        /// Stable rule code.
        code: String,
        /// Readable reason.
        message: String,
    },
    /// 401: missing or wrong credentials or signature. `bearer` adds `WWW-Authenticate`.
    #[error("{message}")]
    Unauthorized {
        /// What is wrong.
        message: String,
        /// Whether the route authenticates with a bearer token.
        bearer: bool,
    },
    /// 404: unknown, or not the caller's.
    #[error("{0}")]
    NotFound(String),
    /// 409: a business rule refuses the change in the current state.
    #[error("{message}")]
    Conflict {
        /// Stable rule code.
        code: String,
        /// Readable reason.
        message: String,
    },
    /// 412: `If-Match` did not match the current etag.
    #[error("the subscription changed: its etag is now {current}")]
    PreconditionFailed {
        /// The current etag.
        current: String,
    },
    /// 413: body over the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// 422: the JSON is well-formed but a field is wrong.
    #[error("invalid request: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// 422: an idempotency key (or webhook id) was reused for a different request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// 408: the request body did not arrive within the body-read timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// 429: too many failed authentication attempts from this address or for this
    /// credential; `retry_after` seconds until the next attempt is heard.
    #[error("too many failed authentication attempts; retry in {retry_after} seconds")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: the log or the read models cannot serve now; nothing was recorded.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the server holds as many requests as it may (request bodies in flight); nothing
    /// was read or recorded. Expected under load, so not logged as an error.
    #[error("{0}")]
    Overloaded(String),
    /// 500: a bug or corrupt data; logged, never detailed to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// A 401 on a bearer-authenticated route.
    pub fn bearer(message: impl Into<String>) -> Self {
        ApiError::Unauthorized { message: message.into(), bearer: true }
    }

    /// Turns a domain rejection into an API error, prefixing field names (for line items).
    pub fn from_rejection(rejection: Rejection, field_prefix: &str) -> Self {
        match rejection {
            Rejection::NotFound => ApiError::NotFound("subscription not found".into()),
            Rejection::InvalidField { field, message } => ApiError::invalid(format!("{field_prefix}{field}"), message),
            other => ApiError::Conflict { code: other.code().into(), message: other.to_string() },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest { .. } | ApiError::Rejected { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) | ApiError::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &str {
        match self {
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::BadRequest { .. } => "bad-request",
            ApiError::Rejected { code, .. } => code,
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict { code, .. } => code,
            ApiError::PreconditionFailed { .. } => "precondition-failed",
            ApiError::PayloadTooLarge { .. } => "payload-too-large",
            ApiError::Invalid(_) => "validation-error",
            ApiError::IdempotencyKeyReused(_) => "idempotency-key-reused",
            ApiError::RequestTimeout(_) => "request-timeout",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Internal(_) => "internal-error",
        }
    }
}

/// Builds a problem+json response. Used by [`ApiError`] and by the router's fallbacks below.
pub fn problem(status: StatusCode, slug: &str, detail: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({
        "type": format!("urn:fulfillment:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// The answer where no route matches: 404 problem+json.
pub(crate) async fn not_found(uri: Uri) -> Response {
    problem(StatusCode::NOT_FOUND, "not-found", &format!("no resource at {}", uri.path()), json!({}))
}

/// The answer where a route exists but not for this method: 405 problem+json.
pub(crate) async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this resource does not support that method",
        json!({}),
    )
}

/// Any error response that is not already problem+json (a rejection produced inside axum
/// itself, such as an undecodable path segment) is rewritten as one, so API clients see a
/// single error format everywhere. The console's HTML pages are left alone: a browser shows
/// their errors to a person.
pub(crate) async fn ensure_problem_json(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let is_html = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text);
    let mut rewritten = problem(status, "bad-request", detail.trim(), json!({}));
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// The answer when a handler panicked: logged, then a 500 problem+json that says nothing more.
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "an internal error occurred; it has been logged",
        json!({}),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (detail, extra) = match &self {
            ApiError::Internal(cause) => {
                error!(cause = %cause, "internal error");
                ("an internal error occurred; it has been logged".to_owned(), json!({}))
            }
            ApiError::Unavailable(cause) => {
                error!(cause = %cause, "service unavailable");
                (
                    "the service cannot record or read events right now; nothing was recorded; retry later".to_owned(),
                    json!({}),
                )
            }
            ApiError::Invalid(errors) => {
                let errors: Vec<_> = errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect();
                (self.to_string(), json!({ "errors": errors }))
            }
            ApiError::BadRequest { field, message } => {
                (self.to_string(), json!({ "errors": [{"field": field, "message": message}] }))
            }
            ApiError::Conflict { code, .. } | ApiError::Rejected { code, .. } => {
                (self.to_string(), json!({ "code": code }))
            }
            other => (other.to_string(), json!({})),
        };
        let mut response = problem(status, self.slug(), &detail, extra);
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized { bearer: true, .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::Overloaded(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::PreconditionFailed { current } => {
                if let Ok(v) = HeaderValue::from_str(current) {
                    headers.insert(header::ETAG, v);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Unreadable { .. } => ApiError::Internal(e.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(e: ReadModelError) -> Self {
        match e {
            ReadModelError::Corrupt(_) => ApiError::Internal(e.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}
