//! `apply` and `fold`: how recorded events evolve a subscription and which billing effects they
//! cause. Total and deterministic: every event yields a state and effects, never a panic or an
//! error, because an event already in the log cannot be refused, only recorded as rejected.

use crate::billing::{BillingEvent, BillingEventKind};
use crate::decide::{check_completion, check_licenses, check_setup, ensure_not_terminal, ensure_subscribed, Rejection};
use crate::event::{Event, EventEnvelope, OperationAction, OperationOutcome};
use crate::subscription::{Operation, OperationStatus, Status, Subscription};
use serde::Serialize;
use uuid::Uuid;

/// What applying one event caused besides the state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "camelCase")]
pub enum Effect {
    /// A billing event to hand to billing systems (outbox).
    Billing(BillingEvent),
    /// The event reached the log but breaks a rule (it raced past `decide`); the state is
    /// unchanged and the reason is kept for the audit trail.
    Rejected {
        /// The rejected event.
        event_id: Uuid,
        /// Which rule it broke.
        reason: String,
        /// Stable code of the rule.
        code: String,
    },
    /// The event id was seen before; nothing happened.
    Duplicate {
        /// The repeated event id.
        event_id: Uuid,
    },
}

/// State and effects after folding a sequence of events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folded {
    /// The subscription, once purchased.
    pub state: Option<Subscription>,
    /// Effects of every event, in order.
    pub effects: Vec<Effect>,
}

/// Applies one recorded event to `state`.
pub fn apply(state: Option<Subscription>, envelope: &EventEnvelope) -> (Option<Subscription>, Vec<Effect>) {
    let id = envelope.event_id;
    match state {
        Some(s) if s.seen_event_ids.contains(&id) => (Some(s), vec![Effect::Duplicate { event_id: id }]),
        None => match &envelope.event {
            Event::SubscriptionPurchased { purchase, cancellation_allowed_until } => {
                let subscription = Subscription {
                    id: envelope.subscription_id,
                    purchase: purchase.clone(),
                    status: Status::PendingFulfillment,
                    licenses_assigned: None,
                    setup_confirmed: false,
                    purchased_at: envelope.occurred_at,
                    cancellation_allowed_until: *cancellation_allowed_until,
                    billing_started_at: None,
                    cancelled_at: None,
                    cancellation: None,
                    operations: Vec::new(),
                    version: 1,
                    updated_at: envelope.occurred_at,
                    seen_event_ids: [id].into(),
                };
                (Some(subscription), vec![])
            }
            _ => (None, vec![rejected(id, &Rejection::NotFound)]),
        },
        Some(mut s) => {
            s.seen_event_ids.insert(id);
            match evolve(&mut s, envelope) {
                Ok(effects) => {
                    s.version += 1;
                    s.updated_at = envelope.occurred_at;
                    (Some(s), effects)
                }
                Err(rejection) => (Some(s), vec![rejected(id, &rejection)]),
            }
        }
    }
}

/// Folds `events` onto `state`, collecting every effect.
pub fn fold(state: Option<Subscription>, events: &[EventEnvelope]) -> Folded {
    let mut folded = Folded { state, effects: Vec::new() };
    for envelope in events {
        let (state, effects) = apply(folded.state.take(), envelope);
        folded.state = state;
        folded.effects.extend(effects);
    }
    folded
}

fn rejected(event_id: Uuid, rejection: &Rejection) -> Effect {
    Effect::Rejected { event_id, reason: rejection.to_string(), code: rejection.code().to_owned() }
}

