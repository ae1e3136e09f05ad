//! The rules of metered usage, one unit test each, and a property test that reports random
//! usage at random times and checks the invariants: at most one accepted report per dimension
//! and hour, one `billing.usage` per accepted report, and the term's totals equal to the sum of
//! what was billed for hours in the term.

use super::*;
use crate::command::Command;
use crate::decide::decide;
use crate::event::EventEnvelope;
use crate::fold::fold;
use crate::subscription::TermPeriod;
use crate::test_support::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn q(text: &str) -> UsageQuantity {
    text.parse().unwrap()
}

/// Billing from t0 (2026-03-01T12:00Z), monthly, on plan `standard` with dimension `apicalls`.
fn active() -> Subscription {
    let s = after(purchased(3), Event::LicensesAssigned { assigned_count: 3 });
    after(s, setup(3))
}

fn report(dimension: &str, quantity: &str, effective: DateTime<Utc>) -> Command {
    Command::ReportUsage {
        report: UsageReport {
            dimension: dimension.into(),
            quantity: q(quantity),
            effective_start_time: effective,
            plan_id: "standard".into(),
        },
        plan: plan(),
    }
}

/// Decides `command` at `now` and, when accepted, records it as ingress does (occurring and
/// recorded at `now`).
fn report_at(s: Subscription, command: &Command, now: DateTime<Utc>) -> (Subscription, Result<Vec<Effect>, Rejection>) {
    match decide(Some(&s), command, now) {
        Err(r) => (s, Err(r)),
        Ok(events) => {
            let envelopes: Vec<EventEnvelope> = events
                .into_iter()
                .map(|e| EventEnvelope { occurred_at: now, recorded_at: now, ..envelope(e) })
                .collect();
            let folded = fold(Some(s), &envelopes);
            (folded.state.unwrap(), Ok(folded.effects))
        }
    }
}

#[test]
fn accepted_usage_is_billed_with_its_dimension_hour_and_plan() {
    let now = at("2026-03-02T10:30:00Z");
    let (s, effects) = report_at(active(), &report("apicalls", "12.5", at("2026-03-02T09:45:00Z")), now);
    let effects = effects.unwrap();
    let bills = billed(&effects);
    assert_eq!(bills.len(), 1);
    let BillingEventKind::Usage { dimension, quantity, hour, usage_event_id, .. } = &bills[0].kind else {
        panic!("{:?}", bills[0].kind)
    };
    assert_eq!((dimension.as_str(), *quantity, *hour), ("apicalls", q("12.5"), at("2026-03-02T09:00:00Z")));
    assert_eq!(*usage_event_id, usage_event_id_of(&s, "apicalls", at("2026-03-02T09:10:00Z")));
    assert_eq!(bills[0].plan_id, "standard");
    assert_eq!(s.usage_this_term().get("apicalls"), Some(&q("12.5")));
}

fn usage_event_id_of(s: &Subscription, dimension: &str, at: DateTime<Utc>) -> Uuid {
    usage_event_id(s.id, dimension, at)
}

#[test]
fn a_second_report_in_the_same_hour_is_a_duplicate_answered_with_the_first() {
    let now = at("2026-03-02T10:58:00Z");
    let (s, first) = report_at(active(), &report("apicalls", "5", at("2026-03-02T10:05:00Z")), now);
    let Effect::Billing(billed) = &first.unwrap()[0] else { panic!("billed") };
    let BillingEventKind::Usage { usage_event_id: accepted_id, .. } = billed.kind else { panic!("usage") };
    let (s, again) = report_at(s, &report("apicalls", "7", at("2026-03-02T10:55:00Z")), now);
    let Err(Rejection::DuplicateUsage { usage_event_id, dimension, hour }) = again else { panic!("{again:?}") };
    assert_eq!((usage_event_id, dimension.as_str(), hour), (accepted_id, "apicalls", at("2026-03-02T10:00:00Z")));
    // The next hour is a new one.
    let (s, next_hour) = report_at(s, &report("apicalls", "7", at("2026-03-02T11:00:00Z")), at("2026-03-02T11:01:00Z"));
    assert!(next_hour.is_ok());
    assert_eq!(s.usage_this_term().get("apicalls"), Some(&q("12")));
}

