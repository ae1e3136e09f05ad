//! Metered billing: usage a publisher reports per custom dimension of the plan (the
//! Marketplace Metering Service API), on top of the flat fee. Both halves live here, as for
//! operations and the lifecycle: what `decide` answers to a report and what `apply` does with
//! the recorded [`Event::UsageReported`].
//!
//! The marketplace's rules: usage is reported against an active (subscribed) subscription, for
//! the plan it holds now and a dimension that plan configures; the quantity is above zero
//! (decimals allowed); `effectiveStartTime` is not in the future, at most 24 hours old and not
//! in an hour before the one the subscription became active (billing started) in; and
//! at most one report is accepted per subscription, dimension and hour (UTC): a second one is a
//! duplicate, answered with the accepted one. The hour rule is decided against the stream's
//! state, so the log's optimistic concurrency turns racing or retried reports into one fact.
//!
//! The state keeps what the rules need and no more, because a subscription reporting hourly
//! gets thousands of usage events a year and its state is read and written with each: per
//! dimension the hours of the last [`RECENT_USAGE_HOURS`] hours that have a report (nothing
//! older can be reported again, so nothing older can collide), and each dimension's total for
//! the current term, for the partner's view. For the same reason an accepted usage event's id
//! is not kept among the state's seen event ids: the hour rule already makes a repeated usage
//! event a no-op (its usage event id is derived from the dimension and the hour), and the fold
//! refuses one older than the hours it keeps. (The id of one refused for the subscription's
//! status is kept, [`remember_refused`], so a copy of it later in the log stays refused.) The accepted report a duplicate is answered with is read
//! from the stream by the adapter, by its derived id.

mod quantity;

pub use quantity::UsageQuantity;

use crate::billing::{BillingEvent, BillingEventKind};
use crate::catalog::{MeteringDimension, Plan};
use crate::event::{Event, EventEnvelope, SubscriptionId};
use crate::fold::Effect;
use crate::rejection::Rejection;
use crate::rules::invalid;
use crate::subscription::{Status, Subscription};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The most units one report may carry: far above any hour's real usage, and low enough that a
/// term's totals can never leave the exact decimal range.
pub const MAX_USAGE_QUANTITY: i64 = 1_000_000_000_000;

/// How late usage may be reported (the marketplace's 24 hours).
pub const USAGE_REPORTING_WINDOW_HOURS: i64 = 24;

/// How long the state keeps the hours with a report: twice the reporting window before the
/// newest event applied, so a report the window still admits always finds the one it would
/// duplicate, even decided by an instance whose clock is up to a day behind.
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
/// duplicate): a recorded [`Event::UsageReported`] with the time it was recorded.
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

    /// The accepted report `envelope` records, if it records one.
    pub fn recorded(envelope: &EventEnvelope) -> Option<AcceptedUsage> {
        match &envelope.event {
            Event::UsageReported { usage_event_id, dimension, quantity, effective_start_time, plan_id } => {
                Some(AcceptedUsage {
                    usage_event_id: *usage_event_id,
                    dimension: dimension.clone(),
                    quantity: *quantity,
                    effective_start_time: *effective_start_time,
                    plan_id: plan_id.clone(),
                    message_time: envelope.recorded_at,
                })
            }
            _ => None,
        }
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
    /// Per dimension, the hours with an accepted report among the last [`RECENT_USAGE_HOURS`].
    pub recent_hours: BTreeMap<String, BTreeSet<DateTime<Utc>>>,
}

impl MeteredUsage {
    /// Whether no usage was ever reported (the state then leaves the field out, so states
    /// without usage keep the JSON they always had).
    pub fn is_empty(&self) -> bool {
        self.term_number == 0 && self.this_term.is_empty() && self.recent_hours.is_empty()
    }

    /// Whether a report for `dimension` in the hour of `at` was accepted.
    pub fn has_report(&self, dimension: &str, at: DateTime<Utc>) -> bool {
        self.recent_hours.get(dimension).is_some_and(|hours| hours.contains(&usage_hour(at)))
    }

    /// Forgets the hours before `oldest_kept`.
    fn forget_before(&mut self, oldest_kept: DateTime<Utc>) {
        for hours in self.recent_hours.values_mut() {
            if hours.first().is_some_and(|oldest| *oldest < oldest_kept) {
                *hours = hours.split_off(&oldest_kept);
            }
        }
        self.recent_hours.retain(|_, hours| !hours.is_empty());
    }
}