/// The state change of one event on an existing subscription. Leaves `s` untouched on `Err`
/// (every check runs before the first assignment).
fn evolve(s: &mut Subscription, envelope: &EventEnvelope) -> Result<Vec<Effect>, Rejection> {
    let at = envelope.occurred_at;
    let id = envelope.event_id;
    if matches!(envelope.event, Event::SubscriptionPurchased { .. }) {
        return Err(Rejection::AlreadyPurchased);
    }
    ensure_not_terminal(s)?;
    let mut effects = Vec::new();
    match &envelope.event {
        Event::SubscriptionPurchased { .. } => unreachable!("refused above"),
        Event::LicensesAssigned { assigned_count } => {
            check_licenses(s, *assigned_count)?;
            s.licenses_assigned = Some(*assigned_count);
            effects.extend(start_billing_when_ready(s, id, at));
        }
        Event::SetupConfirmed { plan_id, quantity } => {
            check_setup(s, plan_id, *quantity)?;
            s.setup_confirmed = true;
            effects.extend(start_billing_when_ready(s, id, at));
        }
        Event::QuantityChanged { quantity, .. } => {
            let previous_quantity = s.purchase.quantity;
            s.purchase.quantity = *quantity;
            if s.is_billing() && previous_quantity != *quantity {
                let kind = BillingEventKind::QuantityChanged { previous_quantity, quantity: *quantity };
                effects.push(Effect::Billing(BillingEvent::new(kind, s, id, at)));
            }
        }
        Event::NicknameChanged { friendly_name } => s.purchase.friendly_name = friendly_name.clone(),
        Event::AutoRenewChanged { auto_renew } => s.purchase.auto_renew = *auto_renew,
        Event::IndirectResellerSet { mpn_id } => s.purchase.indirect_reseller_mpn_id = Some(mpn_id.clone()),
        Event::Cancelled(cancellation) => {
            let was_billing = s.is_billing();
            s.status = Status::Unsubscribed;
            s.cancelled_at = Some(at);
            s.cancellation = Some(cancellation.clone());
            if let Some(operation_id) = cancellation.operation_id {
                s.operations.push(Operation {
                    id: operation_id,
                    action: OperationAction::Unsubscribe,
                    plan_id: s.purchase.plan_id.clone(),
                    quantity: s.purchase.quantity,
                    status: OperationStatus::Succeeded,
                    requested_by: cancellation.by,
                    requested_at: at,
                    completed_at: Some(at),
                });
            }
            if was_billing {
                let kind = BillingEventKind::Stopped {
                    refundable: cancellation.refundable,
                    cancelled_by: cancellation.by,
                    reason: cancellation.reason.clone(),
                };
                effects.push(Effect::Billing(BillingEvent::new(kind, s, id, at)));
            }
        }
        Event::OperationRequested { operation_id, action, plan_id, quantity } => {
            ensure_subscribed(s)?;
            if s.operation(*operation_id).is_some() {
                return Err(Rejection::SameValue { field: "operationId", value: operation_id.to_string() });
            }
            s.operations.push(Operation {
                id: *operation_id,
                action: *action,
                plan_id: plan_id.clone(),
                quantity: *quantity,
                status: OperationStatus::InProgress,
                requested_by: envelope.source.kind,
                requested_at: at,
                completed_at: None,
            });
        }
        Event::OperationCompleted { operation_id, outcome } => {
            check_completion(s, *operation_id, *outcome)?;
            let index = s.operations.iter().position(|o| o.id == *operation_id).ok_or(Rejection::OperationNotFound)?;
            let operation = s.operations[index].clone();
            s.operations[index].completed_at = Some(at);
            if *outcome == OperationOutcome::Failed {
                s.operations[index].status = OperationStatus::Failed;
                return Ok(effects);
            }
            s.operations[index].status = OperationStatus::Succeeded;
            let (previous_plan_id, previous_quantity) = (s.purchase.plan_id.clone(), s.purchase.quantity);
            s.purchase.plan_id = operation.plan_id.clone();
            s.purchase.quantity = operation.quantity;
            if s.is_billing() {
                if previous_plan_id != s.purchase.plan_id {
                    let kind = BillingEventKind::PlanChanged { previous_plan_id, plan_id: s.purchase.plan_id.clone() };
                    effects.push(Effect::Billing(BillingEvent::new(kind, s, id, at)));
                }
                if previous_quantity != s.purchase.quantity {
                    let kind = BillingEventKind::QuantityChanged { previous_quantity, quantity: s.purchase.quantity };
                    effects.push(Effect::Billing(BillingEvent::new(kind, s, id, at)));
                }
            }
        }
    }
    Ok(effects)
}

