//! `decide`: checks a command against the current state and says which events it causes.
//! Every business rule a caller can break lives here, each with a [`Rejection`] that tells the
//! caller what to fix. A command that changes nothing decides no events (so retries are safe).

use crate::catalog::Plan;
use crate::event::{Cancellation, Event, OperationAction, OperationOutcome, Purchase, SourceKind};
use crate::policy::Policy;
use crate::subscription::{OperationStatus, Status, Subscription};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A purchase as the partner asked for it, with what only the command needs: the catalog plan
/// it refers to, already looked up by the caller (the catalog is configuration, not state), and
/// the policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// What is bought; its `plan_id` names [`PurchaseOrder::plan`].
    pub purchase: Purchase,
    /// The plan from the catalog, for the quantity bounds and the terms it is sold for.
    pub plan: Plan,
    /// Policy in force at purchase.
    pub policy: Policy,
}

/// What a caller asks to happen to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Buy a new subscription.
    Purchase(Box<PurchaseOrder>),
    /// Publisher: licenses are assigned.
    AssignLicenses {
        /// Licenses assigned.
        assigned_count: u32,
    },
    /// Publisher: account setup is done (SaaS API `activate`).
    ConfirmSetup {
        /// Plan set up.
        plan_id: String,
        /// Quantity set up.
        quantity: u32,
    },
    /// Change the license count; `plan` is the subscription's catalog plan.
    ChangeQuantity {
        /// New count.
        quantity: u32,
        /// Catalog plan, for the bounds.
        plan: Plan,
    },
    /// Rename.
    ChangeNickname {
        /// New nickname.
        friendly_name: String,
    },
    /// Turn auto-renew on or off.
    SetAutoRenew {
        /// Desired setting.
        auto_renew: bool,
    },
    /// Record the indirect reseller of record.
    SetIndirectReseller {
        /// MPN ID.
        mpn_id: String,
    },
    /// Cancel.
    Cancel {
        /// Why.
        reason: String,
        /// Who asks; partners are bound by the cancellation window, publishers are not.
        by: SourceKind,
        /// The SaaS API operation recording it (publisher `DELETE`), if any.
        operation_id: Option<Uuid>,
    },
    /// Publisher (SaaS API `PATCH`): ask to change plan or quantity; it takes effect when the
    /// operation succeeds.
    RequestChange {
        /// Id for the new operation.
        operation_id: Uuid,
        /// The change.
        change: RequestedChange,
    },
    /// Publisher (SaaS API operation `PATCH`): report an operation's outcome.
    CompleteOperation {
        /// The operation.
        operation_id: Uuid,
        /// Succeeded or failed.
        outcome: OperationOutcome,
    },
}

/// A plan or quantity change, with the catalog plan that bounds the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedChange {
    /// Move to `plan` (from the catalog), keeping the quantity.
    Plan(Plan),
    /// Change the quantity within `plan` (the current plan, from the catalog).
    Quantity {
        /// New quantity.
        quantity: u32,
        /// Current plan.
        plan: Plan,
    },
}

