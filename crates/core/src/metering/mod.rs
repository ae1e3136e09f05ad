//! Metered billing: usage a publisher reports per custom dimension of the plan (the
//! Marketplace Metering Service API), on top of the flat fee. Both halves live here, as for
//! operations and the lifecycle: what `decide` answers to a report and what `apply` does with
//! the recorded [`Event::UsageReported`].
//!
//! The marketplace's rules: usage is reported against an active (subscribed) subscription, for
//! the plan it holds now and a dimension that plan configures; the quantity is above zero
//! (decimals allowed); `effectiveStartTime` is not in the future, at most 24 hours old and not
//! before the subscription became active (billing started); and
//! at most one report is accepted per subscription, dimension and hour (UTC): a second one is a
//! duplicate, answered with the accepted one. The hour rule is decided against the stream's
//! state, so the log's optimistic concurrency turns racing or retried reports into one fact.
//!
//! The state keeps what the rules need and no more: the reports of the last
//! [`RECENT_USAGE_HOURS`] hours (nothing older can be reported again, so nothing older can
//! collide) and each dimension's total for the current term, for the partner's view.

mod quantity;

pub use quantity::UsageQuantity;

use crate::billing::{BillingEvent, BillingEventKind};
use crate::catalog::Plan;
use crate::event::{Event, SubscriptionId};
use crate::fold::Effect;
use crate::rejection::Rejection;
use crate::rules::invalid;
use crate::subscription::{Status, Subscription};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// How late usage may be reported (the marketplace's 24 hours).
pub const USAGE_REPORTING_WINDOW_HOURS: i64 = 24;

/// How long the state keeps accepted reports: twice the reporting window, so a report the
/// window still admits always finds the one it would duplicate, measured from the recording
/// time of the newest report whatever the publisher's clock.
pub const RECENT_USAGE_HOURS: i64 = 2 * USAGE_REPORTING_WINDOW_HOURS;

/// Namespace of usage event ids (UUID v5). Never change it: a retried report must get the id
/// its first acceptance got.
const USAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x9d3e_52a1_07c4_4b8f_b1e6_3a5f_c2d8_6e17);

/// A usage report as the publisher sent it, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Dimension id.
    pub dimension: String,
    /// Units consumed.
    pub quantity: UsageQuantity,
    /// When the usage happened (its hour is what the duplicate rule counts).
    pub effective_start_time: DateTime<Utc>,
    /// The plan the publisher believes the subscription holds.
    pub plan_id: String,
}

/// A report the marketplace accepted, as the Metering API answers it (and answers it again to a
/// duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedUsage {
    /// Deterministic id of the accepted report ([`usage_event_id`]).
    pub usage_event_id: Uuid,
    /// Dimension id.
    pub dimension: String,
    /// Units consumed.
    pub quantity: UsageQuantity,
    /// When the usage happened, as reported.
    pub effective_start_time: DateTime<Utc>,
    /// Plan the usage was reported for.
    pub plan_id: String,
    /// When `fulfillment` recorded it (the Metering API's `messageTime`).
    pub message_time: DateTime<Utc>,
}

impl AcceptedUsage {
    /// The hour the report counts for.
    pub fn hour(&self) -> DateTime<Utc> {
        usage_hour(self.effective_start_time)
    }
}

/// Metered usage in a subscription's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeteredUsage {
    /// The term the totals belong to.
    pub term_number: u32,
    /// Units per dimension reported for hours inside that term.
    pub this_term: BTreeMap<String, UsageQuantity>,
    /// Reports accepted in the last [`RECENT_USAGE_HOURS`] hours, oldest first.
    pub recent: Vec<AcceptedUsage>,
}

impl MeteredUsage {
    /// Whether no usage was ever reported (the state then leaves the field out, so states
    /// without usage keep the JSON they always had).
    pub fn is_empty(&self) -> bool {
        self.term_number == 0 && self.this_term.is_empty() && self.recent.is_empty()
    }

    /// The accepted report for `dimension` in the hour of `at`, if any.
    pub fn accepted_in_hour(&self, dimension: &str, at: DateTime<Utc>) -> Option<&AcceptedUsage> {
        let hour = usage_hour(at);
        self.recent.iter().find(|u| u.dimension == dimension && u.hour() == hour)
    }
}

/// The start of the UTC hour `at` falls in.
pub fn usage_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).unwrap_or(at)
}

