//! Log events built directly (not through the HTTP API), for tests of the stores and of the
//! billing contract that need a log or a folded subscription without running the service.

use chrono::Utc;
use fulfillment_core::{
    BillingCycle, Event, EventEnvelope, Purchase, Source, SourceKind, SubscriptionId, Term, EVENT_SCHEMA_VERSION,
};
use uuid::Uuid;

/// `event` for subscription `id`, reported by the publisher now.
pub fn envelope(id: SubscriptionId, event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        subscription_id: id,
        schema_version: EVENT_SCHEMA_VERSION,
        source: Source { kind: SourceKind::Publisher, actor_id: "contoso".into() },
        occurred_at: Utc::now(),
        recorded_at: Utc::now(),
        event,
    }
}

/// A monthly purchase of 3 licenses of contoso's CRM by partner-1 for `customer`.
pub fn purchase_of(customer: &str, authorization_code: &str) -> Purchase {
    Purchase {
        order_id: Uuid::new_v4(),
        line_item_number: 0,
        customer_id: customer.into(),
        partner_id: "partner-1".into(),
        publisher_id: "contoso".into(),
        offer_id: "crm".into(),
        plan_id: "standard".into(),
        quantity: 3,
        term: Term::P1M,
        billing_cycle: BillingCycle::Monthly,
        auto_renew: true,
        friendly_name: "CRM".into(),
        indirect_reseller_mpn_id: None,
        authorization_code: authorization_code.into(),
        cancellation_allowed_until: Utc::now(),
    }
}

/// [`purchase_of`] as a log event.
pub fn purchase(customer: &str, authorization_code: &str) -> Event {
    Event::SubscriptionPurchased(purchase_of(customer, authorization_code))
}