#[test]
fn usage_is_refused_unless_the_subscription_is_active() {
    let now = t0() + Duration::hours(1);
    let pending = purchased(3);
    assert_eq!(decide(Some(&pending), &report("apicalls", "1", now), now), Err(Rejection::NotSubscribed("pending")));
    let suspend = Command::Suspend { reason: "paymentFailed".into(), grace: Duration::days(30) };
    let events = decide(Some(&active()), &suspend, now).unwrap();
    let suspended = fold(Some(active()), &events.into_iter().map(envelope).collect::<Vec<_>>()).state.unwrap();
    assert_eq!(
        decide(Some(&suspended), &report("apicalls", "1", now), now),
        Err(Rejection::NotSubscribed("suspended"))
    );
    let cancelled = after(
        active(),
        Event::Cancelled(crate::event::Cancellation {
            reason: "r".into(),
            by: crate::event::SourceKind::Publisher,
            refundable: false,
            operation_id: None,
        }),
    );
    assert_eq!(decide(Some(&cancelled), &report("apicalls", "1", now), now), Err(Rejection::Unsubscribed));
}

#[test]
fn plan_dimension_and_quantity_are_checked() {
    let now = at("2026-03-02T10:30:00Z");
    let s = active();
    let mut other_plan = report("apicalls", "1", now);
    if let Command::ReportUsage { report, .. } = &mut other_plan {
        report.plan_id = "premium".into();
    }
    assert!(matches!(decide(Some(&s), &other_plan, now), Err(Rejection::UsagePlanMismatch { .. })));
    let unknown = decide(Some(&s), &report("storage", "1", now), now).unwrap_err();
    assert_eq!(unknown.code(), "unknown-dimension");
    assert!(unknown.to_string().contains("apicalls"), "{unknown}");
    for quantity in ["0", "-3"] {
        let refused = decide(Some(&s), &report("apicalls", quantity, now), now).unwrap_err();
        assert!(matches!(refused, Rejection::InvalidField { field: "quantity", .. }), "{refused:?}");
    }
    assert!(decide(Some(&s), &report("apicalls", "0.001", now), now).is_ok());
    assert!(decide(Some(&s), &report("apicalls", "1000000000000", now), now).is_ok());
    let huge = decide(Some(&s), &report("apicalls", "1000000000000.5", now), now).unwrap_err();
    assert!(matches!(huge, Rejection::InvalidField { field: "quantity", .. }), "{huge:?}");
}

#[test]
fn usage_may_be_up_to_24_hours_late_and_never_in_the_future() {
    let now = at("2026-03-05T10:30:00Z");
    let s = active();
    assert!(decide(Some(&s), &report("apicalls", "1", now - Duration::hours(24)), now).is_ok());
    let late = decide(Some(&s), &report("apicalls", "1", now - Duration::hours(24) - Duration::seconds(1)), now);
    assert!(matches!(late, Err(Rejection::UsageExpired { .. })), "{late:?}");
    let future = decide(Some(&s), &report("apicalls", "1", now + Duration::seconds(1)), now);
    assert!(matches!(future, Err(Rejection::InvalidField { field: "effectiveStartTime", .. })), "{future:?}");
}

#[test]
fn usage_before_the_subscription_became_active_is_refused() {
    let s = active();
    let started = s.billing_started_at.unwrap();
    let now = started + Duration::hours(2);
    let early = decide(Some(&s), &report("apicalls", "1", started - Duration::seconds(1)), now);
    assert!(matches!(early, Err(Rejection::UsageBeforeActivation { .. })), "{early:?}");
    assert!(decide(Some(&s), &report("apicalls", "1", started), now).is_ok());
    // Activated mid-hour: that hour's usage, reported at the hour's start, is accepted.
    let licensed = after(purchased(3), Event::LicensesAssigned { assigned_count: 3 });
    let mid_hour = fold(Some(licensed), &[setup_at(t0() + Duration::minutes(20))]).state.unwrap();
    let hour_start = decide(Some(&mid_hour), &report("apicalls", "1", t0()), now);
    assert!(hour_start.is_ok(), "{hour_start:?}");
}

#[test]
fn a_racing_duplicate_is_recorded_as_rejected_and_billed_once() {
    let now = at("2026-03-02T10:30:00Z");
    let s = active();
    let command = report("apicalls", "2", now);
    let first = decide(Some(&s), &command, now).unwrap();
    let second = decide(Some(&s), &command, now).unwrap();
    let stamp = |e: Event| EventEnvelope { occurred_at: now, recorded_at: now, ..envelope(e) };
    let folded = fold(Some(s), &[stamp(first.remove_first()), stamp(second.remove_first())]);
    assert_eq!(billed(&folded.effects).len(), 1);
    assert!(folded.effects.iter().any(|e| matches!(e, Effect::Rejected { code, .. } if code == "duplicate-usage")));
    assert_eq!(folded.state.unwrap().usage_this_term().get("apicalls"), Some(&q("2")));
}