/// Why a command (or a racing event) was refused. Each variant is one rule; the HTTP layer maps
/// [`Rejection::is_invalid_input`] to 422, [`Rejection::NotFound`] to 404 and the rest to 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such subscription.
    #[error("subscription not found")]
    NotFound,
    /// A purchase for an id that already exists.
    #[error("subscription already exists")]
    AlreadyPurchased,
    /// The subscription is cancelled; nothing changes it any more.
    #[error("subscription is cancelled (unsubscribed); it cannot be changed")]
    Unsubscribed,
    /// A field value breaks a rule that does not depend on state.
    #[error("{field}: {message}")]
    InvalidField {
        /// Wire name of the field.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Setup confirmed for another plan than the one bought.
    #[error("setup confirmed for plan {reported:?} but the subscription is on plan {current:?}")]
    PlanMismatch {
        /// Plan of the subscription.
        current: String,
        /// Plan reported.
        reported: String,
    },
    /// Setup confirmed for another quantity than the subscription has.
    #[error("setup confirmed for quantity {reported} but the subscription has quantity {current}")]
    QuantityMismatch {
        /// Quantity of the subscription.
        current: u32,
        /// Quantity reported.
        reported: u32,
    },
    /// Setup was already confirmed with other values.
    #[error("setup was already confirmed for plan {plan_id:?} with quantity {quantity}")]
    SetupAlreadyConfirmed {
        /// Plan confirmed earlier.
        plan_id: String,
        /// Quantity confirmed earlier.
        quantity: u32,
    },
    /// More licenses assigned than bought.
    #[error("{assigned} licenses assigned but the subscription has only {quantity}")]
    LicensesExceedQuantity {
        /// Reported count.
        assigned: u32,
        /// Subscription quantity.
        quantity: u32,
    },
    /// Only a subscribed (active) subscription can be changed through an operation.
    #[error("subscription is not subscribed (active); it is {0}")]
    NotSubscribed(&'static str),
    /// A change to the value the subscription already has.
    #[error("{field} is already {value}")]
    SameValue {
        /// Wire name of the field.
        field: &'static str,
        /// The current value.
        value: String,
    },
    /// No such operation on this subscription.
    #[error("operation not found")]
    OperationNotFound,
    /// The operation already ended the other way.
    #[error("operation already completed as {status:?}")]
    OperationAlreadyCompleted {
        /// How it ended.
        status: OperationStatus,
    },
    /// A later operation already took effect; this older one can no longer succeed.
    #[error("a newer update ({newer}) already completed")]
    NewerOperationCompleted {
        /// The newer operation.
        newer: Uuid,
    },
    /// A partner tried to cancel after the refundable window.
    #[error("the cancellation window closed at {closed_at}")]
    CancellationWindowClosed {
        /// End of the window.
        closed_at: DateTime<Utc>,
    },
}

impl Rejection {
    /// True for rejections caused by a bad value rather than by the subscription's state.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Rejection::InvalidField { .. })
    }

    /// A stable machine-readable code, for problem documents and stored rejections.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotFound => "not-found",
            Rejection::AlreadyPurchased => "already-purchased",
            Rejection::Unsubscribed => "unsubscribed",
            Rejection::InvalidField { .. } => "invalid-field",
            Rejection::PlanMismatch { .. } => "plan-mismatch",
            Rejection::QuantityMismatch { .. } => "quantity-mismatch",
            Rejection::SetupAlreadyConfirmed { .. } => "setup-already-confirmed",
            Rejection::LicensesExceedQuantity { .. } => "licenses-exceed-quantity",
            Rejection::CancellationWindowClosed { .. } => "cancellation-window-closed",
            Rejection::NotSubscribed(_) => "not-subscribed",
            Rejection::SameValue { .. } => "same-value",
            Rejection::OperationNotFound => "operation-not-found",
            Rejection::OperationAlreadyCompleted { .. } => "operation-already-completed",
            Rejection::NewerOperationCompleted { .. } => "newer-operation-completed",
        }
    }
}

/// Longest nickname accepted; Partner Center shows it in tables.
const MAX_FRIENDLY_NAME_CHARS: usize = 128;

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
        Command::RequestChange { operation_id, change } => {
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
            Ok(vec![Event::OperationRequested { operation_id: *operation_id, action, plan_id, quantity }])
        }
        Command::CompleteOperation { operation_id, outcome } => {
            let operation = s.operation(*operation_id).ok_or(Rejection::OperationNotFound)?;
            let repeated = matches!(
                (operation.status, outcome),
                (OperationStatus::Succeeded, OperationOutcome::Succeeded)
                    | (OperationStatus::Failed, OperationOutcome::Failed)
            );
            if repeated {
                return Ok(vec![]);
            }
            check_completion(s, *operation_id, *outcome)?;
            Ok(vec![Event::OperationCompleted { operation_id: *operation_id, outcome: *outcome }])
        }
    }
}

