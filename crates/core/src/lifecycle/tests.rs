//! The rules of time: unit tests of each deadline, suspension and the license rules, and
//! property tests that drive a subscription through random partner, billing-system and clock
//! steps the way the scheduler does (deciding every due deadline in order) and check the
//! invariants over every run.

use super::*;
use crate::catalog::Term;
use crate::command::Command;
use crate::decide::decide;
use crate::event::{EventEnvelope, Source};
use crate::fold::{apply, fold};
use crate::test_support::*;
use proptest::prelude::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Decides every deadline due at `now`, in order, as the scheduler does; returns the state and
/// the effects.
fn reach_due(s: Subscription, now: DateTime<Utc>) -> (Subscription, Vec<Effect>) {
    reach_due_logged(s, now, &mut Vec::new())
}

/// [`reach_due`], appending the recorded envelopes to `log`.
fn reach_due_logged(
    mut s: Subscription,
    now: DateTime<Utc>,
    log: &mut Vec<EventEnvelope>,
) -> (Subscription, Vec<Effect>) {
    let mut effects = Vec::new();
    while let Some(deadline) = s.next_deadline().filter(|d| d.due_at <= now) {
        let events = decide(Some(&s), &Command::ReachDeadline(deadline), now).unwrap();
        assert_eq!(events.len(), 1, "a due deadline decides one event: {deadline:?}");
        let recorded = system_envelope(&deadline, events.into_iter().next().unwrap());
        let (next, caused) = apply(Some(s), &recorded);
        log.push(recorded);
        s = next.unwrap();
        effects.extend(caused);
    }
    (s, effects)
}

/// An envelope as the scheduler records a deadline's event: occurring at the deadline, with
/// the deadline's id, from `system`.
fn system_envelope(deadline: &Deadline, event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: deadline.event_id(subscription_id()),
        source: Source { kind: SourceKind::System, actor_id: "scheduler".into() },
        occurred_at: deadline.due_at,
        ..envelope(event)
    }
}

/// A subscription of `quantity` licenses, billed from t0 (2026-03-01T12:00Z), monthly.
fn active(quantity: u32) -> Subscription {
    let s = after(purchased(quantity), Event::LicensesAssigned { assigned_count: quantity });
    after(s, setup(quantity))
}

fn suspended(s: Subscription) -> Subscription {
    suspended_for(s, Duration::days(30))
}

fn suspended_for(s: Subscription, grace: Duration) -> Subscription {
    let events = decide(Some(&s), &Command::Suspend { reason: "paymentFailed".into(), grace }, t0()).unwrap();
    fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>()).state.unwrap()
}

#[test]
fn the_next_deadline_follows_the_status() {
    let pending = purchased(5);
    assert_eq!(
        pending.next_deadline(),
        Some(Deadline { kind: DeadlineKind::ActivationDeadline, due_at: t0() + Duration::days(30), term_number: 0 })
    );
    let s = active(5);
    let renewal = s.next_deadline().unwrap();
    assert_eq!(
        (renewal.kind, renewal.due_at, renewal.term_number),
        (DeadlineKind::Renewal, at("2026-04-01T12:00:00Z"), 1)
    );
    let off = after(s.clone(), Event::AutoRenewChanged { auto_renew: false });
    assert_eq!(off.next_deadline().unwrap().kind, DeadlineKind::Expiry);
    let paused = suspended(s);
    assert_eq!(paused.next_deadline().unwrap().kind, DeadlineKind::SuspensionGraceExpired);
    assert_eq!(paused.next_deadline().unwrap().due_at, t0() + Duration::days(30));
    let cancelled = after(
        paused,
        Event::Cancelled(Cancellation {
            reason: "r".into(),
            by: SourceKind::Partner,
            refundable: false,
            operation_id: None,
        }),
    );
    assert_eq!(cancelled.next_deadline(), None);
}

#[test]
fn a_deadline_not_yet_due_or_no_longer_next_decides_nothing() {
    let s = active(5);
    let deadline = s.next_deadline().unwrap();
    let early = deadline.due_at - Duration::seconds(1);
    assert_eq!(decide(Some(&s), &Command::ReachDeadline(deadline), early).unwrap(), vec![]);
    // The partner turned auto-renew off first: the renewal deadline is stale.
    let off = after(s, Event::AutoRenewChanged { auto_renew: false });
    assert_eq!(decide(Some(&off), &Command::ReachDeadline(deadline), deadline.due_at).unwrap(), vec![]);
}

