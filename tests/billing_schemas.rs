//! The billing event schemas in `specs/billing/` are the consumer contract: every kind the
//! core can emit matches its schema (with and without an indirect reseller), and the schemas
//! refuse what a consumer must never be sent. Events emitted through the real service are
//! checked too, by every test that reads the billing feed (`tests/common/billing_schemas.rs`).

mod common;

use chrono::Utc;
use common::billing_schemas::{assert_matches_schema, violations, SCHEMAS};
use common::events::{envelope, purchase_of};
use fulfillment_core::{
    apply, BillingCycle, BillingEvent, BillingEventKind, Event, Purchase, SourceKind, Subscription, SubscriptionId,
    Term,
};
use serde_json::{json, Value};
use uuid::Uuid;

fn every_kind() -> Vec<BillingEventKind> {
    vec![
        BillingEventKind::Started { quantity: 5 },
        BillingEventKind::QuantityChanged { previous_quantity: 5, quantity: 12, refundable: false },
        BillingEventKind::PlanChanged { previous_plan_id: "standard".into(), plan_id: "gold".into() },
        BillingEventKind::Stopped { refundable: true, cancelled_by: SourceKind::Partner, reason: "not needed".into() },
        BillingEventKind::Renewed {
            term_number: 2,
            term_start: "2027-01-05T00:00:00Z".parse().unwrap(),
            term_end: "2028-01-05T00:00:00Z".parse().unwrap(),
            quantity: 5,
        },
        BillingEventKind::Suspended { reason: "paymentFailed".into() },
        BillingEventKind::Resumed { quantity: 5 },
        BillingEventKind::Usage {
            usage_event_id: Uuid::from_u128(9),
            dimension: "apicalls".into(),
            quantity: "12.5".parse().unwrap(),
            hour: "2027-01-05T10:00:00Z".parse().unwrap(),
            effective_start_time: "2027-01-05T10:42:00Z".parse().unwrap(),
        },
    ]
}

/// A subscription as the fold builds it from a purchase, with or without a reseller.
fn subscription(mpn: Option<&str>) -> Subscription {
    let purchase = Purchase {
        quantity: 5,
        term: Term::P1Y,
        billing_cycle: BillingCycle::Annual,
        indirect_reseller_mpn_id: mpn.map(str::to_owned),
        ..purchase_of("customer-1", "code")
    };
    let purchased = Event::SubscriptionPurchased {
        purchase,
        cancellation_allowed_until: Utc::now(),
        activation_deadline: None,
        licenses_required: None,
    };
    let envelope = envelope(SubscriptionId(Uuid::new_v4()), purchased);
    apply(None, &envelope).0.expect("a purchase creates the subscription")
}

fn wire(kind: BillingEventKind, mpn: Option<&str>) -> Value {
    serde_json::to_value(BillingEvent::new(kind, &subscription(mpn), Uuid::now_v7(), Utc::now())).unwrap()
}

#[test]
fn there_is_one_schema_per_billing_event_type_and_each_names_its_type() {
    let kinds: Vec<&str> = every_kind().iter().map(|k| k.type_name()).collect();
    let schemas: Vec<&str> = SCHEMAS.iter().map(|(name, _)| *name).collect();
    assert_eq!(kinds, schemas);
    for (name, text) in SCHEMAS {
        let schema: Value = serde_json::from_str(text).unwrap();
        assert_eq!(schema["properties"]["type"]["const"], name);
        assert_eq!(schema["title"], name);
    }
}

#[test]
fn every_billing_event_the_core_emits_matches_its_schema() {
    for kind in every_kind() {
        for mpn in [None, Some("5123456")] {
            assert_matches_schema(&wire(kind.clone(), mpn));
        }
    }
}

/// A way to spoil a valid event.
type Breakage = Box<dyn Fn(&mut Value)>;

#[test]
fn the_schemas_refuse_what_a_consumer_must_never_be_sent() {
    let good = wire(BillingEventKind::QuantityChanged { previous_quantity: 5, quantity: 12, refundable: true }, None);
    let broken: Vec<(&str, Breakage)> = vec![
        ("no id", Box::new(|e| drop(e.as_object_mut().unwrap().remove("id")))),
        ("id not a uuid", Box::new(|e| e["id"] = json!("42"))),
        ("quantity as text", Box::new(|e| e["data"]["quantity"] = json!("12"))),
        ("zero quantity", Box::new(|e| e["data"]["quantity"] = json!(0))),
        ("data of another type", Box::new(|e| e["data"] = json!({"quantity": 12}))),
        ("unknown term", Box::new(|e| e["term"] = json!("P7D"))),
        ("effectiveAt not a date-time", Box::new(|e| e["effectiveAt"] = json!("yesterday"))),
        ("a field the contract does not have", Box::new(|e| e["price"] = json!(10))),
        ("unknown type", Box::new(|e| e["type"] = json!("billing.paused"))),
        ("refundable as text", Box::new(|e| e["data"]["refundable"] = json!("yes"))),
    ];
    let usage = wire(every_kind().pop().unwrap(), None);
    assert_eq!(usage["data"]["quantity"], json!(12.5));
    let broken_usage: Vec<(&str, Breakage)> = vec![
        ("usage quantity as text", Box::new(|e| e["data"]["quantity"] = json!("12.5"))),
        ("zero usage", Box::new(|e| e["data"]["quantity"] = json!(0))),
        ("usage without a dimension", Box::new(|e| drop(e["data"].as_object_mut().unwrap().remove("dimension")))),
    ];
    for (what, breaks) in broken_usage {
        let mut event = usage.clone();
        breaks(&mut event);
        assert!(!violations(&event).is_empty(), "{what}: accepted {event:#}");
    }
    assert!(violations(&good).is_empty(), "{:?}", violations(&good));
    for (what, breaks) in broken {
        let mut event = good.clone();
        breaks(&mut event);
        assert!(!violations(&event).is_empty(), "{what}: accepted {event:#}");
    }
}