/// Rule: operations change only subscribed subscriptions. Shared with the fold.
pub(crate) fn ensure_subscribed(s: &Subscription) -> Result<(), Rejection> {
    match s.status {
        Status::Subscribed => Ok(()),
        Status::PendingFulfillment => Err(Rejection::NotSubscribed("pending fulfillment")),
        Status::Unsubscribed => Err(Rejection::Unsubscribed),
    }
}

/// Rule: an operation completes once, and cannot succeed after a newer one succeeded. Shared
/// with the fold.
pub(crate) fn check_completion(
    s: &Subscription,
    operation_id: Uuid,
    outcome: OperationOutcome,
) -> Result<(), Rejection> {
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
        cancellation_allowed_until: now + order.policy.cancellation_window,
    }])
}

fn invalid(field: &'static str, message: String) -> Rejection {
    Rejection::InvalidField { field, message }
}

/// Rule: an unsubscribed subscription is terminal. Shared with the fold.
pub(crate) fn ensure_not_terminal(s: &Subscription) -> Result<(), Rejection> {
    if s.status == Status::Unsubscribed {
        return Err(Rejection::Unsubscribed);
    }
    Ok(())
}

/// Rule: setup must be confirmed once, for the subscription's plan and quantity. Shared with
/// the fold, which re-checks it for events that raced past `decide`.
pub(crate) fn check_setup(s: &Subscription, plan_id: &str, quantity: u32) -> Result<(), Rejection> {
    if s.setup_confirmed {
        return Err(Rejection::SetupAlreadyConfirmed {
            plan_id: s.purchase.plan_id.clone(),
            quantity: s.purchase.quantity,
        });
    }
    if plan_id != s.purchase.plan_id {
        return Err(Rejection::PlanMismatch { current: s.purchase.plan_id.clone(), reported: plan_id.to_owned() });
    }
    if quantity != s.purchase.quantity {
        return Err(Rejection::QuantityMismatch { current: s.purchase.quantity, reported: quantity });
    }
    Ok(())
}

/// Rule: a publisher cannot assign more licenses than were bought. Shared with the fold.
pub(crate) fn check_licenses(s: &Subscription, assigned: u32) -> Result<(), Rejection> {
    if assigned > s.purchase.quantity {
        return Err(Rejection::LicensesExceedQuantity { assigned, quantity: s.purchase.quantity });
    }
    Ok(())
}

/// Rule: a quantity lies within its plan's bounds.
fn check_quantity(plan: &Plan, quantity: u32) -> Result<(), Rejection> {
    if !plan.allows_quantity(quantity) {
        return Err(invalid(
            "quantity",
            format!(
                "must be between {} and {} licenses for plan {} (asked for {quantity})",
                plan.min_quantity, plan.max_quantity, plan.id
            ),
        ));
    }
    Ok(())
}

/// Rule: a nickname is 1 to 128 printable characters after trimming.
fn check_friendly_name(name: &str) -> Result<String, Rejection> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(invalid("friendlyName", "must not be empty".into()));
    }
    if trimmed.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        return Err(invalid("friendlyName", format!("must be at most {MAX_FRIENDLY_NAME_CHARS} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("friendlyName", "must not contain control characters".into()));
    }
    Ok(trimmed.to_owned())
}

/// Rule: an MPN ID (Microsoft Partner Network id, now "Partner ID") is 6 to 10 digits.
fn check_mpn_id(field: &'static str, mpn: &str) -> Result<(), Rejection> {
    if !(6..=10).contains(&mpn.len()) || !mpn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, format!("{mpn:?} is not an MPN ID (6 to 10 digits)")));
    }
    Ok(())
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
        let Event::SubscriptionPurchased { purchase, cancellation_allowed_until } = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(*cancellation_allowed_until, t0() + Duration::hours(72));
        assert_eq!(purchase.quantity, 5);
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