#[test]
fn a_renewal_opens_the_next_term_and_bills_it_once() {
    let s = active(5);
    let (s, effects) = reach_due(s, at("2026-04-01T12:00:00Z"));
    let term = s.current_term.unwrap();
    assert_eq!(
        (term.number, term.start_date, term.end_date),
        (2, at("2026-04-01T12:00:00Z"), at("2026-05-01T12:00:00Z"))
    );
    assert_eq!(s.cancellation_allowed_until, at("2026-04-04T12:00:00Z"), "a renewal opens a new window");
    let billed = billed(&effects);
    assert_eq!(billed.len(), 1);
    assert_eq!(
        billed[0].kind,
        BillingEventKind::Renewed {
            term_number: 2,
            term_start: at("2026-04-01T12:00:00Z"),
            term_end: at("2026-05-01T12:00:00Z"),
            quantity: 5
        }
    );
    assert_eq!(billed[0].effective_at, at("2026-04-01T12:00:00Z"));
    // The same renewal recorded again under another id (a second scheduler that missed the
    // stream-version check) is refused by the fold: a term renews once.
    let again = Event::Renewed {
        term_number: 2,
        term_start: term.start_date,
        term_end: term.end_date,
        cancellation_allowed_until: s.cancellation_allowed_until,
    };
    let (_, effects) = apply(Some(s), &envelope(again));
    assert!(matches!(&effects[..], [Effect::Rejected { code, .. }] if code == "term-mismatch"), "{effects:?}");
}

#[test]
fn renewals_count_terms_from_the_first_start_so_month_ends_do_not_drift() {
    let mut s = active(5);
    let jan31 = at("2027-01-31T09:00:00Z");
    s.billing_started_at = Some(jan31);
    s.current_term = Some(TermPeriod { number: 1, start_date: jan31, end_date: at("2027-02-28T09:00:00Z") });
    let (s, _) = reach_due(s, at("2027-03-01T00:00:00Z"));
    assert_eq!(s.current_term.unwrap().end_date, at("2027-03-31T09:00:00Z"));
}

#[test]
fn a_long_gap_catches_up_every_term_in_order() {
    let s = active(5);
    let (s, effects) = reach_due(s, t0() + Duration::days(65));
    let terms: Vec<u32> = billed(&effects)
        .iter()
        .map(|b| match b.kind {
            BillingEventKind::Renewed { term_number, .. } => term_number,
            _ => panic!("{b:?}"),
        })
        .collect();
    assert_eq!(terms, [2, 3]);
    assert_eq!(s.current_term.unwrap().start_date, at("2026-05-01T12:00:00Z"));
}

#[test]
fn with_auto_renew_off_the_term_end_expires_the_subscription_and_stops_billing() {
    let s = after(active(5), Event::AutoRenewChanged { auto_renew: false });
    let (s, effects) = reach_due(s, t0() + Duration::days(65));
    assert_eq!(s.status, Status::Expired);
    assert_eq!(s.expired_at, Some(at("2026-04-01T12:00:00Z")));
    let billed = billed(&effects);
    assert_eq!(billed.len(), 1, "expires once, never renews after");
    assert_eq!(
        billed[0].kind,
        BillingEventKind::Stopped { refundable: false, cancelled_by: SourceKind::System, reason: "expired".into() }
    );
    assert_eq!(decide(Some(&s), &Command::SetAutoRenew { auto_renew: true }, t0()), Err(Rejection::Expired));
}

#[test]
fn a_subscription_still_pending_at_its_activation_deadline_is_cancelled_and_never_billed() {
    let s = after(purchased(5), Event::LicensesAssigned { assigned_count: 5 });
    let (s, effects) = reach_due(s, t0() + Duration::days(31));
    assert_eq!(s.status, Status::Unsubscribed);
    let cancellation = s.cancellation.unwrap();
    assert_eq!((cancellation.reason.as_str(), cancellation.by), (ACTIVATION_DEADLINE_REASON, SourceKind::System));
    assert_eq!(s.cancelled_at, Some(t0() + Duration::days(30)));
    assert!(billed(&effects).is_empty());
}

