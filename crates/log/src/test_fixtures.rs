//! Events for the log's unit tests: a purchase that the domain would decide, and the two
//! webhook facts, for any subscription id.

use chrono::Utc;
use fulfillment_core::{
    decide, BillingCycle, Command, Event, EventEnvelope, Plan, Policy, PurchaseOrder, Source, SourceKind,
    SubscriptionId, Term, EVENT_SCHEMA_VERSION,
};
use uuid::Uuid;

pub(crate) fn envelope(id: SubscriptionId, event: Event) -> EventEnvelope {
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

pub(crate) fn purchased(id: SubscriptionId) -> EventEnvelope {
    let order = PurchaseOrder {
        order_id: Uuid::now_v7(),
        line_item_number: 0,
        customer_id: "customer-1".into(),
        partner_id: "partner-1".into(),
        publisher_id: "contoso".into(),
        offer_id: "contoso-crm".into(),
        plan: Plan { id: "standard".into(), min_quantity: 1, max_quantity: 500, terms: vec![Term::P1M] },
        quantity: 3,
        term: Term::P1M,
        billing_cycle: BillingCycle::Monthly,
        auto_renew: true,
        friendly_name: "CRM".into(),
        indirect_reseller_mpn_id: None,
        authorization_code: "code".into(),
        policy: Policy::default(),
    };
    let event = decide(None, &Command::Purchase(Box::new(order)), Utc::now()).unwrap().remove(0);
    envelope(id, event)
}

pub(crate) fn licenses_assigned(id: SubscriptionId, assigned_count: u32) -> EventEnvelope {
    envelope(id, Event::LicensesAssigned { assigned_count })
}

pub(crate) fn setup_confirmed(id: SubscriptionId, quantity: u32) -> EventEnvelope {
    envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity })
}

pub(crate) fn new_id() -> SubscriptionId {
    SubscriptionId(Uuid::new_v4())
}
