//! `decide`: checks a [`Command`] against the current state and says which events it causes,
//! or which rule it breaks ([`Rejection`], telling the caller what to fix). A command that
//! changes nothing decides no events, so retries are safe.
//!
//! In: the state (`None` before the purchase), the command, and `now` (the cancellation window
//! is measured against it; the wall clock is read at the edge). Out: events for the log. The
//! rules themselves live in `rules` (those the fold re-checks too) and `operations`.

use crate::command::{Command, PurchaseOrder};
use crate::event::{Cancellation, Event, Purchase, SourceKind};
use crate::lifecycle;
use crate::metering;
use crate::operations;
use crate::rejection::Rejection;
use crate::rules::{
    check_friendly_name, check_licenses, check_mpn_id, check_quantity, check_setup, ensure_not_suspended,
    ensure_not_terminal, invalid,
};
use crate::subscription::Subscription;
use chrono::{DateTime, Utc};

/// Checks `command` against `state` at instant `now` and returns the events it causes (empty
/// when it changes nothing).
pub fn decide(state: Option<&Subscription>, command: &Command, now: DateTime<Utc>) -> Result<Vec<Event>, Rejection> {
    let subscription = match (state, command) {
        (None, Command::Purchase(order)) => return decide_purchase(order, now),
        (Some(_), Command::Purchase(_)) => return Err(Rejection::AlreadyPurchased),
        (None, _) => return Err(Rejection::NotFound),
        (Some(s), _) => s,
    };
    ensure_not_terminal(subscription)?;
    let s = subscription;
    match command {
        Command::Purchase(_) => unreachable!("handled above"),
        Command::AssignLicenses { assigned_count } => {
            if *assigned_count == 0 {
                return Err(invalid("assignedCount", "must be at least 1".into()));
            }
            check_licenses(s, *assigned_count)?;
            if s.licenses_assigned == Some(*assigned_count) {
                return Ok(vec![]);
            }
            Ok(vec![Event::LicensesAssigned { assigned_count: *assigned_count }])
        }
        Command::ConfirmSetup { plan_id, quantity } => {
            if s.setup_confirmed && *plan_id == s.purchase.plan_id && *quantity == s.purchase.quantity {
                return Ok(vec![]);
            }
            check_setup(s, plan_id, *quantity)?;
            Ok(vec![Event::SetupConfirmed { plan_id: plan_id.clone(), quantity: *quantity }])
        }
        Command::ChangeQuantity { quantity, plan } => {
            check_quantity(plan, *quantity)?;
            if *quantity == s.purchase.quantity {
                return Ok(vec![]);
            }
            ensure_not_suspended(s)?;
            if let Some(assigned) = s.licenses_assigned.filter(|assigned| quantity < assigned) {
                return Err(Rejection::QuantityBelowAssignedLicenses { assigned, quantity: *quantity });
            }
            Ok(vec![Event::QuantityChanged { previous_quantity: s.purchase.quantity, quantity: *quantity }])
        }
        Command::ChangeNickname { friendly_name } => {
            let friendly_name = check_friendly_name(friendly_name)?;
            if friendly_name == s.purchase.friendly_name {
                return Ok(vec![]);
            }
            Ok(vec![Event::NicknameChanged { friendly_name }])
        }
        Command::SetAutoRenew { auto_renew } => {
            if *auto_renew == s.purchase.auto_renew {
                return Ok(vec![]);
            }
            Ok(vec![Event::AutoRenewChanged { auto_renew: *auto_renew }])
        }
        Command::SetIndirectReseller { mpn_id } => {
            check_mpn_id("partnerId", mpn_id)?;
            if s.purchase.indirect_reseller_mpn_id.as_deref() == Some(mpn_id.as_str()) {
                return Ok(vec![]);
            }
            Ok(vec![Event::IndirectResellerSet { mpn_id: mpn_id.clone() }])
        }
        Command::Cancel { reason, by, operation_id } => {
            let refundable = s.within_cancellation_window(now);
            if *by == SourceKind::Partner && !refundable {
                return Err(Rejection::CancellationWindowClosed { closed_at: s.cancellation_allowed_until });
            }
            Ok(vec![Event::Cancelled(Cancellation {
                reason: reason.clone(),
                by: *by,
                refundable,
                operation_id: *operation_id,
            })])
        }
        Command::RequestChange { operation_id, change } => operations::decide_request(s, *operation_id, change),
        Command::CompleteOperation { operation_id, outcome } => {
            operations::decide_completion(s, *operation_id, *outcome)
        }
        Command::ReachDeadline(deadline) => Ok(lifecycle::decide_deadline(s, deadline, now)),
        Command::Suspend { reason, grace } => lifecycle::decide_suspend(s, reason, *grace, now),
        Command::Reinstate => lifecycle::decide_reinstate(s),
        Command::ReportUsage { report, plan } => metering::decide_usage(s, report, plan, now),
    }
}

