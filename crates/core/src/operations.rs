//! SaaS API operations: a publisher asks (`PATCH`) to change plan or quantity, and the change
//! takes effect only when it reports that the operation succeeded; refused, nothing changes.
//! Both halves live here, what `decide` checks for the two commands and what `apply` does with
//! the two events, so an operation's life reads in one place. A publisher `DELETE` is decided
//! as a cancellation; the fold records its operation here, as an unsubscribe that succeeded.

use crate::billing::{BillingEvent, BillingEventKind};
use crate::command::RequestedChange;
use crate::event::{Event, OperationAction, OperationOutcome, SourceKind};
use crate::fold::Effect;
use crate::rejection::Rejection;
use crate::rules::check_quantity;
use crate::subscription::{Operation, OperationStatus, Status, Subscription};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Decides [`Command::RequestChange`](crate::Command::RequestChange): a different plan or
/// quantity, within the bounds of the plan it lands on, on a subscribed subscription.
pub(crate) fn decide_request(
    s: &Subscription,
    operation_id: Uuid,
    change: &RequestedChange,
) -> Result<Vec<Event>, Rejection> {
    ensure_subscribed(s)?;
    let (action, plan_id, quantity) = match change {
        RequestedChange::Plan(plan) => {
            if plan.id == s.purchase.plan_id {
                return Err(Rejection::SameValue { field: "planId", value: s.purchase.plan_id.clone() });
            }
            check_quantity(plan, s.purchase.quantity)?;
            (OperationAction::ChangePlan, plan.id.clone(), s.purchase.quantity)
        }
        RequestedChange::Quantity { quantity, plan } => {
            if *quantity == s.purchase.quantity {
                return Err(Rejection::SameValue { field: "quantity", value: s.purchase.quantity.to_string() });
            }
            check_quantity(plan, *quantity)?;
            (OperationAction::ChangeQuantity, s.purchase.plan_id.clone(), *quantity)
        }
    };
    Ok(vec![Event::OperationRequested { operation_id, action, plan_id, quantity }])
}

/// Decides [`Command::CompleteOperation`](crate::Command::CompleteOperation); the same outcome
/// reported again changes nothing.
pub(crate) fn decide_completion(
    s: &Subscription,
    operation_id: Uuid,
    outcome: OperationOutcome,
) -> Result<Vec<Event>, Rejection> {
    let operation = s.operation(operation_id).ok_or(Rejection::OperationNotFound)?;
    let repeated = matches!(
        (operation.status, outcome),
        (OperationStatus::Succeeded, OperationOutcome::Succeeded) | (OperationStatus::Failed, OperationOutcome::Failed)
    );
    if repeated {
        return Ok(vec![]);
    }
    check_completion(s, operation_id, outcome)?;
    Ok(vec![Event::OperationCompleted { operation_id, outcome }])
}

/// Applies [`Event::OperationRequested`]: records the operation as in progress. Leaves `s`
/// untouched on `Err`.
pub(crate) fn record_request(
    s: &mut Subscription,
    operation_id: Uuid,
    action: OperationAction,
    plan_id: &str,
    quantity: u32,
    requested_by: SourceKind,
    at: DateTime<Utc>,
) -> Result<(), Rejection> {
    ensure_subscribed(s)?;
    if s.operation(operation_id).is_some() {
        return Err(Rejection::SameValue { field: "operationId", value: operation_id.to_string() });
    }
    s.operations.push(Operation {
        id: operation_id,
        action,
        plan_id: plan_id.to_owned(),
        quantity,
        status: OperationStatus::InProgress,
        requested_by,
        requested_at: at,
        completed_at: None,
    });
    Ok(())
}