/// The billing rule: billing starts when both licenses are assigned and setup is confirmed,
/// whichever came last, exactly once, and only while the subscription is pending.
fn start_billing_when_ready(s: &mut Subscription, event_id: Uuid, at: chrono::DateTime<chrono::Utc>) -> Option<Effect> {
    let ready = s.licenses_assigned.is_some() && s.setup_confirmed;
    if !ready || s.billing_started_at.is_some() || s.status != Status::PendingFulfillment {
        return None;
    }
    s.status = Status::Subscribed;
    s.billing_started_at = Some(at);
    let kind = BillingEventKind::Started { quantity: s.purchase.quantity };
    Some(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cancellation, SourceKind};
    use crate::test_support::*;

    fn billing_types(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Billing(b) => Some(b.kind.type_name()),
                _ => None,
            })
            .collect()
    }

    fn cancel(refundable: bool) -> Event {
        Event::Cancelled(Cancellation { reason: "r".into(), by: SourceKind::Partner, refundable, operation_id: None })
    }

    #[test]
    fn purchase_creates_a_pending_subscription() {
        let folded = fold(None, &[envelope(purchase_event(5))]);
        let s = folded.state.unwrap();
        assert_eq!(s.status, Status::PendingFulfillment);
        assert!(s.action_needed());
        assert_eq!(s.version, 1);
        assert!(folded.effects.is_empty());
    }

    #[test]
    fn billing_starts_after_licenses_then_setup() {
        let events =
            [envelope(purchase_event(5)), envelope(Event::LicensesAssigned { assigned_count: 5 }), envelope(setup(5))];
        let folded = fold(None, &events);
        assert_eq!(billing_types(&folded.effects), ["billing.started"]);
        let s = folded.state.unwrap();
        assert_eq!(s.status, Status::Subscribed);
        assert_eq!(s.billing_started_at, Some(events[2].occurred_at));
    }

    #[test]
    fn billing_starts_after_setup_then_licenses() {
        let events =
            [envelope(purchase_event(5)), envelope(setup(5)), envelope(Event::LicensesAssigned { assigned_count: 2 })];
        let folded = fold(None, &events);
        assert_eq!(billing_types(&folded.effects), ["billing.started"]);
        let Effect::Billing(b) = &folded.effects[0] else { panic!() };
        assert_eq!(b.caused_by_event_id, events[2].event_id);
        assert_eq!(b.kind, BillingEventKind::Started { quantity: 5 });
    }

    #[test]
    fn one_fact_alone_does_not_start_billing() {
        for fact in [setup(5), Event::LicensesAssigned { assigned_count: 5 }] {
            let folded = fold(None, &[envelope(purchase_event(5)), envelope(fact)]);
            assert!(billing_types(&folded.effects).is_empty());
            assert_eq!(folded.state.unwrap().status, Status::PendingFulfillment);
        }
    }

    #[test]
    fn licenses_reported_again_after_billing_do_not_restart_it() {
        let folded = fold(
            None,
            &[
                envelope(purchase_event(5)),
                envelope(Event::LicensesAssigned { assigned_count: 5 }),
                envelope(setup(5)),
                envelope(Event::LicensesAssigned { assigned_count: 4 }),
            ],
        );
        assert_eq!(billing_types(&folded.effects), ["billing.started"]);
        assert_eq!(folded.state.unwrap().licenses_assigned, Some(4));
    }

    #[test]
    fn quantity_change_after_billing_emits_a_billing_change() {
        let folded = fold(
            None,
            &[
                envelope(purchase_event(5)),
                envelope(Event::LicensesAssigned { assigned_count: 5 }),
                envelope(setup(5)),
                envelope(Event::QuantityChanged { previous_quantity: 5, quantity: 9 }),
            ],
        );
        assert_eq!(billing_types(&folded.effects), ["billing.started", "billing.quantity_changed"]);
        assert_eq!(folded.state.unwrap().purchase.quantity, 9);
    }

    #[test]
    fn quantity_change_before_billing_emits_nothing() {
        let folded = fold(
            None,
            &[envelope(purchase_event(5)), envelope(Event::QuantityChanged { previous_quantity: 5, quantity: 9 })],
        );
        assert!(folded.effects.is_empty());
    }

    #[test]
    fn cancel_after_billing_stops_it_and_before_billing_emits_nothing() {
        let billed =
            [envelope(purchase_event(5)), envelope(Event::LicensesAssigned { assigned_count: 5 }), envelope(setup(5))];
        let mut events = billed.to_vec();
        events.push(envelope(cancel(true)));
        let folded = fold(None, &events);
        assert_eq!(billing_types(&folded.effects), ["billing.started", "billing.stopped"]);
        let s = folded.state.unwrap();
        assert_eq!(s.status, Status::Unsubscribed);
        assert!(!s.is_billing());

        let folded = fold(None, &[envelope(purchase_event(5)), envelope(cancel(true))]);
        assert!(folded.effects.is_empty());
    }

    #[test]
    fn no_billing_after_cancellation_even_when_facts_arrive_later() {
        let folded = fold(
            None,
            &[
                envelope(purchase_event(5)),
                envelope(Event::LicensesAssigned { assigned_count: 5 }),
                envelope(cancel(true)),
                envelope(setup(5)),
            ],
        );
        assert!(billing_types(&folded.effects).is_empty());
        assert!(matches!(folded.effects.last(), Some(Effect::Rejected { code, .. }) if code == "unsubscribed"));
    }

    #[test]
    fn events_for_unknown_subscriptions_and_second_purchases_are_rejected() {
        let folded = fold(None, &[envelope(setup(5))]);
        assert!(folded.state.is_none());
        assert!(matches!(&folded.effects[0], Effect::Rejected { code, .. } if code == "not-found"));

        let folded = fold(None, &[envelope(purchase_event(5)), envelope(purchase_event(7))]);
        assert_eq!(folded.state.as_ref().unwrap().purchase.quantity, 5);
        assert!(matches!(&folded.effects[0], Effect::Rejected { code, .. } if code == "already-purchased"));
    }

    #[test]
    fn a_racing_setup_with_the_wrong_quantity_is_recorded_as_rejected() {
        let folded = fold(
            None,
            &[
                envelope(purchase_event(5)),
                envelope(Event::QuantityChanged { previous_quantity: 5, quantity: 6 }),
                envelope(setup(5)),
            ],
        );
        let s = folded.state.unwrap();
        assert!(!s.setup_confirmed);
        assert_eq!(s.version, 2, "a rejected event does not bump the version");
        assert!(matches!(&folded.effects[0], Effect::Rejected { code, .. } if code == "quantity-mismatch"));
    }

    #[test]
    fn a_redelivered_event_is_a_no_op() {
        let purchase = envelope(purchase_event(5));
        let licenses = envelope(Event::LicensesAssigned { assigned_count: 5 });
        let folded = fold(None, &[purchase.clone(), licenses.clone(), licenses.clone(), purchase.clone()]);
        assert_eq!(folded.state.unwrap().version, 2);
        assert_eq!(
            folded.effects,
            vec![Effect::Duplicate { event_id: licenses.event_id }, Effect::Duplicate { event_id: purchase.event_id }]
        );
    }

    #[test]
    fn billing_event_ids_are_deterministic() {
        let events =
            [envelope(purchase_event(5)), envelope(Event::LicensesAssigned { assigned_count: 5 }), envelope(setup(5))];
        assert_eq!(fold(None, &events).effects, fold(None, &events).effects);
        let Effect::Billing(b) = &fold(None, &events).effects[0] else { panic!() };
        let again = BillingEvent::new(
            b.kind.clone(),
            &fold(None, &events).state.unwrap(),
            events[2].event_id,
            events[2].occurred_at,
        );
        assert_eq!(b.id, again.id);
    }
}