#[test]
fn suspension_pauses_billing_and_refuses_quantity_changes_until_reinstated() {
    let s = active(5);
    let (s, effects) = {
        let events =
            decide(Some(&s), &Command::Suspend { reason: "paymentFailed".into(), grace: Duration::days(30) }, t0())
                .unwrap();
        let folded = fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>());
        (folded.state.unwrap(), folded.effects)
    };
    assert_eq!(s.status, Status::Suspended);
    assert!(!s.is_billing());
    assert_eq!(billed(&effects)[0].kind, BillingEventKind::Suspended { reason: "paymentFailed".into() });
    let again = Command::Suspend { reason: "paymentFailed".into(), grace: Duration::days(30) };
    assert_eq!(decide(Some(&s), &again, t0()), Err(Rejection::NotSubscribed("suspended")), "not active");
    let change = Command::ChangeQuantity { quantity: 9, plan: plan() };
    assert_eq!(decide(Some(&s), &change, t0()), Err(Rejection::Suspended { reason: "paymentFailed".into() }));
    let events = decide(Some(&s), &Command::Reinstate, t0()).unwrap();
    let folded = fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>());
    assert_eq!(billed(&folded.effects)[0].kind, BillingEventKind::Resumed { quantity: 5 });
    let s = folded.state.unwrap();
    assert_eq!(s.status, Status::Subscribed);
    assert_eq!(decide(Some(&s), &Command::Reinstate, t0()), Err(Rejection::NotSuspended("active")));
}

#[test]
fn only_active_subscriptions_are_suspended_and_only_suspended_ones_reinstated() {
    let pending = purchased(5);
    let suspend = Command::Suspend { reason: "paymentFailed".into(), grace: Duration::days(30) };
    assert_eq!(decide(Some(&pending), &suspend, t0()), Err(Rejection::NotSubscribed("pending")));
    assert_eq!(decide(Some(&pending), &Command::Reinstate, t0()), Err(Rejection::NotSuspended("pending")));
    let blank = Command::Suspend { reason: " ".into(), grace: Duration::days(30) };
    assert!(matches!(decide(Some(&active(5)), &blank, t0()), Err(Rejection::InvalidField { field: "reason", .. })));
}

#[test]
fn a_partner_may_still_cancel_a_suspended_subscription_and_billing_stops() {
    let s = suspended(active(5));
    let cancel = Command::Cancel { reason: "customer left".into(), by: SourceKind::Partner, operation_id: None };
    let events = decide(Some(&s), &cancel, t0()).unwrap();
    let folded = fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>());
    assert_eq!(billed(&folded.effects)[0].kind.type_name(), "billing.stopped");
}

#[test]
fn still_suspended_after_the_grace_period_the_system_cancels_it() {
    let s = suspended(active(5));
    let (s, effects) = reach_due(s, t0() + Duration::days(30));
    assert_eq!(s.status, Status::Unsubscribed);
    assert_eq!(s.cancellation.as_ref().unwrap().reason, SUSPENSION_GRACE_EXPIRED_REASON);
    let billed = billed(&effects);
    assert_eq!(billed.len(), 1);
    assert!(matches!(&billed[0].kind, BillingEventKind::Stopped { reason, .. } if reason == "suspensionGraceExpired"));
}

#[test]
fn a_term_that_ended_while_suspended_renews_once_reinstated() {
    let s = suspended_for(active(5), Duration::days(60));
    let (s, effects) = reach_due(s, t0() + Duration::days(40));
    assert!(effects.is_empty(), "a suspended subscription does not renew: {effects:?}");
    let events = decide(Some(&s), &Command::Reinstate, t0() + Duration::days(40)).unwrap();
    let s = fold(Some(s), &events.into_iter().map(envelope).collect::<Vec<_>>()).state.unwrap();
    let (s, effects) = reach_due(s, t0() + Duration::days(40));
    assert_eq!(billed(&effects)[0].kind.type_name(), "billing.renewed");
    assert_eq!(s.current_term.unwrap().start_date, at("2026-04-01T12:00:00Z"), "the term starts where the last ended");
}

#[test]
fn a_suspended_subscription_without_auto_renew_still_expires_at_its_term_end() {
    let s = suspended_for(after(active(5), Event::AutoRenewChanged { auto_renew: false }), Duration::days(60));
    assert_eq!(s.next_deadline().unwrap().kind, DeadlineKind::Expiry);
    let (s, effects) = reach_due(s, t0() + Duration::days(40));
    assert_eq!(s.status, Status::Expired);
    assert_eq!(s.expired_at, Some(at("2026-04-01T12:00:00Z")));
    let billed = billed(&effects);
    assert_eq!(billed.len(), 1);
    assert!(matches!(&billed[0].kind, BillingEventKind::Stopped { reason, .. } if reason == "expired"));
    assert_eq!(decide(Some(&s), &Command::Reinstate, t0()), Err(Rejection::Expired));
}

