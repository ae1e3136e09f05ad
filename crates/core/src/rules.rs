//! The rules more than one place checks. `decide` checks them all before an event is written;
//! the fold checks again the ones an event can race past (two requests decided against the
//! same state), so the log can hold such an event but the state never breaks the rule.

use crate::catalog::Plan;
use crate::rejection::Rejection;
use crate::subscription::{Status, Subscription};

/// Longest nickname accepted; Partner Center shows it in tables.
const MAX_FRIENDLY_NAME_CHARS: usize = 128;

/// A field-level rejection (422 at the HTTP edge).
pub(crate) fn invalid(field: &'static str, message: String) -> Rejection {
    Rejection::InvalidField { field, message }
}

/// Rule: an unsubscribed or expired subscription is terminal. The fold re-checks it.
pub(crate) fn ensure_not_terminal(s: &Subscription) -> Result<(), Rejection> {
    match s.status {
        Status::Unsubscribed => Err(Rejection::Unsubscribed),
        Status::Expired => Err(Rejection::Expired),
        _ => Ok(()),
    }
}

/// Rule: a suspended subscription keeps its quantity and plan until it is reinstated.
pub(crate) fn ensure_not_suspended(s: &Subscription) -> Result<(), Rejection> {
    match s.suspension_in_force() {
        Some(suspension) => Err(Rejection::Suspended { reason: suspension.reason.clone() }),
        None => Ok(()),
    }
}

/// Rule: setup must be confirmed once, for the subscription's plan and quantity. The fold
/// re-checks it.
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

/// Rule: a publisher cannot assign more licenses than were bought. The fold re-checks it.
pub(crate) fn check_licenses(s: &Subscription, assigned: u32) -> Result<(), Rejection> {
    if assigned > s.purchase.quantity {
        return Err(Rejection::LicensesExceedQuantity { assigned, quantity: s.purchase.quantity });
    }
    Ok(())
}

/// Rule: a quantity lies within its plan's bounds.
pub(crate) fn check_quantity(plan: &Plan, quantity: u32) -> Result<(), Rejection> {
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
pub(crate) fn check_friendly_name(name: &str) -> Result<String, Rejection> {
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
pub(crate) fn check_mpn_id(field: &'static str, mpn: &str) -> Result<(), Rejection> {
    if !(6..=10).contains(&mpn.len()) || !mpn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, format!("{mpn:?} is not an MPN ID (6 to 10 digits)")));
    }
    Ok(())
}