#[cfg(test)]
mod operation_tests {
    //! SaaS API operations: requested by the publisher, effective when they succeed.
    use super::*;
    use crate::catalog::{Plan, Term};
    use crate::decide::{decide, Command, RequestedChange};
    use crate::event::{Cancellation, SourceKind};
    use crate::test_support::*;

    fn gold() -> Plan {
        Plan { id: "gold".into(), min_quantity: 5, max_quantity: 50, terms: vec![Term::P1M] }
    }

    fn active(quantity: u32) -> Subscription {
        let s = after(purchased(quantity), Event::LicensesAssigned { assigned_count: 1 });
        after(s, setup(quantity))
    }

    fn op(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn request(s: &Subscription, n: u128, change: RequestedChange) -> Result<Vec<Event>, Rejection> {
        decide(Some(s), &Command::RequestChange { operation_id: op(n), change }, t0())
    }

    fn complete(s: &Subscription, n: u128, outcome: OperationOutcome) -> Result<Vec<Event>, Rejection> {
        decide(Some(s), &Command::CompleteOperation { operation_id: op(n), outcome }, t0())
    }

    fn apply_all(s: Subscription, events: Vec<Event>) -> (Subscription, Vec<Effect>) {
        let folded = fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>());
        (folded.state.unwrap(), folded.effects)
    }

