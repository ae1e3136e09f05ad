//! Response bodies shaped exactly like the spec's schemas (`Subscription`, `SaaSOperation`,
//! `Plan`); the contract tests validate them against `specs/saasapi.v2.json`.

use crate::directory::Offer;
use chrono::{DateTime, Months, Utc};
use fulfillment_core::{Operation, Plan, Status, Subscription, Term};
use serde_json::{json, Value};
use uuid::Uuid;

/// `saasSubscriptionStatus`.
pub fn status(s: &Subscription) -> &'static str {
    s.status.saas_name()
}

/// A tenant id for an AAD identifier. Ids that are GUIDs pass through; other ids get a
/// stable name-based UUID, so the same customer always shows the same tenant.
fn tenant_id(kind: &str, id: &str) -> Uuid {
    id.parse().unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("urn:fulfillment:{kind}:{id}").as_bytes()))
}

/// Start and end of the current term: the term billed now (advanced by every renewal), or
/// while pending the term that would start at purchase; it ends the day before the next term
/// starts, as the marketplace shows it.
fn term_dates(s: &Subscription) -> (DateTime<Utc>, DateTime<Utc>) {
    let (start, next_start) = match s.current_term {
        Some(term) => (term.start_date, Some(term.end_date)),
        None => (s.purchased_at, s.purchased_at.checked_add_months(Months::new(s.purchase.term.months()))),
    };
    let end = next_start.map(|e| e - chrono::Duration::days(1)).unwrap_or(start);
    (start, end)
}

/// The spec's `Subscription`.
pub fn subscription(s: &Subscription) -> Value {
    let (start, end) = term_dates(s);
    let operations: &[&str] = match s.status {
        Status::Unsubscribed | Status::Expired => &["Read"],
        _ => &["Read", "Update", "Delete"],
    };
    json!({
        "id": s.id,
        "publisherId": s.purchase.publisher_id,
        "offerId": s.purchase.offer_id,
        "name": s.purchase.friendly_name,
        "saasSubscriptionStatus": status(s),
        "beneficiary": { "tenantId": tenant_id("customer", &s.purchase.customer_id) },
        "purchaser": { "tenantId": tenant_id("partner", &s.purchase.partner_id) },
        "planId": s.purchase.plan_id,
        "quantity": s.purchase.quantity,
        "term": { "termUnit": s.purchase.term, "startDate": start, "endDate": end },
        "autoRenew": s.purchase.auto_renew,
        "isTest": false,
        "isFreeTrial": false,
        "allowedCustomerOperations": operations,
        "sandboxType": "Csp",
        "created": s.purchased_at,
        "sessionMode": "None",
    })
}

/// The spec's `SaaSOperation`.
pub fn operation(s: &Subscription, o: &Operation) -> Value {
    json!({
        "id": o.id,
        "activityId": o.id,
        "subscriptionId": s.id,
        "offerId": s.purchase.offer_id,
        "publisherId": s.purchase.publisher_id,
        "planId": o.plan_id,
        "quantity": o.quantity,
        "action": o.action,
        "timeStamp": o.completed_at.unwrap_or(o.requested_at),
        "status": o.status,
    })
}

fn term_description(term: Term) -> String {
    match term.months() {
        1 => "1 month".into(),
        m => format!("{} year{}", m / 12, if m == 12 { "" } else { "s" }),
    }
}

/// The spec's `Plan`.
pub fn plan(offer: &Offer, plan: &Plan) -> Value {
    let display = offer.display(&plan.id);
    let terms: Vec<Value> =
        plan.terms.iter().map(|t| json!({ "termUnit": t, "termDescription": term_description(*t) })).collect();
    // The catalog holds no prices: the dimension's currency and price per unit are the
    // publisher's business with its billing system, so they are left out.
    let dimensions: Vec<Value> = plan
        .metering_dimensions
        .iter()
        .map(|d| json!({ "id": d.id, "displayName": d.display_name, "unitOfMeasure": d.unit }))
        .collect();
    json!({
        "planId": plan.id,
        "displayName": display.display_name,
        "isPrivate": false,
        "description": display.description,
        "minQuantity": plan.min_quantity,
        "maxQuantity": plan.max_quantity,
        "hasFreeTrials": false,
        "isPricePerSeat": true,
        "isStopSell": false,
        "planComponents": { "recurrentBillingTerms": terms, "meteringDimensions": dimensions },
    })
}