trait RemoveFirst {
    fn remove_first(self) -> Event;
}

impl RemoveFirst for Vec<Event> {
    fn remove_first(mut self) -> Event {
        self.remove(0)
    }
}

#[test]
fn the_state_keeps_only_the_reports_that_can_still_collide() {
    let mut s = active();
    let start = at("2026-03-02T00:00:00Z");
    for hour in 0..(RECENT_USAGE_HOURS * 3) {
        let now = start + Duration::hours(hour);
        let (next, result) = report_at(s, &report("apicalls", "1", now), now);
        assert!(result.is_ok());
        s = next;
    }
    let kept = s.metered_usage.recent_hours["apicalls"].len() as i64;
    assert!(kept <= RECENT_USAGE_HOURS + 1, "{kept}");
    assert!(s.seen_event_ids.len() < 10, "usage event ids are not kept: {}", s.seen_event_ids.len());
    assert_eq!(s.usage_this_term().get("apicalls"), Some(&q(&(RECENT_USAGE_HOURS * 3).to_string())));
}

#[test]
fn a_new_term_starts_its_totals_from_zero_and_late_usage_of_the_old_term_is_billed_not_counted() {
    let s = active();
    let TermPeriod { end_date, .. } = s.current_term.unwrap();
    let (s, _) = report_at(s, &report("apicalls", "4", end_date - Duration::hours(2)), end_date - Duration::hours(1));
    let renewed = lifecycle_renew(s);
    assert!(renewed.usage_this_term().is_empty(), "{:?}", renewed.usage_this_term());
    let now = end_date + Duration::hours(3);
    let (s, late) = report_at(renewed, &report("apicalls", "2", end_date - Duration::minutes(30)), now);
    assert_eq!(billed(&late.unwrap()).len(), 1);
    assert!(s.usage_this_term().get("apicalls").is_none_or(|q| *q == UsageQuantity::ZERO));
    let (s, _) = report_at(s, &report("apicalls", "6", end_date + Duration::hours(1)), now);
    assert_eq!(s.usage_this_term().get("apicalls"), Some(&q("6")));
}

/// Setup confirmed (billing starts) at `at`.
fn setup_at(at: DateTime<Utc>) -> EventEnvelope {
    EventEnvelope { occurred_at: at, recorded_at: at, ..envelope(setup(3)) }
}

/// The subscription renewed at the end of its term, as the scheduler records it.
fn lifecycle_renew(s: Subscription) -> Subscription {
    let deadline = s.next_deadline().unwrap();
    let events = decide(Some(&s), &Command::ReachDeadline(deadline), deadline.due_at).unwrap();
    let recorded: Vec<EventEnvelope> =
        events.into_iter().map(|e| EventEnvelope { occurred_at: deadline.due_at, ..envelope(e) }).collect();
    fold(Some(s), &recorded).state.unwrap()
}

#[test]
fn a_usage_event_delivered_twice_or_older_than_the_kept_hours_changes_nothing() {
    let now = at("2026-03-05T10:30:00Z");
    let s = active();
    let events = decide(Some(&s), &report("apicalls", "2", now - Duration::minutes(5)), now).unwrap();
    let recorded = EventEnvelope { occurred_at: now, recorded_at: now, ..envelope(events[0].clone()) };
    let folded = fold(Some(s), &[recorded.clone(), recorded]);
    assert_eq!(billed(&folded.effects).len(), 1);
    assert!(folded.effects.iter().any(|e| matches!(e, Effect::Rejected { code, .. } if code == "duplicate-usage")));
    // An event of an hour the state no longer keeps is refused, however it reached the log.
    let later = now + Duration::hours(RECENT_USAGE_HOURS + 2);
    let (s, _) = report_at(folded.state.unwrap(), &report("apicalls", "1", later), later);
    let stale = Event::UsageReported {
        usage_event_id: Uuid::from_u128(5),
        dimension: "apicalls".into(),
        quantity: q("1"),
        effective_start_time: now - Duration::hours(1),
        plan_id: "standard".into(),
    };
    let folded = fold(Some(s), &[EventEnvelope { occurred_at: now, recorded_at: now, ..envelope(stale) }]);
    assert!(billed(&folded.effects).is_empty());
    assert!(folded.effects.iter().any(|e| matches!(e, Effect::Rejected { code, .. } if code == "usage-expired")));
}