    #[test]
    fn changes_need_an_active_subscription_and_a_different_value_within_bounds() {
        let pending = purchased(5);
        let q = |quantity| RequestedChange::Quantity { quantity, plan: plan() };
        assert_eq!(request(&pending, 1, q(6)), Err(Rejection::NotSubscribed("pending fulfillment")));
        let s = active(5);
        assert!(matches!(request(&s, 1, q(5)), Err(Rejection::SameValue { field: "quantity", .. })));
        assert!(matches!(request(&s, 1, q(501)), Err(Rejection::InvalidField { field: "quantity", .. })));
        assert!(matches!(
            request(&s, 1, RequestedChange::Plan(plan())),
            Err(Rejection::SameValue { field: "planId", .. })
        ));
        let mut small = gold();
        small.max_quantity = 4;
        assert!(matches!(
            request(&s, 1, RequestedChange::Plan(small)),
            Err(Rejection::InvalidField { field: "quantity", .. })
        ));
        let events = request(&s, 1, q(9)).unwrap();
        assert_eq!(
            events,
            vec![Event::OperationRequested {
                operation_id: op(1),
                action: OperationAction::ChangeQuantity,
                plan_id: "standard".into(),
                quantity: 9
            }]
        );
    }

    #[test]
    fn a_requested_change_takes_effect_only_when_it_succeeds() {
        let s = active(5);
        let (s, effects) =
            apply_all(s.clone(), request(&s, 1, RequestedChange::Quantity { quantity: 9, plan: plan() }).unwrap());
        assert!(effects.is_empty());
        assert_eq!(s.purchase.quantity, 5);
        assert_eq!(s.operation(op(1)).unwrap().status, OperationStatus::InProgress);
        let (s, effects) = apply_all(s.clone(), complete(&s, 1, OperationOutcome::Succeeded).unwrap());
        assert_eq!(s.purchase.quantity, 9);
        assert_eq!(s.operation(op(1)).unwrap().status, OperationStatus::Succeeded);
        let Effect::Billing(b) = &effects[0] else { panic!("{effects:?}") };
        assert_eq!(b.kind, BillingEventKind::QuantityChanged { previous_quantity: 5, quantity: 9 });
        // Reporting the same outcome again changes nothing; the opposite one is refused.
        assert_eq!(complete(&s, 1, OperationOutcome::Succeeded).unwrap(), vec![]);
        assert!(matches!(complete(&s, 1, OperationOutcome::Failed), Err(Rejection::OperationAlreadyCompleted { .. })));
        assert_eq!(complete(&s, 2, OperationOutcome::Succeeded), Err(Rejection::OperationNotFound));
    }

    #[test]
    fn a_failed_operation_changes_nothing() {
        let s = active(5);
        let (s, _) = apply_all(s.clone(), request(&s, 1, RequestedChange::Plan(gold())).unwrap());
        let (s, effects) = apply_all(s.clone(), complete(&s, 1, OperationOutcome::Failed).unwrap());
        assert!(effects.is_empty());
        assert_eq!(s.purchase.plan_id, "standard");
        assert_eq!(s.operation(op(1)).unwrap().status, OperationStatus::Failed);
    }

