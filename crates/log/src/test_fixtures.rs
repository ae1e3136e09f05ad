//! Events for the log's unit tests: a purchase and the two webhook facts, for any subscription
//! id (built by `fulfillment_core::fixtures`, like every crate's test events).

use fulfillment_core::fixtures::{envelope, purchase};
use fulfillment_core::{Event, EventEnvelope, SubscriptionId};
use uuid::Uuid;

pub(crate) fn purchased(id: SubscriptionId) -> EventEnvelope {
    envelope(id, purchase("customer-1", "code"))
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