/// Applies [`Event::OperationCompleted`] (caused by `event_id` at `at`): a success changes plan
/// or quantity and, while billing runs, bills the change. Leaves `s` untouched on `Err`.
pub(crate) fn complete(
    s: &mut Subscription,
    operation_id: Uuid,
    outcome: OperationOutcome,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<Effect>, Rejection> {
    check_completion(s, operation_id, outcome)?;
    let index = s.operations.iter().position(|o| o.id == operation_id).ok_or(Rejection::OperationNotFound)?;
    let operation = s.operations[index].clone();
    s.operations[index].completed_at = Some(at);
    if outcome == OperationOutcome::Failed {
        s.operations[index].status = OperationStatus::Failed;
        return Ok(vec![]);
    }
    s.operations[index].status = OperationStatus::Succeeded;
    let (previous_plan_id, previous_quantity) = (s.purchase.plan_id.clone(), s.purchase.quantity);
    s.purchase.plan_id = operation.plan_id;
    s.purchase.quantity = operation.quantity;
    let mut effects = Vec::new();
    if s.is_billing() {
        if previous_plan_id != s.purchase.plan_id {
            let kind = BillingEventKind::PlanChanged { previous_plan_id, plan_id: s.purchase.plan_id.clone() };
            effects.push(Effect::Billing(BillingEvent::new(kind, s, event_id, at)));
        }
        if previous_quantity != s.purchase.quantity {
            let kind = BillingEventKind::QuantityChanged {
                previous_quantity,
                quantity: s.purchase.quantity,
                refundable: s.purchase.quantity < previous_quantity && at <= s.cancellation_allowed_until,
            };
            effects.push(Effect::Billing(BillingEvent::new(kind, s, event_id, at)));
        }
    }
    Ok(effects)
}

/// Applies the operation a publisher's cancellation (`DELETE`) carries: an unsubscribe that
/// succeeded at once, on the plan and quantity the subscription ends with.
pub(crate) fn record_unsubscribe(s: &mut Subscription, operation_id: Uuid, by: SourceKind, at: DateTime<Utc>) {
    s.operations.push(Operation {
        id: operation_id,
        action: OperationAction::Unsubscribe,
        plan_id: s.purchase.plan_id.clone(),
        quantity: s.purchase.quantity,
        status: OperationStatus::Succeeded,
        requested_by: by,
        requested_at: at,
        completed_at: Some(at),
    });
}

/// Rule: operations change only subscribed subscriptions.
fn ensure_subscribed(s: &Subscription) -> Result<(), Rejection> {
    match s.status {
        Status::Subscribed => Ok(()),
        Status::PendingFulfillment => Err(Rejection::NotSubscribed("pending fulfillment")),
        Status::Suspended => crate::rules::ensure_not_suspended(s),
        Status::Unsubscribed => Err(Rejection::Unsubscribed),
        Status::Expired => Err(Rejection::Expired),
    }
}

/// Rule: an operation completes once, and cannot succeed after a newer one succeeded.
fn check_completion(s: &Subscription, operation_id: Uuid, outcome: OperationOutcome) -> Result<(), Rejection> {
    let index = s.operations.iter().position(|o| o.id == operation_id).ok_or(Rejection::OperationNotFound)?;
    let operation = &s.operations[index];
    if operation.status != OperationStatus::InProgress {
        return Err(Rejection::OperationAlreadyCompleted { status: operation.status });
    }
    if outcome == OperationOutcome::Succeeded {
        ensure_subscribed(s)?;
        if let Some(newer) = s.operations[index + 1..].iter().find(|o| o.status == OperationStatus::Succeeded) {
            return Err(Rejection::NewerOperationCompleted { newer: newer.id });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Plan, Term};
    use crate::command::Command;
    use crate::decide::decide;
    use crate::event::Cancellation;
    use crate::fold::fold;
    use crate::test_support::*;

    fn gold() -> Plan {
        Plan {
            id: "gold".into(),
            min_quantity: 5,
            max_quantity: 50,
            terms: vec![Term::P1M],
            metering_dimensions: vec![],
        }
    }

    fn active(quantity: u32) -> Subscription {
        let s = after(purchased(quantity), Event::LicensesAssigned { assigned_count: quantity });
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
        assert_eq!(b.kind, BillingEventKind::QuantityChanged { previous_quantity: 5, quantity: 9, refundable: false });
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