#[test]
fn a_partner_cannot_go_below_the_licenses_assigned() {
    let s = active(5);
    let change = |q| Command::ChangeQuantity { quantity: q, plan: plan() };
    assert_eq!(
        decide(Some(&s), &change(3), t0()),
        Err(Rejection::QuantityBelowAssignedLicenses { assigned: 5, quantity: 3 })
    );
    let fewer = after(s, Event::LicensesAssigned { assigned_count: 3 });
    assert_eq!(decide(Some(&fewer), &change(3), t0()).unwrap().len(), 1);
}

#[test]
fn a_decrease_inside_the_window_is_refundable_and_after_it_is_not() {
    let s = after(active(5), Event::LicensesAssigned { assigned_count: 2 });
    let decrease = Event::QuantityChanged { previous_quantity: 5, quantity: 3 };
    let inside = fold(Some(s.clone()), &[envelope(decrease.clone())]);
    assert!(matches!(billed(&inside.effects)[0].kind, BillingEventKind::QuantityChanged { refundable: true, .. }));
    let late = EventEnvelope { occurred_at: s.cancellation_allowed_until + Duration::seconds(1), ..envelope(decrease) };
    let outside = fold(Some(s.clone()), &[late]);
    assert!(matches!(billed(&outside.effects)[0].kind, BillingEventKind::QuantityChanged { refundable: false, .. }));
    let increase = fold(Some(s), &[envelope(Event::QuantityChanged { previous_quantity: 5, quantity: 8 })]);
    assert!(matches!(billed(&increase.effects)[0].kind, BillingEventKind::QuantityChanged { refundable: false, .. }));
}

#[test]
fn reaching_due_deadlines_records_them_in_order_as_the_system_at_their_instants() {
    let s = active(5);
    let now = t0() + Duration::days(65);
    let (after, recorded) = reach_due_deadlines(Some(s.clone()), now, 0);
    let (expected, _) = reach_due(s.clone(), now);
    assert_eq!(after.as_ref(), Some(&expected));
    assert_eq!(recorded.len(), 2);
    for (e, due) in recorded.iter().zip([at("2026-04-01T12:00:00Z"), at("2026-05-01T12:00:00Z")]) {
        assert_eq!((e.occurred_at, e.recorded_at, e.source.kind), (due, now, SourceKind::System));
        assert_eq!(e.source.actor_id, SCHEDULER_ACTOR);
    }
    assert_eq!(fold(Some(s.clone()), &recorded).state, after, "the envelopes fold to the state returned");
    // Nothing due: nothing recorded. A retry derives other ids, the same for every writer.
    assert!(reach_due_deadlines(after, now, 0).1.is_empty());
    let (_, retried) = reach_due_deadlines(Some(s.clone()), now, 1);
    assert_ne!(retried[0].event_id, recorded[0].event_id);
    assert_eq!(retried[0].event_id, reach_due_deadlines(Some(s), now, 1).1[0].event_id);
}

#[test]
fn deadline_event_ids_are_deterministic_and_distinct_per_term() {
    let s = active(5);
    let first = s.next_deadline().unwrap();
    assert_eq!(first.event_id(s.id), s.next_deadline().unwrap().event_id(s.id));
    let (renewed, _) = reach_due(s.clone(), first.due_at);
    assert_ne!(renewed.next_deadline().unwrap().event_id(s.id), first.event_id(s.id));
    let other = SubscriptionId(uuid::Uuid::from_u128(99));
    assert_ne!(first.event_id(other), first.event_id(s.id));
}

#[test]
fn yearly_terms_renew_for_a_year() {
    let mut order = purchase_order(2);
    order.purchase.term = Term::P1Y;
    let bought = decide(None, &Command::Purchase(Box::new(order)), t0()).unwrap().remove(0);
    let s = fold(None, &[envelope(bought)]).state.unwrap();
    let s = after(after(s, Event::LicensesAssigned { assigned_count: 2 }), setup(2));
    let (s, _) = reach_due(s, at("2027-03-01T12:00:00Z"));
    let term = s.current_term.unwrap();
    assert_eq!((term.number, term.end_date), (2, at("2028-03-01T12:00:00Z")));
}