/// The id of the usage event for `dimension` in the hour of `at` on subscription `id`: at most
/// one is ever accepted, so a retry of the accepted report is answered with the same id.
pub fn usage_event_id(id: SubscriptionId, dimension: &str, at: DateTime<Utc>) -> Uuid {
    let hour = usage_hour(at).to_rfc3339();
    Uuid::new_v5(&USAGE_ID_NAMESPACE, format!("{id}/{dimension}/{hour}").as_bytes())
}

/// Decides a usage report at `now` against `plan` (the subscription's catalog plan, looked up by
/// the caller): the rules in this module's order, so each report gets the first reason it fails.
pub(crate) fn decide_usage(
    s: &Subscription,
    report: &UsageReport,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if s.status != Status::Subscribed {
        return Err(Rejection::NotSubscribed(s.status.partner_center_name()));
    }
    if report.plan_id != s.purchase.plan_id {
        return Err(Rejection::UsagePlanMismatch {
            current: s.purchase.plan_id.clone(),
            reported: report.plan_id.clone(),
        });
    }
    if plan.metering_dimension(&report.dimension).is_none() {
        let configured: Vec<&str> = plan.metering_dimensions.iter().map(|d| d.id.as_str()).collect();
        return Err(Rejection::UnknownDimension {
            dimension: report.dimension.clone(),
            plan_id: plan.id.clone(),
            configured: configured.join(", "),
        });
    }
    if !report.quantity.is_positive() {
        return Err(invalid("quantity", format!("must be above 0, got {}", report.quantity)));
    }
    if report.effective_start_time > now {
        return Err(invalid("effectiveStartTime", format!("{} is in the future", report.effective_start_time)));
    }
    let earliest = now - Duration::hours(USAGE_REPORTING_WINDOW_HOURS);
    if report.effective_start_time < earliest {
        return Err(Rejection::UsageExpired { effective_start_time: report.effective_start_time, earliest });
    }
    if let Some(active_since) = s.billing_started_at.filter(|started| report.effective_start_time < *started) {
        return Err(Rejection::UsageBeforeActivation {
            effective_start_time: report.effective_start_time,
            active_since,
        });
    }
    if let Some(accepted) = s.metered_usage.accepted_in_hour(&report.dimension, report.effective_start_time) {
        return Err(Rejection::DuplicateUsage(Box::new(accepted.clone())));
    }
    Ok(vec![Event::UsageReported {
        usage_event_id: usage_event_id(s.id, &report.dimension, report.effective_start_time),
        dimension: report.dimension.clone(),
        quantity: report.quantity,
        effective_start_time: report.effective_start_time,
        plan_id: report.plan_id.clone(),
    }])
}

/// Applies [`Event::UsageReported`] recorded at `at`: re-checks the rules that can race (active,
/// one per dimension and hour), keeps the report, adds it to the term's totals and bills it.
pub(crate) fn record_usage(
    s: &mut Subscription,
    usage: AcceptedUsage,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Effect, Rejection> {
    if s.status != Status::Subscribed {
        return Err(Rejection::NotSubscribed(s.status.partner_center_name()));
    }
    if let Some(accepted) = s.metered_usage.accepted_in_hour(&usage.dimension, usage.effective_start_time) {
        return Err(Rejection::DuplicateUsage(Box::new(accepted.clone())));
    }
    let term = s.current_term;
    let metered = &mut s.metered_usage;
    let oldest_kept = at - Duration::hours(RECENT_USAGE_HOURS);
    metered.recent.retain(|u| u.message_time >= oldest_kept);
    let term_number = term.map_or(0, |t| t.number);
    if metered.term_number != term_number {
        metered.term_number = term_number;
        metered.this_term.clear();
    }
    if term.is_none_or(|t| usage.effective_start_time >= t.start_date) {
        let total = metered.this_term.entry(usage.dimension.clone()).or_insert(UsageQuantity::ZERO);
        *total = total.checked_add(usage.quantity).unwrap_or(*total);
    }
    let kind = BillingEventKind::Usage {
        usage_event_id: usage.usage_event_id,
        dimension: usage.dimension.clone(),
        quantity: usage.quantity,
        hour: usage.hour(),
        effective_start_time: usage.effective_start_time,
    };
    metered.recent.push(usage);
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

#[cfg(test)]
mod tests;
