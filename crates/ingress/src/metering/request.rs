//! Reading the Metering API's request bodies: `UsageEvent` and `BatchUsageEvent`, strictly.
//!
//! A batch is read in two steps, so that one bad item does not cost its 24 neighbours: the body
//! must be strict JSON of the shape `{"request": [ ... 1 to 25 items ... ]}` (else the whole
//! request is a 400), then each item is read on its own into a [`UsageItem`] or the status the
//! marketplace gives such an item (`BadArgument`, `InvalidQuantity`).

use super::status::{ItemError, UsageStatus};
use crate::error::ApiError;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use fulfillment_core::{SubscriptionId, UsageQuantity};
use serde_json::{Map, Value};

/// Most items in one `batchUsageEvent` (the spec's `maxItems`).
pub const MAX_BATCH_ITEMS: usize = 25;

/// The fields a `UsageEvent` may have; any other is refused (strict bodies).
const USAGE_EVENT_FIELDS: [&str; 6] =
    ["resourceId", "resourceUri", "quantity", "dimension", "effectiveStartTime", "planId"];

/// One usage event as read from a request, before any rule is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageItem {
    /// The subscription (`resourceId`).
    pub resource_id: SubscriptionId,
    /// Units consumed.
    pub quantity: UsageQuantity,
    /// Dimension id.
    pub dimension: String,
    /// When the usage happened.
    pub effective_start_time: DateTime<Utc>,
    /// Plan the publisher reports for.
    pub plan_id: String,
}

/// A bad whole body: 400 with the spec's `BadArgument` shape.
pub fn bad_body(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest { field: "body".into(), message: message.into() }
}

/// The items of a `BatchUsageEvent` body, each still raw.
pub fn batch_items(body: Value) -> Result<Vec<Value>, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(bad_body("the body must be a JSON object {\"request\": [usage events]}"));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "request") {
        return Err(bad_body(format!("unknown field {unknown:?}; the body has only \"request\"")));
    }
    let Some(Value::Array(items)) = fields.remove("request") else {
        return Err(bad_body("\"request\" must be an array of 1 to 25 usage events"));
    };
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(bad_body(format!(
            "\"request\" holds {} usage events; a batch holds 1 to {MAX_BATCH_ITEMS}",
            items.len()
        )));
    }
    Ok(items)
}

/// Reads one `UsageEvent`: the status an unreadable one gets, naming the field.
pub fn usage_item(value: &Value) -> Result<UsageItem, ItemError> {
    let bad = |target: &str, message: String| ItemError::new(UsageStatus::BadArgument, target, message);
    let Value::Object(fields) = value else {
        return Err(bad("usageEvent", "a usage event must be a JSON object".into()));
    };
    if let Some(unknown) = fields.keys().find(|k| !USAGE_EVENT_FIELDS.contains(&k.as_str())) {
        return Err(bad(unknown, format!("unknown field {unknown:?}")));
    }
    if present(fields, "resourceUri").is_some() {
        return Err(bad(
            "resourceUri",
            "resourceUri is for managed applications; send the SaaS subscription id as resourceId".into(),
        ));
    }
    let resource_id = required_text(fields, "resourceId")?
        .parse::<SubscriptionId>()
        .map_err(|_| bad("resourceId", "resourceId must be a GUID (the SaaS subscription id)".into()))?;
    let quantity = match present(fields, "quantity") {
        None => return Err(bad("quantity", "quantity is required".into())),
        Some(Value::Number(n)) => UsageQuantity::from_json_number(n)
            .map_err(|message| ItemError::new(UsageStatus::InvalidQuantity, "quantity", message))?,
        Some(_) => {
            return Err(ItemError::new(UsageStatus::InvalidQuantity, "quantity", "quantity must be a number".into()))
        }
    };
    let dimension = required_text(fields, "dimension")?;
    let effective_start_time = parse_instant(&required_text(fields, "effectiveStartTime")?)
        .ok_or_else(|| bad("effectiveStartTime", "effectiveStartTime must be an ISO 8601 date-time in UTC".into()))?;
    let plan_id = required_text(fields, "planId")?;
    Ok(UsageItem { resource_id, quantity, dimension, effective_start_time, plan_id })
}

/// A field's value, `null` read as absent (generated clients may send optional fields as null).
fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

