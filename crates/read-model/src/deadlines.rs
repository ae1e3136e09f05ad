//! What the scheduler reads: the subscriptions whose next deadline (a term's end, an activation
//! deadline, the end of a suspension's grace period) has passed, earliest first. The
//! `next_deadline_at` column is core's `Subscription::next_deadline`, written with every folded
//! state, and indexed, so a round reads only what is due.
//!
//! In: "now" and a batch size. Out: subscription ids with the instant their deadline fell due.
//! The read model only points the scheduler at work; what is due is decided again against the
//! log's own state before anything is appended.

use crate::ReadModelError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::SubscriptionId;

/// A subscription whose next deadline fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueDeadline {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// When its next deadline fell due.
    pub due_at: DateTime<Utc>,
}

/// The scheduler's view of the read models.
#[async_trait]
pub trait DueDeadlines: Send + Sync + 'static {
    /// Up to `limit` subscriptions whose next deadline is at or before `now`, in due order
    /// (ties by subscription id), after `after` in that order when given (the last of the
    /// previous page), so one sweep pages through everything due once.
    async fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        after: Option<DueDeadline>,
        limit: u32,
    ) -> Result<Vec<DueDeadline>, ReadModelError>;

    /// How many live subscriptions (pending, active, suspended) have no `next_deadline_at`:
    /// rows folded by a release before deadlines existed, which the scheduler cannot see until
    /// the read models are rebuilt.
    async fn subscriptions_without_deadlines(&self) -> Result<u64, ReadModelError>;
}
