//! Commercial policy values that rules depend on but that are not facts about one subscription.
//! They are decided at purchase time and recorded on the purchase event, so changing the policy
//! later never changes the history of subscriptions bought under the old one.

use chrono::Duration;

/// Marketplace policy in force when a command is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long after purchase a partner may cancel with a full refund (72 hours for SaaS
    /// today, per the new-commerce cancellation policy).
    pub cancellation_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { cancellation_window: Duration::hours(72) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cancellation_window_is_72_hours() {
        assert_eq!(Policy::default().cancellation_window, Duration::hours(72));
    }
}