/// One step of a random run: the clock moves, or a partner or the billing system acts.
#[derive(Debug, Clone)]
enum Step {
    Wait(i64),
    AutoRenew(bool),
    Quantity(u32),
    Suspend,
    Reinstate,
    Licenses(u32),
    Setup,
    Cancel,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1i64..50).prop_map(Step::Wait),
        1 => any::<bool>().prop_map(Step::AutoRenew),
        1 => (1u32..9).prop_map(Step::Quantity),
        1 => Just(Step::Suspend),
        1 => Just(Step::Reinstate),
        2 => (1u32..9).prop_map(Step::Licenses),
        2 => Just(Step::Setup),
        1 => Just(Step::Cancel),
    ]
}

/// Runs `steps` from a fresh purchase of 5: every command decided at the current instant and
/// its events applied, every due deadline reached before the next step (as the scheduler
/// does). Returns the state, the effects of every event (each with the status it was caused
/// in) and the log of recorded envelopes.
fn run(steps: &[Step]) -> (Subscription, Vec<(Status, Effect)>, Vec<EventEnvelope>) {
    let mut log = vec![envelope(purchase_event(5))];
    let mut s = fold(None, &log).state.unwrap();
    let mut now = t0();
    let mut effects = Vec::new();
    for step in steps {
        let command = match step {
            Step::Wait(days) => {
                now += Duration::days(*days);
                let before = s.status;
                let (next, caused) = reach_due_logged(s, now, &mut log);
                s = next;
                effects.extend(caused.into_iter().map(|e| (before, e)));
                continue;
            }
            Step::AutoRenew(on) => Command::SetAutoRenew { auto_renew: *on },
            Step::Quantity(q) => Command::ChangeQuantity { quantity: *q, plan: plan() },
            Step::Suspend => Command::Suspend { reason: "paymentFailed".into(), grace: Duration::days(30) },
            Step::Reinstate => Command::Reinstate,
            Step::Licenses(n) => Command::AssignLicenses { assigned_count: *n },
            Step::Setup => Command::ConfirmSetup { plan_id: "standard".into(), quantity: s.purchase.quantity },
            Step::Cancel => Command::Cancel { reason: "r".into(), by: SourceKind::Publisher, operation_id: None },
        };
        let Ok(events) = decide(Some(&s), &command, now) else { continue };
        for event in events {
            let before = s.status;
            let recorded = EventEnvelope { occurred_at: now, ..envelope(event) };
            let (next, caused) = apply(Some(s), &recorded);
            log.push(recorded);
            s = next.unwrap();
            assert!(!caused.iter().any(|e| matches!(e, Effect::Rejected { .. })), "decided events apply: {caused:?}");
            effects.extend(caused.into_iter().map(|e| (before, e)));
        }
    }
    (s, effects, log)
}

proptest! {
    #[test]
    fn each_term_renews_at_most_once_and_terms_follow_each_other(steps in proptest::collection::vec(arb_step(), 0..40)) {
        let (_, effects, _) = run(&steps);
        let mut expected_term = 2;
        let mut last_end = None;
        for (_, effect) in &effects {
            if let Effect::Billing(BillingEvent { kind: BillingEventKind::Renewed { term_number, term_start, term_end, .. }, .. }) = effect {
                prop_assert_eq!(*term_number, expected_term);
                if let Some(end) = last_end {
                    prop_assert_eq!(*term_start, end);
                }
                prop_assert!(term_end > term_start);
                expected_term += 1;
                last_end = Some(*term_end);
            }
        }
    }

    #[test]
    fn nothing_is_billed_while_pending_suspended_or_ended(steps in proptest::collection::vec(arb_step(), 0..40)) {
        let (_, effects, _) = run(&steps);
        for (status, effect) in &effects {
            let Effect::Billing(b) = effect else { continue };
            let allowed = match status {
                Status::PendingFulfillment => b.kind.type_name() == "billing.started",
                Status::Subscribed => b.kind.type_name() != "billing.started" && b.kind.type_name() != "billing.resumed",
                Status::Suspended => matches!(b.kind.type_name(), "billing.resumed" | "billing.stopped"),
                Status::Unsubscribed | Status::Expired => false,
            };
            prop_assert!(allowed, "{} while {:?}", b.kind.type_name(), status);
        }
    }

    #[test]
    fn replaying_the_recorded_log_gives_the_same_state_and_billing(steps in proptest::collection::vec(arb_step(), 0..40)) {
        let (s, effects, log) = run(&steps);
        let replayed = fold(None, &log);
        prop_assert_eq!(replayed.state.as_ref(), Some(&s));
        let live: Vec<Effect> = effects.into_iter().map(|(_, e)| e).collect();
        prop_assert_eq!(replayed.effects, live);
        let round_trip: Subscription = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(round_trip, s);
    }
}
