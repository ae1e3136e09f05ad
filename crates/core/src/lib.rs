//! The pure domain of `fulfillment`: what a marketplace SaaS subscription *is*, which facts can
//! happen to it, and which billing effects those facts cause.
//!
//! Everything else in the workspace (HTTP ingress, event log, projector, replay tooling) is an
//! adapter around this crate. It does no I/O, has no async, and reads no clock: time arrives as
//! data (`now` in [`decide`](decide()), `occurred_at` on every event), so the same events give
//! the same state and the same billing effects on every machine and at every replay.
//!
//! The domain speaks in two verbs:
//! - [`decide`](decide()) checks a [`Command`] against the current state and returns the
//!   events it causes, or a [`Rejection`] saying which rule it breaks. Business rules live here.
//! - [`apply`] evolves the state by one recorded event and returns its [`Effect`]s (billing
//!   events, or a rejection for an event that reached the log but breaks a rule after a race).
//!   [`fold`](fold()) is `apply` over a stream; the projector and the replay tools use nothing
//!   else.
//!
//! [`explain`] is the same fold told event by event (outcome, status after, billing caused),
//! for everything that shows a subscription's history to people.
//!
//! Time is data too: [`Subscription::next_deadline`] says when a term ends (renewal or expiry),
//! when a pending subscription's activation deadline or a suspension's grace period runs out;
//! a scheduler outside asks `decide` to reach it ([`Command::ReachDeadline`]) once the wall
//! clock passed it, and the event is recorded as occurring at the deadline.
//!
//! Invariants kept here: billing starts only when the required licenses are assigned and setup
//! is confirmed, in either order, exactly once, never after cancellation; each term renews at
//! most once; nothing is billed while pending, suspended, expired or cancelled; a duplicate
//! event id is a no-op; an unsubscribed or expired subscription is terminal.

mod billing;
mod catalog;
mod command;
mod decide;
mod event;
mod fold;
mod lifecycle;
mod metering;
mod operations;
mod policy;
mod rejection;
mod rules;
mod subscription;
mod timeline;

pub use billing::{BillingEvent, BillingEventKind};
pub use catalog::{BillingCycle, MeteringDimension, Plan, Term};
pub use command::{Command, PurchaseOrder, RequestedChange};
pub use decide::decide;
pub use event::{
    Cancellation, DecodeError, Event, EventEnvelope, OperationAction, OperationOutcome, Purchase, Source, SourceKind,
    SubscriptionId, EVENT_SCHEMA_VERSION,
};
pub use fold::{apply, fold, Effect, Folded};
pub use lifecycle::{
    reach_due_deadlines, Deadline, DeadlineKind, ACTIVATION_DEADLINE_REASON, EXPIRED_REASON, MAX_DEADLINES_AT_ONCE,
    SCHEDULER_ACTOR, SUSPENSION_GRACE_EXPIRED_REASON,
};
pub use metering::{
    usage_event_id, usage_hour, AcceptedUsage, DimensionUsage, MeteredUsage, UsageQuantity, UsageReport,
    MAX_USAGE_QUANTITY, RECENT_USAGE_HOURS, USAGE_REPORTING_WINDOW_HOURS,
};
pub use policy::{LicensesRequired, Policy};
pub use rejection::Rejection;
pub use subscription::{Operation, OperationStatus, Status, Subscription, Suspension, TermPeriod};
pub use timeline::{explain, Explained, Outcome, Timeline};

#[cfg(test)]
mod test_support;

#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
