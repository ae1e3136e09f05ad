//! How a subscription looks to a partner (Partner Center field names), and its activation link.

use crate::directory::Directory;
use chrono::{DateTime, Utc};
use fulfillment_core::{Status, Subscription};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is escaped in the `token` query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
use serde_json::{json, Value};

/// The subscription's etag: its version, quoted (a strong validator).
pub fn etag(s: &Subscription) -> String {
    format!("\"{}\"", s.version)
}

/// The publisher's landing page with the authorization code as `token`, the way the
/// marketplace opens it; `None` when the publisher is no longer configured.
pub fn activation_link(directory: &Directory, s: &Subscription) -> Option<String> {
    let publisher = directory.publisher(&s.purchase.publisher_id)?;
    let separator = if publisher.site_url.contains('?') { '&' } else { '?' };
    let token = utf8_percent_encode(&s.purchase.authorization_code, QUERY_VALUE);
    Some(format!("{}{separator}token={token}", publisher.site_url))
}

/// The current term as Partner Center shows it, at the top level of the subscription: its
/// number and start, `commitmentEndDate` (its end), and what happens then: `renewalDate` with
/// auto-renew on, `expiryDate` with it off (or when it expired). All null until billing starts
/// the first term.
fn term_view(s: &Subscription) -> Value {
    let Some(term) = s.current_term else {
        return json!({ "termNumber": null, "termStartDate": null, "commitmentEndDate": null, "renewalDate": null, "expiryDate": null });
    };
    // A suspended subscription does not renew until it is reinstated; without auto-renew it
    // still expires on its date.
    let auto_renew = s.purchase.auto_renew;
    json!({
        "termNumber": term.number,
        "termStartDate": term.start_date,
        "commitmentEndDate": term.end_date,
        "renewalDate": if s.status == Status::Subscribed && auto_renew { Some(term.end_date) } else { None },
        "expiryDate": match s.status {
            Status::Expired => s.expired_at,
            Status::Subscribed | Status::Suspended if !auto_renew => Some(term.end_date),
            _ => None,
        },
    })
}

/// Licenses the partner may still remove with a refund at `now`, as Partner Center's
/// `refundableQuantity`: while the current term's cancellation window is open, every license
/// (the window opens at purchase and again at each renewal), until its end.
fn refundable_quantity(s: &Subscription, now: DateTime<Utc>) -> Value {
    let open = !s.status.is_terminal() && now <= s.cancellation_allowed_until;
    if !open {
        return json!({ "totalQuantity": 0, "details": [] });
    }
    json!({
        "totalQuantity": s.purchase.quantity,
        "details": [{ "quantity": s.purchase.quantity, "allowUntilDateTime": s.cancellation_allowed_until }],
    })
}

/// Metered usage in the current term, per dimension of the plan (zero for a dimension without
/// usage yet), plus any dimension usage was reported for that the catalog no longer lists.
fn metered_usage(directory: &Directory, s: &Subscription) -> Value {
    let plan_dimensions = directory.plan_of(&s.purchase).map(|p| p.metering_dimensions.as_slice()).unwrap_or_default();
    let dimensions: Vec<Value> = s
        .usage_by_dimension(plan_dimensions)
        .into_iter()
        .map(|u| match u.dimension {
            Some(d) => {
                json!({ "dimension": u.id, "displayName": d.display_name, "unit": d.unit, "quantity": u.quantity })
            }
            None => json!({ "dimension": u.id, "quantity": u.quantity }),
        })
        .collect();
    json!({ "termNumber": s.current_term.map(|t| t.number), "dimensions": dimensions })
}

/// The partner-facing representation at `now` (which decides the refundable quantity).
pub fn subscription_view(directory: &Directory, s: &Subscription, now: DateTime<Utc>) -> Value {
    let link = activation_link(directory, s);
    let self_uri = format!("/v1/customers/{}/subscriptions/{}", s.purchase.customer_id, s.id);
    let activation_links_uri = format!(
        "/v1/customers/{}/orders/{}/lineitems/{}/activationlinks",
        s.purchase.customer_id, s.purchase.order_id, s.purchase.line_item_number
    );
    let mut view = json!({
        "id": s.id,
        "offerId": s.purchase.offer_id,
        "planId": s.purchase.plan_id,
        "publisherId": s.purchase.publisher_id,
        "friendlyName": s.purchase.friendly_name,
        "quantity": s.purchase.quantity,
        "unitType": "Licenses",
        "status": s.status.partner_center_name(),
        "actionNeeded": s.action_needed(),
        "activationLink": if s.action_needed() { link.clone() } else { None },
        "authorizationCode": if s.action_needed() { Some(&s.purchase.authorization_code) } else { None },
        "fulfillment": {
            "licensesAssigned": s.licenses_assigned,
            "setupConfirmed": s.setup_confirmed,
        },
        "autoRenewEnabled": s.purchase.auto_renew,
        "billingCycle": s.purchase.billing_cycle,
        "termDuration": s.purchase.term,
        "partnerId": s.purchase.indirect_reseller_mpn_id,
        "customerId": s.purchase.customer_id,
        "orderId": s.purchase.order_id,
        "creationDate": s.purchased_at,
        "cancellationAllowedUntilDate": s.cancellation_allowed_until,
        "billingStartedAt": s.billing_started_at,
        "cancelledAt": s.cancelled_at,
        "cancellation": s.cancellation,
        "refundableQuantity": refundable_quantity(s, now),
        "suspension": s.suspension_in_force(),
        "meteredUsage": metered_usage(directory, s),
        "activationDeadline": if s.action_needed() { s.activation_deadline } else { None },
        "links": {
            "self": { "uri": self_uri, "method": "GET", "headers": [] },
            "activationLinks": { "uri": activation_links_uri, "method": "GET", "headers": [] },
        },
        "attributes": { "etag": etag(s), "objectType": "Subscription" },
    });
    if let (Some(view), Value::Object(term)) = (view.as_object_mut(), term_view(s)) {
        view.extend(term);
    }
    view
}
