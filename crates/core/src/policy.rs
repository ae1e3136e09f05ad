//! Commercial policy values that rules depend on but that are not facts about one subscription.
//! They are decided when a command is decided and recorded on the event it causes (the window
//! end, the activation deadline and the license rule on the purchase, the grace end on a
//! suspension), so changing the policy later never changes the history of subscriptions decided
//! under the old one.

use crate::catalog::Term;
use chrono::Duration;
use serde::{Deserialize, Serialize};

/// How many of the bought licenses the publisher must report assigned before billing starts
/// (`policy.licenses_required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LicensesRequired {
    /// Every bought license ("the ISV publisher has successfully assigned appropriate
    /// licenses"); the default for purchases decided under this rule.
    #[default]
    All,
    /// Any one license, the rule before it was configurable; subscriptions bought before the
    /// rule was recorded keep it.
    Any,
}

impl LicensesRequired {
    /// The rule of purchases recorded before it was configurable.
    pub fn before_the_rule() -> Self {
        LicensesRequired::Any
    }

    /// Whether `assigned` licenses of `quantity` bought satisfy the rule.
    pub fn satisfied_by(self, assigned: u32, quantity: u32) -> bool {
        match self {
            LicensesRequired::All => assigned >= quantity,
            LicensesRequired::Any => assigned >= 1,
        }
    }

    /// The configuration spelling (`all`, `any`).
    pub fn as_str(self) -> &'static str {
        match self {
            LicensesRequired::All => "all",
            LicensesRequired::Any => "any",
        }
    }
}

/// Marketplace policy in force when a command is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long after purchase (and after each renewal) a partner may cancel with a full
    /// refund (72 hours for SaaS today, per the new-commerce cancellation policy), unless the
    /// term has its own in [`Policy::cancellation_window_by_term`].
    pub cancellation_window: Duration,
    /// Per-term overrides of the window (`[policy.cancellation_window_hours_by_term]`), indexed
    /// as [`Term::ALL`].
    pub cancellation_window_by_term: [Option<Duration>; Term::ALL.len()],
    /// How long a subscription may wait for the publisher to assign licenses and confirm setup
    /// before the system cancels it (`policy.activation_deadline_days`, 30 by default).
    pub activation_deadline: Duration,
    /// How long a suspended subscription waits for reinstatement before the system cancels it
    /// (`policy.suspension_grace_days`, 30 by default).
    pub suspension_grace: Duration,
    /// The license rule for starting billing (`policy.licenses_required`).
    pub licenses_required: LicensesRequired,
}

impl Policy {
    /// The refundable cancellation window of a term of length `term`.
    pub fn cancellation_window_for(&self, term: Term) -> Duration {
        self.cancellation_window_by_term[term.index()].unwrap_or(self.cancellation_window)
    }

    /// Gives terms of length `term` a window of their own.
    pub fn set_cancellation_window(&mut self, term: Term, window: Duration) {
        self.cancellation_window_by_term[term.index()] = Some(window);
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cancellation_window: Duration::hours(72),
            cancellation_window_by_term: [None; Term::ALL.len()],
            activation_deadline: Duration::days(30),
            suspension_grace: Duration::days(30),
            licenses_required: LicensesRequired::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_marketplace() {
        let policy = Policy::default();
        assert_eq!(policy.cancellation_window, Duration::hours(72));
        assert_eq!(policy.activation_deadline, Duration::days(30));
        assert_eq!(policy.suspension_grace, Duration::days(30));
        assert_eq!(policy.licenses_required, LicensesRequired::All);
    }

    #[test]
    fn a_term_override_replaces_the_default_window_for_that_term_only() {
        let mut policy = Policy::default();
        policy.set_cancellation_window(Term::P1Y, Duration::hours(168));
        assert_eq!(policy.cancellation_window_for(Term::P1Y), Duration::hours(168));
        assert_eq!(policy.cancellation_window_for(Term::P1M), Duration::hours(72));
    }

    #[test]
    fn all_needs_every_license_and_any_needs_one() {
        assert!(!LicensesRequired::All.satisfied_by(4, 5));
        assert!(LicensesRequired::All.satisfied_by(5, 5));
        assert!(LicensesRequired::Any.satisfied_by(1, 5));
        assert!(!LicensesRequired::Any.satisfied_by(0, 5));
    }
}