    #[test]
    fn a_plan_change_bills_the_new_plan() {
        let s = active(5);
        let (s, _) = apply_all(s.clone(), request(&s, 1, RequestedChange::Plan(gold())).unwrap());
        let (s, effects) = apply_all(s.clone(), complete(&s, 1, OperationOutcome::Succeeded).unwrap());
        assert_eq!(s.purchase.plan_id, "gold");
        let Effect::Billing(b) = &effects[0] else { panic!("{effects:?}") };
        assert_eq!(
            b.kind,
            BillingEventKind::PlanChanged { previous_plan_id: "standard".into(), plan_id: "gold".into() }
        );
        assert_eq!(b.plan_id, "gold");
    }

    #[test]
    fn an_older_operation_cannot_succeed_after_a_newer_one_did() {
        let s = active(5);
        let (s, _) =
            apply_all(s.clone(), request(&s, 1, RequestedChange::Quantity { quantity: 7, plan: plan() }).unwrap());
        let (s, _) =
            apply_all(s.clone(), request(&s, 2, RequestedChange::Quantity { quantity: 8, plan: plan() }).unwrap());
        let (s, _) = apply_all(s.clone(), complete(&s, 2, OperationOutcome::Succeeded).unwrap());
        assert_eq!(
            complete(&s, 1, OperationOutcome::Succeeded),
            Err(Rejection::NewerOperationCompleted { newer: op(2) })
        );
        assert_eq!(complete(&s, 1, OperationOutcome::Failed).unwrap().len(), 1, "it may still be marked failed");
        assert_eq!(s.purchase.quantity, 8);
    }

    #[test]
    fn a_publisher_cancellation_records_a_succeeded_unsubscribe_operation() {
        let s = active(5);
        let cancel =
            Command::Cancel { reason: "ISV request".into(), by: SourceKind::Publisher, operation_id: Some(op(3)) };
        let late = s.cancellation_allowed_until + chrono::Duration::days(10);
        let events = decide(Some(&s), &cancel, late).unwrap();
        assert!(matches!(&events[0], Event::Cancelled(Cancellation { refundable: false, operation_id: Some(_), .. })));
        let (s, effects) = apply_all(s, events);
        let unsubscribe = s.operation(op(3)).unwrap();
        assert_eq!(
            (unsubscribe.action, unsubscribe.status),
            (OperationAction::Unsubscribe, OperationStatus::Succeeded)
        );
        assert!(matches!(&effects[0], Effect::Billing(b) if b.kind.type_name() == "billing.stopped"));
        // In-progress operations can no longer succeed.
        assert_eq!(complete(&s, 3, OperationOutcome::Failed), Err(Rejection::Unsubscribed));
    }
}

