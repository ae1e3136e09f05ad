//! Request bodies: size-limited bytes, then JSON whose errors name the field.
//!
//! axum's own extractors answer rejections in plain text; every body here goes through
//! [`JsonBody`] or [`RawBody`] so that a bad body always gets problem+json: 413 over the
//! limit, 400 when it is not JSON, 422 naming the field when a value does not fit, and the
//! answers of [`crate::request_limits`] (408 too slow, 503 budget spent).
//!
//! JSON is read strictly ([`crate::strict_json`]): an object wherever the contract has one, no
//! key twice in any object, UTF-8 throughout, nothing after the value. Webhook `data`, read
//! later from a `Value`, goes through the same rules ([`parse_value`]).

use crate::error::ApiError;
use crate::strict_json::Strict;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

pub use crate::request_limits::MAX_BODY_BYTES;

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

/// Parses a request body strictly (see [`crate::strict_json`]): it must be UTF-8 JSON with
/// nothing after the value, with an object wherever `T` has a struct and no key twice in any
/// object. Syntax errors are 400; a string that is not UTF-8 is 400 naming the field it is in;
/// a value that does not fit `T` (an array for an object, a repeated key) is 422 naming its
/// JSON path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match T::deserialize(Strict(&mut deserializer)) {
        Ok(value) => value,
        // Only a refused body pays for tracking JSON paths (a third of the parse): it is read
        // again with them, to name where it fails.
        Err(first) => {
            let mut deserializer = serde_json::Deserializer::from_slice(bytes);
            return Err(match serde_path_to_error::deserialize::<_, T>(Strict(&mut deserializer)) {
                Err(e) => body_error(e.path().to_string(), e.into_inner()),
                Ok(_) => body_error(".".into(), first),
            });
        }
    };
    deserializer.end().map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    // serde_json checks the UTF-8 of every string it reads, and strict reading reads them all;
    // this is the cheap proof of it for whatever else the bytes hold.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::MalformedJson(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    Ok(value)
}

/// Turns a serde_json error at `path` into the API's error.
fn body_error(path: String, error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            let message = error.to_string();
            if message.starts_with("invalid unicode code point") {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::BadRequest { field, message: format!("a string is not valid UTF-8 or Unicode: {message}") }
            } else {
                ApiError::MalformedJson(message)
            }
        }
        serde_json::error::Category::Data => {
            let message = error.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            ApiError::invalid(field_path(&path, "body", &message), message)
        }
    }
}

/// Interprets an already-parsed JSON value as `T`, strictly (an object wherever `T` has a
/// struct); field paths in errors get `prefix`.
pub fn parse_value<T: DeserializeOwned>(value: &serde_json::Value, prefix: &str) -> Result<T, ApiError> {
    let first = match T::deserialize(Strict(value)) {
        Ok(parsed) => return Ok(parsed),
        Err(first) => first,
    };
    // As in `parse_json`: the path to the error is tracked only once there is one.
    let (path, message) = match serde_path_to_error::deserialize::<_, T>(Strict(value)) {
        Err(e) => (e.path().to_string(), e.into_inner().to_string()),
        Ok(_) => (".".to_owned(), first.to_string()),
    };
    let field = if path == "." {
        field_path(prefix, prefix, &message)
    } else {
        field_path(&format!("{prefix}.{path}"), prefix, &message)
    };
    Err(ApiError::invalid(field, message))
}

/// The field an error names: `path` as serde_path_to_error reports it (`.` for the top, named
/// `top`), plus the field itself for a missing field (serde reports it at the parent's path).
fn field_path(path: &str, top: &str, message: &str) -> String {
    match (path, field_named_in(message)) {
        (".", Some(field)) => field,
        (".", None) => top.to_owned(),
        (path, Some(field)) => format!("{path}.{field}"),
        (path, None) => path.to_owned(),
    }
}

/// The field named by a "missing field `x`" message.
fn field_named_in(message: &str) -> Option<String> {
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

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Webhook {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        data: serde_json::Value,
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

    fn bad_request_field_of(err: ApiError) -> String {
        match err {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected 400 naming a field, got {other:?}"),
        }
    }

    #[test]
    fn an_array_is_refused_where_an_object_is_expected() {
        let err = parse_json::<Order>(br#"[[{"quantity":1,"planId":"a"}]]"#).unwrap_err();
        assert_eq!(field_of(err), "body");
        let err = parse_json::<Order>(br#"{"lineItems":[[1,"a"]]}"#).unwrap_err();
        assert_eq!(field_of(err), "lineItems[0]");
        let data = serde_json::json!([2]);
        let err = parse_value::<Item>(&data, "data").unwrap_err();
        assert_eq!(field_of(err), "data");
        let err = parse_value::<Order>(&serde_json::json!({"lineItems": [[1, "a"]]}), "data").unwrap_err();
        assert_eq!(field_of(err), "data.lineItems[0]");
        match parse_json::<Order>(b"[]").unwrap_err() {
            ApiError::Invalid(errors) => assert!(errors[0].message.contains("expected a JSON object"), "{errors:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_repeated_key_is_refused_and_named_at_any_depth() {
        let err = parse_json::<Webhook>(br#"{"type":"a","type":"b"}"#).unwrap_err();
        assert_eq!(field_of(err), "type");
        let err = parse_json::<Webhook>(br#"{"type":"a","data":{"assignedCount":1,"assignedCount":2}}"#).unwrap_err();
        assert_eq!(field_of(err), "data.assignedCount");
        let err = parse_json::<Webhook>(br#"{"type":"a","data":{"x":[{"y":1,"y":1}]}}"#).unwrap_err();
        assert_eq!(field_of(err), "data.x[0].y");
        let err = parse_json::<Order>(br#"{"lineItems":[{"quantity":1,"planId":"a","quantity":2}]}"#).unwrap_err();
        assert_eq!(field_of(err), "lineItems[0].quantity");
        // A field the type ignores is still one key.
        let err = parse_json::<Order>(br#"{"lineItems":[],"note":1,"note":2}"#).unwrap_err();
        assert_eq!(field_of(err), "note");
    }

    #[test]
    fn invalid_utf8_is_refused_naming_its_field_even_where_ignored() {
        let err = parse_json::<Order>(b"{\"lineItems\":[],\"note\":\"caf\xe9\"}").unwrap_err();
        assert_eq!(bad_request_field_of(err), "note");
        let err = parse_json::<Webhook>(b"{\"type\":\"a\",\"data\":{\"n\":[\"\xff\"]}}").unwrap_err();
        assert_eq!(bad_request_field_of(err), "data.n[0]");
        assert!(matches!(parse_json::<Order>(b"{\"lineItems\":[]}\xff"), Err(ApiError::MalformedJson(_))));
    }

    #[test]
    fn nothing_may_follow_the_value() {
        assert!(matches!(
            parse_json::<Order>(br#"{"lineItems":[]} {"lineItems":[]}"#),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(parse_json::<Order>(b"{\"lineItems\":[]}\r\n ").is_ok());
    }

    #[test]
    fn unknown_fields_are_still_accepted() {
        let order = parse_json::<Order>(br#"{"lineItems":[{"quantity":1,"planId":"a","x":{"y":[1,{}]}}],"z":null}"#);
        assert_eq!(order.unwrap().line_items.len(), 1);
    }
}
