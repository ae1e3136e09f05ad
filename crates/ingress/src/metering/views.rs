//! Response bodies shaped exactly like the Metering API's schemas (`UsageEventOkResponse`,
//! `UsageBatchEventOkMessage`, `GetUsageEvent`); the contract tests validate them against
//! `specs/meteringapi.v1.json`. In: accepted reports (core's `AcceptedUsage`), refused items
//! with their status, and usage records of the read model. Out: JSON values, as the handlers
//! send them.

use super::request::UsageItem;
use super::status::{ItemError, UsageStatus};
use crate::directory::Directory;
use fulfillment_core::{AcceptedUsage, SubscriptionId};
use fulfillment_read_model::UsageRecord;
use serde_json::{json, Value};

/// `UsageEventOkResponse` of an accepted report with `status` `Accepted`, or, as the
/// `acceptedMessage` of a duplicate, `Duplicate` (as the marketplace answers it).
pub fn accepted(resource_id: SubscriptionId, usage: &AcceptedUsage, status: UsageStatus) -> Value {
    json!({
        "usageEventId": usage.usage_event_id,
        "status": status.as_str(),
        "messageTime": usage.message_time,
        "resourceId": resource_id,
        "quantity": usage.quantity,
        "dimension": usage.dimension,
        "effectiveStartTime": usage.effective_start_time,
        "planId": usage.plan_id,
    })
}

/// `UsageBatchEventOkMessage` of one batch item: the accepted report, or the item as sent (what
/// could be read of it) with its status and error.
pub fn batch_item(raw: &Value, read: Option<&UsageItem>, outcome: &Result<AcceptedUsage, ItemError>) -> Value {
    match (outcome, read) {
        (Ok(usage), Some(item)) => accepted(item.resource_id, usage, UsageStatus::Accepted),
        (Ok(_), None) => json!({ "status": UsageStatus::Error.as_str() }),
        (Err(error), _) => {
            let mut answer = json!({ "status": error.status.as_str() });
            for field in ["resourceId", "quantity", "dimension", "effectiveStartTime", "planId"] {
                if let Some(value) = raw.get(field).filter(|v| echoable(field, v)) {
                    answer[field] = value.clone();
                }
            }
            if let Some(accepted) = &error.accepted {
                answer["usageEventId"] = json!(accepted.usage_event_id);
                answer["messageTime"] = json!(accepted.message_time);
            }
            answer["error"] = error.batch_error(read.map(|i| i.resource_id));
            answer
        }
    }
}

/// Whether a field of a refused item can be echoed in the spec's type (a malformed value is
/// left out rather than answered in a shape clients cannot parse).
fn echoable(field: &str, value: &Value) -> bool {
    match field {
        "quantity" => value.is_number(),
        "resourceId" => value.as_str().is_some_and(|s| s.parse::<SubscriptionId>().is_ok()),
        "effectiveStartTime" => value.as_str().and_then(super::request::parse_instant).is_some(),
        _ => value.is_string(),
    }
}

/// `GetUsageEvent` of one accepted usage event.
pub fn read_back(directory: &Directory, record: &UsageRecord) -> Value {
    let usage = &record.usage;
    let plan_name = directory.offer(&record.offer_id).map(|o| o.display(&usage.plan_id).display_name);
    json!({
        "usageDate": usage.hour(),
        "usageResourceId": record.subscription_id,
        "dimension": usage.dimension,
        "planId": usage.plan_id,
        "planName": plan_name.unwrap_or_else(|| usage.plan_id.clone()),
        "offerId": record.offer_id,
        "offerName": record.offer_id,
        "offerType": "SaaS",
        "reconStatus": "Accepted",
        "submittedQuantity": usage.quantity,
        "processedQuantity": usage.quantity,
        "submittedCount": 1,
    })
}