/// A required, non-empty string field.
fn required_text(fields: &Map<String, Value>, name: &str) -> Result<String, ItemError> {
    match present(fields, name) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Ok(s.clone()),
        Some(Value::String(_)) => {
            Err(ItemError::new(UsageStatus::BadArgument, name, format!("{name} must be 1 to 256 characters")))
        }
        Some(_) => Err(ItemError::new(UsageStatus::BadArgument, name, format!("{name} must be a string"))),
        None => Err(ItemError::new(UsageStatus::BadArgument, name, format!("{name} is required"))),
    }
}

/// An instant as publishers send it: RFC 3339 (any offset), or a date-time without an offset,
/// which the Metering API reads as UTC (its own examples send `2018-12-01T08:30:14`).
/// Years outside 1..=9999 are refused (so no arithmetic on an instant can overflow).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let parsed = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.to_utc()),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .map(|naive| naive.and_utc()),
    };
    parsed.filter(|t| (1..=9999).contains(&t.year()))
}

/// A date or a date-time (`2020-12-03` or `2020-12-03T15:00`), as `GET /usageEvents` takes
/// them; a bare date is its first instant, and says so (`true`).
pub fn parse_date_or_instant(text: &str) -> Option<(DateTime<Utc>, bool)> {
    if let Some(t) = parse_instant(text) {
        return Some((t, false));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| (t.and_utc(), true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Value {
        json!({
            "resourceId": "5a3f5c6e-1c1d-4f8e-9a51-3e2f8a7d9b10",
            "quantity": 5.5,
            "dimension": "apicalls",
            "effectiveStartTime": "2026-12-01T08:30:14",
            "planId": "standard",
        })
    }

    fn status_of(value: Value) -> (UsageStatus, String) {
        let e = usage_item(&value).unwrap_err();
        (e.status, e.target)
    }

    #[test]
    fn a_usage_event_is_read_with_a_naive_time_as_utc() {
        let read = usage_item(&item()).unwrap();
        assert_eq!(read.quantity, "5.5".parse().unwrap());
        assert_eq!(read.effective_start_time, "2026-12-01T08:30:14Z".parse::<DateTime<Utc>>().unwrap());
        let mut with_null = item();
        with_null["resourceUri"] = Value::Null;
        assert!(usage_item(&with_null).is_ok());
    }

    #[test]
    fn each_bad_field_gets_the_marketplaces_status_and_its_name() {
        let with = |name: &str, value: Value| {
            let mut v = item();
            v[name] = value;
            v
        };
        assert_eq!(status_of(with("quantity", json!("5"))), (UsageStatus::InvalidQuantity, "quantity".into()));
        assert_eq!(status_of(with("quantity", json!(1e40))).0, UsageStatus::InvalidQuantity);
        assert_eq!(status_of(with("resourceId", json!("nope"))), (UsageStatus::BadArgument, "resourceId".into()));
        assert_eq!(status_of(with("effectiveStartTime", json!("yesterday"))).1, "effectiveStartTime");
        assert_eq!(status_of(with("planId", json!(""))).1, "planId");
        assert_eq!(status_of(with("extra", json!(1))), (UsageStatus::BadArgument, "extra".into()));
        assert_eq!(status_of(with("resourceUri", json!("/subscriptions/x"))).1, "resourceUri");
        let mut missing = item();
        missing.as_object_mut().unwrap().remove("dimension");
        assert_eq!(status_of(missing).1, "dimension");
        assert_eq!(status_of(json!([1])).0, UsageStatus::BadArgument);
    }

    #[test]
    fn a_batch_holds_1_to_25_items_under_request() {
        assert_eq!(batch_items(json!({"request": [item()]})).unwrap().len(), 1);
        assert!(batch_items(json!({"request": []})).is_err());
        assert!(batch_items(json!({"request": vec![item(); 26]})).is_err());
        assert!(batch_items(json!({"request": [item()], "more": 1})).is_err());
        assert!(batch_items(json!([item()])).is_err());
    }

    #[test]
    fn read_back_dates_may_be_dates_or_date_times() {
        assert!(parse_date_or_instant("2020-12-03").unwrap().1);
        assert_eq!(
            parse_date_or_instant("2020-12-03T15:00").unwrap(),
            ("2020-12-03T15:00:00Z".parse().unwrap(), false)
        );
        assert!(parse_date_or_instant("03/12/2020").is_none());
        assert!(parse_date_or_instant("+262142-12-31").is_none());
        assert!(parse_instant("+262142-12-31T00:00:00").is_none());
    }
}
