//! Request bodies: size-limited bytes, then JSON whose errors name the field.
//!
//! axum's own extractors answer rejections in plain text; every body here goes through
//! [`JsonBody`] or [`RawBody`] so that a bad body always gets problem+json: 413 over the
//! limit, 400 when it is not JSON, 422 naming the field when a value does not fit, and the
//! answers of [`crate::request_limits`] (408 too slow, 503 budget spent).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The raw body, for signature checks and fingerprints.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        Ok(RawBody(crate::body_buffer::read_whole(req.into_body(), declared).await?))
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422 with the field's path).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::MalformedJson(inner.to_string()),
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
                let field = if path == "." {
                    missing_field_name(&message).unwrap_or_else(|| "body".into())
                } else {
                    match missing_field_name(&message) {
                        Some(missing) => format!("{path}.{missing}"),
                        None => path,
                    }
                };
                ApiError::invalid(field, message)
            }
        }
    })
}

/// Interprets an already-parsed JSON value as `T`; field paths in errors get `prefix`.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = match (path.as_str(), missing_field_name(&message)) {
            (".", Some(missing)) => format!("{prefix}.{missing}"),
            (".", None) => prefix.to_owned(),
            (path, Some(missing)) => format!("{prefix}.{path}.{missing}"),
            (path, None) => format!("{prefix}.{path}"),
        };
        ApiError::invalid(field, message)
    })
}

/// serde reports a missing field at its parent's path; pull the field's own name out.
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// A JSON body of type `T`, with the raw bytes kept for idempotency fingerprints.
pub struct JsonBody<T> {
    /// Parsed value.
    pub value: T,
    /// The bytes it came from.
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(raw) = RawBody::from_request(req, state).await?;
        Ok(JsonBody { value: parse_json(&raw)?, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        quantity: u32,
        plan_id: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Order {
        line_items: Vec<Item>,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Invalid(errors) => errors[0].field.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert!(matches!(parse_json::<Order>(b"{\"lineItems\": ["), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<Order>(b"not json"), Err(ApiError::MalformedJson(_))));
    }

    #[test]
    fn shape_errors_name_the_field_path() {
        let err = parse_json::<Order>(br#"{"lineItems":[{"quantity":-1,"planId":"a"}]}"#).unwrap_err();
        assert_eq!(field_of(err), "lineItems[0].quantity");
        let err = parse_json::<Order>(br#"{"lineItems":[{"quantity":1}]}"#).unwrap_err();
        assert_eq!(field_of(err), "lineItems[0].planId");
        let err = parse_json::<Order>(br#"{}"#).unwrap_err();
        assert_eq!(field_of(err), "lineItems");
    }
}