/// Decides a purchase: a quantity and term the catalog plan allows, a billing cycle that fits
/// the term, a valid nickname and reseller. Records the window end from the policy in force.
fn decide_purchase(order: &PurchaseOrder, now: DateTime<Utc>) -> Result<Vec<Event>, Rejection> {
    let (purchase, plan) = (&order.purchase, &order.plan);
    if purchase.plan_id != plan.id {
        return Err(invalid("planId", format!("{:?} is not the catalog plan {:?}", purchase.plan_id, plan.id)));
    }
    check_quantity(plan, purchase.quantity)?;
    if !plan.terms.contains(&purchase.term) {
        let allowed: Vec<&str> = plan.terms.iter().map(|t| t.as_str()).collect();
        return Err(invalid(
            "termDuration",
            format!("plan {} is not sold for {}; allowed: {}", plan.id, purchase.term, allowed.join(", ")),
        ));
    }
    if !purchase.billing_cycle.fits(purchase.term) {
        return Err(invalid(
            "billingCycle",
            format!("billing cycle {} does not fit term {}", purchase.billing_cycle, purchase.term),
        ));
    }
    let friendly_name = check_friendly_name(&purchase.friendly_name)?;
    if let Some(mpn) = &purchase.indirect_reseller_mpn_id {
        check_mpn_id("partnerIdOnRecord", mpn)?;
    }
    Ok(vec![Event::SubscriptionPurchased {
        purchase: Purchase { friendly_name, ..purchase.clone() },
        cancellation_allowed_until: now + order.policy.cancellation_window_for(purchase.term),
        activation_deadline: Some(now + order.policy.activation_deadline),
        licenses_required: Some(order.policy.licenses_required),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BillingCycle, Term};
    use crate::fold::{apply, fold};
    use crate::test_support::*;
    use chrono::Duration;

    #[test]
    fn purchase_records_the_window_end_from_the_policy() {
        let events = decide(None, &purchase_command(5), t0()).unwrap();
        let Event::SubscriptionPurchased {
            purchase,
            cancellation_allowed_until,
            activation_deadline,
            licenses_required,
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*cancellation_allowed_until, t0() + Duration::hours(72));
        assert_eq!(*activation_deadline, Some(t0() + Duration::days(30)));
        assert_eq!(*licenses_required, Some(crate::policy::LicensesRequired::All));
        assert_eq!(purchase.quantity, 5);
    }

    #[test]
    fn a_term_override_sets_the_purchase_window() {
        let mut order = purchase_order(5);
        order.purchase.term = Term::P1Y;
        order.policy.set_cancellation_window(Term::P1Y, Duration::hours(168));
        let events = decide_purchase(&order, t0()).unwrap();
        let Event::SubscriptionPurchased { cancellation_allowed_until, .. } = &events[0] else { panic!("{events:?}") };
        assert_eq!(*cancellation_allowed_until, t0() + Duration::hours(168));
    }

    #[test]
    fn purchase_outside_plan_bounds_names_quantity() {
        for q in [0, 501] {
            let err = decide(None, &purchase_command(q), t0()).unwrap_err();
            assert!(matches!(err, Rejection::InvalidField { field: "quantity", .. }), "{err}");
            assert!(err.is_invalid_input());
        }
    }

    #[test]
    fn purchase_checks_term_cycle_nickname_and_mpn() {
        let mut order = purchase_order(5);
        order.purchase.term = Term::P3Y;
        assert!(matches!(decide_purchase(&order, t0()), Err(Rejection::InvalidField { field: "termDuration", .. })));
        let mut order = purchase_order(5);
        order.purchase.billing_cycle = BillingCycle::Annual;
        assert!(matches!(decide_purchase(&order, t0()), Err(Rejection::InvalidField { field: "billingCycle", .. })));
        let mut order = purchase_order(5);
        order.purchase.friendly_name = "   ".into();
        assert!(matches!(decide_purchase(&order, t0()), Err(Rejection::InvalidField { field: "friendlyName", .. })));
        let mut order = purchase_order(5);
        order.purchase.indirect_reseller_mpn_id = Some("12ab".into());
        assert!(matches!(
            decide_purchase(&order, t0()),
            Err(Rejection::InvalidField { field: "partnerIdOnRecord", .. })
        ));
    }

    #[test]
    fn purchase_is_checked_against_the_plan_it_names() {
        let mut order = purchase_order(5);
        order.purchase.plan_id = "gold".into();
        assert!(matches!(decide_purchase(&order, t0()), Err(Rejection::InvalidField { field: "planId", .. })));
    }

    #[test]
    fn second_purchase_of_the_same_subscription_is_refused() {
        let s = purchased(5);
        assert_eq!(decide(Some(&s), &purchase_command(5), t0()), Err(Rejection::AlreadyPurchased));
    }

    #[test]
    fn commands_on_unknown_subscriptions_are_not_found() {
        assert_eq!(decide(None, &Command::AssignLicenses { assigned_count: 1 }, t0()), Err(Rejection::NotFound));
    }

    #[test]
    fn licenses_must_be_positive_and_within_quantity() {
        let s = purchased(5);
        assert!(matches!(
            decide(Some(&s), &Command::AssignLicenses { assigned_count: 0 }, t0()),
            Err(Rejection::InvalidField { field: "assignedCount", .. })
        ));
        assert_eq!(
            decide(Some(&s), &Command::AssignLicenses { assigned_count: 6 }, t0()),
            Err(Rejection::LicensesExceedQuantity { assigned: 6, quantity: 5 })
        );
        assert_eq!(
            decide(Some(&s), &Command::AssignLicenses { assigned_count: 5 }, t0()).unwrap(),
            vec![Event::LicensesAssigned { assigned_count: 5 }]
        );
    }

    #[test]
    fn reporting_the_same_licenses_again_changes_nothing() {
        let s = after(purchased(5), Event::LicensesAssigned { assigned_count: 5 });
        assert_eq!(decide(Some(&s), &Command::AssignLicenses { assigned_count: 5 }, t0()).unwrap(), vec![]);
    }

    #[test]
    fn setup_must_match_plan_and_quantity() {
        let s = purchased(5);
        let confirm = |plan: &str, q| Command::ConfirmSetup { plan_id: plan.into(), quantity: q };
        assert!(matches!(decide(Some(&s), &confirm("gold", 5), t0()), Err(Rejection::PlanMismatch { .. })));
        assert!(matches!(decide(Some(&s), &confirm("standard", 4), t0()), Err(Rejection::QuantityMismatch { .. })));
        assert_eq!(decide(Some(&s), &confirm("standard", 5), t0()).unwrap().len(), 1);
    }

    #[test]
    fn setup_confirmed_twice_is_a_no_op_with_the_same_values_and_a_conflict_otherwise() {
        let s = after(purchased(5), Event::SetupConfirmed { plan_id: "standard".into(), quantity: 5 });
        let same = Command::ConfirmSetup { plan_id: "standard".into(), quantity: 5 };
        assert_eq!(decide(Some(&s), &same, t0()).unwrap(), vec![]);
        let other = Command::ConfirmSetup { plan_id: "gold".into(), quantity: 5 };
        assert!(matches!(decide(Some(&s), &other, t0()), Err(Rejection::SetupAlreadyConfirmed { .. })));
    }

    #[test]
    fn quantity_changes_stay_within_plan_bounds_and_record_the_previous_value() {
        let s = purchased(5);
        let change = |q| Command::ChangeQuantity { quantity: q, plan: plan() };
        assert!(matches!(decide(Some(&s), &change(501), t0()), Err(Rejection::InvalidField { field: "quantity", .. })));
        assert!(matches!(decide(Some(&s), &change(0), t0()), Err(Rejection::InvalidField { field: "quantity", .. })));
        assert_eq!(decide(Some(&s), &change(5), t0()).unwrap(), vec![]);
        assert_eq!(
            decide(Some(&s), &change(8), t0()).unwrap(),
            vec![Event::QuantityChanged { previous_quantity: 5, quantity: 8 }]
        );
    }

    #[test]
    fn nickname_is_trimmed_bounded_and_unchanged_names_are_no_ops() {
        let s = purchased(5);
        let rename = |n: &str| Command::ChangeNickname { friendly_name: n.into() };
        assert_eq!(
            decide(Some(&s), &rename("  Sales team "), t0()).unwrap(),
            vec![Event::NicknameChanged { friendly_name: "Sales team".into() }]
        );
        assert_eq!(decide(Some(&s), &rename(&s.purchase.friendly_name.clone()), t0()).unwrap(), vec![]);
        assert!(decide(Some(&s), &rename(&"x".repeat(129)), t0()).is_err());
        assert!(decide(Some(&s), &rename("a\u{7}b"), t0()).is_err());
    }

    #[test]
    fn auto_renew_and_reseller_changes() {
        let s = purchased(5);
        assert_eq!(decide(Some(&s), &Command::SetAutoRenew { auto_renew: true }, t0()).unwrap(), vec![]);
        assert_eq!(
            decide(Some(&s), &Command::SetAutoRenew { auto_renew: false }, t0()).unwrap(),
            vec![Event::AutoRenewChanged { auto_renew: false }]
        );
        let set = |m: &str| Command::SetIndirectReseller { mpn_id: m.into() };
        assert!(matches!(
            decide(Some(&s), &set("12345"), t0()),
            Err(Rejection::InvalidField { field: "partnerId", .. })
        ));
        assert_eq!(decide(Some(&s), &set("1234567"), t0()).unwrap().len(), 1);
    }

    #[test]
    fn partner_cancellation_inside_the_window_is_refundable() {
        let s = purchased(5);
        let cancel = Command::Cancel { reason: "customer request".into(), by: SourceKind::Partner, operation_id: None };
        let at_edge = s.cancellation_allowed_until;
        let events = decide(Some(&s), &cancel, at_edge).unwrap();
        assert_eq!(
            events,
            vec![Event::Cancelled(Cancellation {
                reason: "customer request".into(),
                by: SourceKind::Partner,
                refundable: true,
                operation_id: None,
            })]
        );
    }

    #[test]
    fn partner_cancellation_after_the_window_is_refused_with_the_date() {
        let s = purchased(5);
        let cancel = Command::Cancel { reason: "late".into(), by: SourceKind::Partner, operation_id: None };
        let late = s.cancellation_allowed_until + Duration::seconds(1);
        assert_eq!(
            decide(Some(&s), &cancel, late),
            Err(Rejection::CancellationWindowClosed { closed_at: s.cancellation_allowed_until })
        );
    }

    #[test]
    fn publisher_cancellation_after_the_window_is_allowed_but_not_refundable() {
        let s = purchased(5);
        let cancel = Command::Cancel { reason: "unpaid".into(), by: SourceKind::Publisher, operation_id: None };
        let events = decide(Some(&s), &cancel, s.cancellation_allowed_until + Duration::days(3)).unwrap();
        assert!(matches!(&events[0], Event::Cancelled(c) if !c.refundable));
    }

    #[test]
    fn cancelled_subscriptions_are_terminal() {
        let s = purchased(5);
        let cancelled = fold(
            Some(s),
            &[envelope(Event::Cancelled(Cancellation {
                reason: "r".into(),
                by: SourceKind::Partner,
                refundable: true,
                operation_id: None,
            }))],
        )
        .state
        .unwrap();
        for cmd in [
            Command::AssignLicenses { assigned_count: 1 },
            Command::SetAutoRenew { auto_renew: false },
            Command::Cancel { reason: "again".into(), by: SourceKind::Partner, operation_id: None },
        ] {
            assert_eq!(decide(Some(&cancelled), &cmd, t0()), Err(Rejection::Unsubscribed), "{cmd:?}");
        }
    }

    #[test]
    fn decided_events_apply_without_rejection() {
        let s = purchased(5);
        let events = decide(Some(&s), &Command::AssignLicenses { assigned_count: 3 }, t0()).unwrap();
        let (_, effects) = apply(Some(s), &envelope(events[0].clone()));
        assert!(effects.is_empty(), "{effects:?}");
    }
}