#[test]
fn a_usage_event_refused_while_inactive_stays_refused_when_a_copy_comes_later() {
    let s = after(purchased(3), Event::LicensesAssigned { assigned_count: 3 });
    let now = t0() + Duration::hours(1);
    let usage = Event::UsageReported {
        usage_event_id: usage_event_id(s.id, "apicalls", now),
        dimension: "apicalls".into(),
        quantity: q("4"),
        effective_start_time: now,
        plan_id: "standard".into(),
    };
    let copy = EventEnvelope { occurred_at: now, recorded_at: now, ..envelope(usage) };
    let setup = EventEnvelope { occurred_at: t0(), ..envelope(setup(3)) };
    let folded = fold(Some(s), &[copy.clone(), setup, copy]);
    assert!(billed(&folded.effects).iter().all(|b| b.kind.type_name() == "billing.started"), "{:?}", folded.effects);
    assert!(matches!(folded.effects.last(), Some(Effect::Duplicate { .. })), "{:?}", folded.effects);
}

#[test]
fn usage_by_dimension_lists_the_plans_dimensions_then_any_other_reported() {
    let now = at("2026-03-02T10:30:00Z");
    let (s, _) = report_at(active(), &report("apicalls", "2.5", now), now);
    let mut listed = plan().metering_dimensions;
    listed[0].id = "storage".into();
    let usage = s.usage_by_dimension(&listed);
    assert_eq!(usage.len(), 2);
    assert_eq!((usage[0].id, usage[0].dimension.is_some(), usage[0].quantity), ("storage", true, UsageQuantity::ZERO));
    assert_eq!((usage[1].id, usage[1].dimension, usage[1].quantity), ("apicalls", None, q("2.5")));
    assert!(active().usage_by_dimension(&[]).is_empty());
}

#[test]
fn states_without_usage_keep_their_json() {
    let json = serde_json::to_value(active()).unwrap();
    assert!(json.get("meteredUsage").is_none(), "{json}");
    let (s, _) = report_at(active(), &report("apicalls", "1", t0() + Duration::hours(1)), t0() + Duration::hours(1));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["meteredUsage"]["thisTerm"]["apicalls"], 1);
    assert_eq!(serde_json::from_value::<Subscription>(json).unwrap(), s);
}

proptest! {
    /// Random reports (dimension, quantity, minutes late) at random moments over three days:
    /// each accepted report is billed once, no two accepted share a dimension and hour, and the
    /// totals equal what was billed.
    #[test]
    fn usage_is_accepted_once_per_dimension_and_hour_and_totals_match_billing(
        steps in proptest::collection::vec((0u8..3, 1u32..1000, 0i64..(26 * 60), 0i64..90), 1..60)
    ) {
        let mut s = active();
        // Late enough that no report reaches back before billing started at t0.
        let mut now = t0() + Duration::hours(27);
        let mut accepted = BTreeSet::new();
        let mut billed_total = UsageQuantity::ZERO;
        let mut plan_with_two = plan();
        plan_with_two.metering_dimensions.push(crate::catalog::MeteringDimension {
            id: "storage".into(),
            display_name: "Storage".into(),
            unit: "GB".into(),
        });
        for (dimension, hundredths, minutes_late, minutes_on) in steps {
            now += Duration::minutes(minutes_on);
            let dimension = ["apicalls", "storage", "unknown"][dimension as usize];
            let effective = now - Duration::minutes(minutes_late);
            let command = Command::ReportUsage {
                report: UsageReport {
                    dimension: dimension.into(),
                    quantity: format!("{}.{:02}", hundredths / 100, hundredths % 100).parse().unwrap(),
                    effective_start_time: effective,
                    plan_id: "standard".into(),
                },
                plan: plan_with_two.clone(),
            };
            let (next, result) = report_at(s.clone(), &command, now);
            match result {
                Ok(effects) => {
                    let bills = billed(&effects);
                    prop_assert_eq!(bills.len(), 1);
                    prop_assert!(accepted.insert((dimension, usage_hour(effective))), "two accepted in one hour");
                    if let BillingEventKind::Usage { quantity, .. } = &bills[0].kind {
                        billed_total = billed_total.checked_add(*quantity).unwrap();
                    }
                }
                Err(Rejection::DuplicateUsage { hour, .. }) => {
                    prop_assert!(accepted.contains(&(dimension, hour)));
                }
                Err(_) => {}
            }
            s = next;
        }
        let totals = s.usage_this_term().values().fold(UsageQuantity::ZERO, |sum, q| sum.checked_add(*q).unwrap());
        prop_assert_eq!(totals, billed_total);
    }
}
