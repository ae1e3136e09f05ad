//! Events for the tests of the crates built on this one (the log, the projector, the relay and
//! the service's integration tests), so that an envelope is put together one way everywhere.
//! Behind the `test-support` feature, which only dev-dependencies turn on: never in a release
//! build. (This crate's own tests use `test_support`, which pins ids and instants.)

use crate::catalog::{BillingCycle, Term};
use crate::event::{Event, EventEnvelope, Purchase, Source, SourceKind, SubscriptionId, EVENT_SCHEMA_VERSION};
use crate::policy::LicensesRequired;
use chrono::Utc;
use uuid::Uuid;

/// `event` about subscription `id` as the publisher `contoso` reports it now, with a fresh
/// time-ordered id, the way ingress records a webhook.
pub fn envelope(id: SubscriptionId, event: Event) -> EventEnvelope {
    let now = Utc::now();
    EventEnvelope {
        event_id: Uuid::now_v7(),
        subscription_id: id,
        schema_version: EVENT_SCHEMA_VERSION,
        source: Source { kind: SourceKind::Publisher, actor_id: "contoso".into() },
        occurred_at: now,
        recorded_at: now,
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
    }
}

/// [`purchase_of`] as a log event, cancellable until now, billed once any license is assigned,
/// cancelled by the system if still pending in 30 days.
pub fn purchase(customer: &str, authorization_code: &str) -> Event {
    Event::SubscriptionPurchased {
        purchase: purchase_of(customer, authorization_code),
        cancellation_allowed_until: Utc::now(),
        activation_deadline: Some(Utc::now() + chrono::Duration::days(30)),
        licenses_required: Some(LicensesRequired::Any),
    }
}
