//! `explain`: one subscription's stream told event by event, for people reading its history.
//! Each event comes back with what folding it did (applied, rejected with the rule it broke, or
//! ignored as a repeat), the status it left the subscription in, and the billing events it
//! caused. The partner API's events endpoint, the console's timeline and the `fulfillment
//! history` command all render this one fold; none of them folds on its own.
//!
//! In: the events of one stream in log order, each as the caller holds it (a bare envelope, or
//! a stored event with its log position), and how to reach its envelope. Out: the same events in
//! the same order, each [`Explained`], and the state the stream folds to. It is [`apply`] over
//! the stream, so it says exactly what the projector did with the same events.

use crate::billing::BillingEvent;
use crate::event::EventEnvelope;
use crate::fold::{apply, Effect};
use crate::subscription::{Status, Subscription};

/// What folding one event did to its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed the subscription.
    Applied,
    /// Broke a rule (it raced past `decide`); the state did not change.
    Rejected {
        /// Stable code of the rule.
        code: String,
        /// Readable reason.
        reason: String,
    },
    /// A repeat of an event already folded; nothing happened.
    Duplicate,
}

/// One event of a stream with what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained<E> {
    /// The event, as the caller passed it.
    pub event: E,
    /// What folding it did.
    pub outcome: Outcome,
    /// The subscription's status after it (`None` while nothing was purchased).
    pub status_after: Option<Status>,
    /// Billing events it caused, in order.
    pub billing: Vec<BillingEvent>,
}

/// A stream explained: every event with what it did, and where they leave the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline<E> {
    /// The events, in the order given.
    pub entries: Vec<Explained<E>>,
    /// The state after the last event (the same as [`fold`](crate::fold()) gives).
    pub state: Option<Subscription>,
}

/// Folds `events` (one stream, from its first event) and explains each; `envelope` reaches the
/// envelope of one of them.
pub fn explain<E>(events: impl IntoIterator<Item = E>, envelope: impl Fn(&E) -> &EventEnvelope) -> Timeline<E> {
    let mut state = None;
    let entries = events
        .into_iter()
        .map(|event| {
            let (next, effects) = apply(state.take(), envelope(&event));
            state = next;
            let mut outcome = Outcome::Applied;
            let mut billing = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Billing(b) => billing.push(b),
                    Effect::Rejected { code, reason, .. } => outcome = Outcome::Rejected { code, reason },
                    Effect::Duplicate { .. } => outcome = Outcome::Duplicate,
                }
            }
            Explained { event, outcome, status_after: state.as_ref().map(|s| s.status), billing }
        })
        .collect();
    Timeline { entries, state }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::fold::fold;
    use crate::test_support::*;

    #[test]
    fn each_event_is_told_with_its_outcome_status_and_billing() {
        let licenses = envelope(Event::LicensesAssigned { assigned_count: 5 });
        let stream = [
            envelope(setup(5)),
            envelope(purchase_event(5)),
            licenses.clone(),
            envelope(setup(5)),
            licenses,
            envelope(setup(5)),
        ];
        let timeline = explain(&stream, |e| e);
        let outcomes: Vec<&Outcome> = timeline.entries.iter().map(|e| &e.outcome).collect();
        assert!(matches!(outcomes[0], Outcome::Rejected { code, .. } if code == "not-found"));
        assert_eq!(outcomes[1..5], [&Outcome::Applied, &Outcome::Applied, &Outcome::Applied, &Outcome::Duplicate]);
        assert!(matches!(outcomes[5], Outcome::Rejected { code, .. } if code == "setup-already-confirmed"));
        let statuses: Vec<Option<Status>> = timeline.entries.iter().map(|e| e.status_after).collect();
        let (pending, subscribed) = (Some(Status::PendingFulfillment), Some(Status::Subscribed));
        assert_eq!(statuses, [None, pending, pending, subscribed, subscribed, subscribed]);
        let billing: Vec<usize> = timeline.entries.iter().map(|e| e.billing.len()).collect();
        assert_eq!(billing, [0, 0, 0, 1, 0, 0]);
        assert_eq!(timeline.entries[3].billing[0].kind.type_name(), "billing.started");
        assert!(std::ptr::eq(timeline.entries[2].event, &stream[2]), "entries keep the caller's events, in order");
    }

    #[test]
    fn the_state_is_the_fold_of_the_stream() {
        let stream = [
            envelope(purchase_event(5)),
            envelope(Event::LicensesAssigned { assigned_count: 5 }),
            envelope(setup(5)),
            envelope(Event::QuantityChanged { previous_quantity: 5, quantity: 7 }),
        ];
        let timeline = explain(stream.iter().cloned(), |e| e);
        let folded = fold(None, &stream);
        assert_eq!(timeline.state, folded.state);
        let billing: Vec<_> = timeline.entries.into_iter().flat_map(|e| e.billing).map(Effect::Billing).collect();
        assert_eq!(billing, folded.effects);
    }
}