/// One dimension's units in the current term, as partners are shown them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimensionUsage<'a> {
    /// Dimension id.
    pub id: &'a str,
    /// The plan's dimension (names and unit); `None` for one usage was reported for that the
    /// catalog no longer lists.
    pub dimension: Option<&'a MeteringDimension>,
    /// Units reported for the current term.
    pub quantity: UsageQuantity,
}

impl Subscription {
    /// The current term's usage of each of `dimensions` (the plan's, zero where none was
    /// reported yet), then of any other dimension usage was reported for.
    pub fn usage_by_dimension<'a>(&'a self, dimensions: &'a [MeteringDimension]) -> Vec<DimensionUsage<'a>> {
        let mut totals = self.usage_this_term();
        let mut usage: Vec<DimensionUsage<'a>> = dimensions
            .iter()
            .map(|d| DimensionUsage {
                id: &d.id,
                dimension: Some(d),
                quantity: totals.remove(d.id.as_str()).unwrap_or(UsageQuantity::ZERO),
            })
            .collect();
        usage.extend(totals.into_iter().map(|(id, quantity)| DimensionUsage { id, dimension: None, quantity }));
        usage
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
    if report.quantity > UsageQuantity::from(MAX_USAGE_QUANTITY) {
        return Err(invalid("quantity", format!("must be at most {MAX_USAGE_QUANTITY}, got {}", report.quantity)));
    }
    if report.effective_start_time > now {
        return Err(invalid("effectiveStartTime", format!("{} is in the future", report.effective_start_time)));
    }
    let earliest = now - Duration::hours(USAGE_REPORTING_WINDOW_HOURS);
    if report.effective_start_time < earliest {
        return Err(Rejection::UsageExpired { effective_start_time: report.effective_start_time, earliest });
    }
    // By hour, as usage is counted: an hour's usage is commonly reported at the hour's start,
    // and the hour the subscription became active in is one it was active in.
    let before_activation = |started: &DateTime<Utc>| usage_hour(report.effective_start_time) < usage_hour(*started);
    if let Some(active_since) = s.billing_started_at.filter(before_activation) {
        return Err(Rejection::UsageBeforeActivation {
            effective_start_time: report.effective_start_time,
            active_since,
        });
    }
    let usage_event_id = usage_event_id(s.id, &report.dimension, report.effective_start_time);
    if s.metered_usage.has_report(&report.dimension, report.effective_start_time) {
        return Err(duplicate(usage_event_id, &report.dimension, report.effective_start_time));
    }
    Ok(vec![Event::UsageReported {
        usage_event_id,
        dimension: report.dimension.clone(),
        quantity: report.quantity,
        effective_start_time: report.effective_start_time,
        plan_id: report.plan_id.clone(),
    }])
}

/// Whether the fold keeps the id of a usage event it refused with `rejection`: yes when the
/// refusal depends on the subscription's status, which may change (a copy of the event later in
/// the log must stay refused); no for a duplicate or an hour too old, which the hour rule keeps
/// refusing by itself.
pub(crate) fn remember_refused(rejection: &Rejection) -> bool {
    !matches!(rejection, Rejection::DuplicateUsage { .. } | Rejection::UsageExpired { .. })
}

/// The rejection of a second report for `dimension` in the hour of `at`.
fn duplicate(usage_event_id: Uuid, dimension: &str, at: DateTime<Utc>) -> Rejection {
    Rejection::DuplicateUsage { usage_event_id, dimension: dimension.to_owned(), hour: usage_hour(at) }
}

/// Applies [`Event::UsageReported`] (`usage`) to `s`, whose last event occurred at `last`:
/// re-checks the rules that can race (active, one per dimension and hour, not older than the
/// hours the state keeps), keeps the hour, adds the units to the term's totals and bills them.
pub(crate) fn record_usage(
    s: &mut Subscription,
    usage: &AcceptedUsage,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Effect, Rejection> {
    if s.status != Status::Subscribed {
        return Err(Rejection::NotSubscribed(s.status.partner_center_name()));
    }
    let oldest_kept = usage_hour(s.updated_at.max(at) - Duration::hours(RECENT_USAGE_HOURS));
    if usage.hour() < oldest_kept {
        return Err(Rejection::UsageExpired {
            effective_start_time: usage.effective_start_time,
            earliest: oldest_kept,
        });
    }
    if s.metered_usage.has_report(&usage.dimension, usage.effective_start_time) {
        return Err(duplicate(usage.usage_event_id, &usage.dimension, usage.effective_start_time));
    }
    let term = s.current_term;
    let metered = &mut s.metered_usage;
    metered.forget_before(oldest_kept);
    metered.recent_hours.entry(usage.dimension.clone()).or_default().insert(usage.hour());
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
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

#[cfg(test)]
mod tests;