#[cfg(test)]
mod properties {
    //! Property tests over random event sequences for one subscription.
    use super::*;
    use crate::event::{Cancellation, SourceKind};
    use crate::test_support::*;
    use proptest::prelude::*;

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (1u32..8).prop_map(|n| Event::LicensesAssigned { assigned_count: n }),
            (prop_oneof![Just("standard"), Just("gold")], 3u32..7)
                .prop_map(|(p, q)| { Event::SetupConfirmed { plan_id: p.into(), quantity: q } }),
            (1u32..10).prop_map(|q| Event::QuantityChanged { previous_quantity: 0, quantity: q }),
            any::<bool>().prop_map(|a| Event::AutoRenewChanged { auto_renew: a }),
            "[a-z]{1,8}".prop_map(|n| Event::NicknameChanged { friendly_name: n }),
            (any::<bool>(), prop_oneof![Just(SourceKind::Partner), Just(SourceKind::Publisher)]).prop_map(|(r, by)| {
                Event::Cancelled(Cancellation { reason: "r".into(), by, refundable: r, operation_id: None })
            }),
            (0u128..3, any::<bool>(), prop_oneof![Just("standard"), Just("gold")], 1u32..9).prop_map(
                |(op, quantity_change, plan, q)| {
                    Event::OperationRequested {
                        operation_id: Uuid::from_u128(op),
                        action: if quantity_change {
                            OperationAction::ChangeQuantity
                        } else {
                            OperationAction::ChangePlan
                        },
                        plan_id: plan.into(),
                        quantity: q,
                    }
                }
            ),
            (0u128..3, any::<bool>()).prop_map(|(op, ok)| Event::OperationCompleted {
                operation_id: Uuid::from_u128(op),
                outcome: if ok { OperationOutcome::Succeeded } else { OperationOutcome::Failed },
            }),
            (3u32..7).prop_map(purchase_event),
        ]
    }

    /// A purchase followed by random events, with some events delivered again (same id) at
    /// random later positions.
    fn arb_stream() -> impl Strategy<Value = Vec<EventEnvelope>> {
        (
            proptest::collection::vec(arb_event(), 0..25),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        )
            .prop_map(|(events, repeats)| {
                let mut stream = vec![envelope(purchase_event(5))];
                stream.extend(events.into_iter().map(envelope));
                for (which, at) in repeats {
                    let copy = stream[which.index(stream.len())].clone();
                    let pos = at.index(stream.len() + 1);
                    stream.insert(pos.max(1), copy);
                }
                stream
            })
    }

    fn count(effects: &[Effect], name: &str) -> usize {
        effects.iter().filter(|e| matches!(e, Effect::Billing(b) if b.kind.type_name() == name)).count()
    }

    proptest! {
        #[test]
        fn billing_starts_at_most_once(stream in arb_stream()) {
            let folded = fold(None, &stream);
            prop_assert!(count(&folded.effects, "billing.started") <= 1);
            prop_assert!(count(&folded.effects, "billing.stopped") <= count(&folded.effects, "billing.started"));
        }

        #[test]
        fn no_billing_effect_after_cancellation(stream in arb_stream()) {
            let mut state = None;
            let mut cancelled = false;
            for e in &stream {
                let (next, effects) = apply(state, e);
                if cancelled {
                    prop_assert!(!effects.iter().any(|e| matches!(e, Effect::Billing(_))), "billing after cancel: {effects:?}");
                }
                cancelled = next.as_ref().is_some_and(|s| s.status == Status::Unsubscribed);
                state = next;
            }
        }

        #[test]
        fn billing_started_iff_both_facts_applied_before_cancellation(stream in arb_stream()) {
            let folded = fold(None, &stream);
            let s = folded.state.unwrap();
            let started = count(&folded.effects, "billing.started") == 1;
            prop_assert_eq!(started, s.billing_started_at.is_some());
            if started {
                prop_assert!(s.setup_confirmed && s.licenses_assigned.is_some());
            } else if s.status != Status::Unsubscribed {
                prop_assert!(!(s.setup_confirmed && s.licenses_assigned.is_some()));
            }
        }

        #[test]
        fn duplicate_event_ids_are_no_ops(stream in arb_stream()) {
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<_> = stream.iter().filter(|e| seen.insert(e.event_id)).cloned().collect();
            let with = fold(None, &stream);
            let without = fold(None, &unique);
            prop_assert_eq!(&with.state, &without.state);
            let non_dup: Vec<_> = with.effects.into_iter().filter(|e| !matches!(e, Effect::Duplicate { .. })).collect();
            prop_assert_eq!(non_dup, without.effects);
        }

        #[test]
        fn folding_is_deterministic_and_incremental(stream in arb_stream(), split in any::<prop::sample::Index>()) {
            let once = fold(None, &stream);
            prop_assert_eq!(&once, &fold(None, &stream));
            let at = split.index(stream.len() + 1);
            let head = fold(None, &stream[..at]);
            let tail = fold(head.state, &stream[at..]);
            prop_assert_eq!(&once.state, &tail.state);
            let mut effects = head.effects;
            effects.extend(tail.effects);
            prop_assert_eq!(once.effects, effects);
        }

        #[test]
        fn state_survives_a_json_round_trip(stream in arb_stream()) {
            let s = fold(None, &stream).state.unwrap();
            let json = serde_json::to_string(&s).unwrap();
            let back: Subscription = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
