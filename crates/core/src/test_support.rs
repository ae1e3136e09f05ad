//! Fixtures shared by the unit and property tests of this crate.

use crate::billing::BillingEvent;
use crate::catalog::{BillingCycle, MeteringDimension, Plan, Term};
use crate::command::{Command, PurchaseOrder};
use crate::decide::decide;
use crate::event::{Event, EventEnvelope, Purchase, Source, SourceKind, SubscriptionId, EVENT_SCHEMA_VERSION};
use crate::fold::{fold, Effect};
use crate::policy::Policy;
use crate::subscription::Subscription;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

pub fn subscription_id() -> SubscriptionId {
    SubscriptionId(Uuid::from_u128(0x5ab5_0000_0000_0abc))
}

pub fn plan() -> Plan {
    Plan {
        id: "standard".into(),
        min_quantity: 1,
        max_quantity: 500,
        terms: vec![Term::P1M, Term::P1Y],
        metering_dimensions: vec![MeteringDimension {
            id: "apicalls".into(),
            display_name: "API calls".into(),
            unit: "1000 calls".into(),
        }],
    }
}

pub fn purchase_order(quantity: u32) -> PurchaseOrder {
    PurchaseOrder {
        purchase: Purchase {
            order_id: Uuid::from_u128(7),
            line_item_number: 0,
            customer_id: "customer-1".into(),
            partner_id: "partner-1".into(),
            publisher_id: "contoso".into(),
            offer_id: "contoso-crm".into(),
            plan_id: "standard".into(),
            quantity,
            term: Term::P1M,
            billing_cycle: BillingCycle::Monthly,
            auto_renew: true,
            friendly_name: "CRM for sales".into(),
            indirect_reseller_mpn_id: None,
            authorization_code: "code".into(),
        },
        plan: plan(),
        policy: Policy::default(),
    }
}

pub fn purchase_command(quantity: u32) -> Command {
    Command::Purchase(Box::new(purchase_order(quantity)))
}

pub fn purchase_event(quantity: u32) -> Event {
    let mut order = purchase_order(5);
    order.purchase.quantity = quantity;
    decide(None, &Command::Purchase(Box::new(order)), t0()).unwrap().remove(0)
}

pub fn setup(quantity: u32) -> Event {
    Event::SetupConfirmed { plan_id: "standard".into(), quantity }
}

pub fn envelope(event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::new_v4(),
        subscription_id: subscription_id(),
        schema_version: EVENT_SCHEMA_VERSION,
        source: Source { kind: SourceKind::Publisher, actor_id: "contoso".into() },
        occurred_at: t0(),
        recorded_at: t0(),
        event,
    }
}

pub fn purchased(quantity: u32) -> Subscription {
    fold(None, &[envelope(purchase_event(quantity))]).state.unwrap()
}

/// The billing events among `effects`, in order.
pub fn billed(effects: &[Effect]) -> Vec<&BillingEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Billing(b) => Some(b),
            _ => None,
        })
        .collect()
}

pub fn after(s: Subscription, event: Event) -> Subscription {
    fold(Some(s), &[envelope(event)]).state.unwrap()
}
