//! How a subscription looks to a partner (Partner Center field names), and its activation link.

use crate::directory::Directory;
use fulfillment_core::Subscription;
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

/// The partner-facing representation.
pub fn subscription_view(directory: &Directory, s: &Subscription) -> Value {
    let link = activation_link(directory, s);
    let self_uri = format!("/v1/customers/{}/subscriptions/{}", s.purchase.customer_id, s.id);
    let activation_links_uri = format!(
        "/v1/customers/{}/orders/{}/lineitems/{}/activationlinks",
        s.purchase.customer_id, s.purchase.order_id, s.purchase.line_item_number
    );
    json!({
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
        "links": {
            "self": { "uri": self_uri, "method": "GET", "headers": [] },
            "activationLinks": { "uri": activation_links_uri, "method": "GET", "headers": [] },
        },
        "attributes": { "etag": etag(s), "objectType": "Subscription" },
    })
}
