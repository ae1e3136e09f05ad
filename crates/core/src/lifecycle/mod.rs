//! A subscription's life in time: terms that renew or expire, the activation deadline of a
//! subscription the publisher never fulfils, and suspension by the billing system with its
//! grace period. Both halves live here, as for operations: what `decide` answers and what
//! `apply` does with the events, so the rules of time read in one place.
//!
//! Time enters as data. [`Subscription::next_deadline`] computes the next deadline from the
//! state alone; a scheduler (an adapter, reading the wall clock) asks `decide` to reach it once
//! it is due, and the event it causes is recorded with `occurred_at` = the deadline and an id
//! derived from the deadline ([`Deadline::event_id`]), so two schedulers, a restart or a replay
//! can never record it twice, and the stream version decides races with partner and publisher
//! commands. The fold never reads a clock.

use crate::billing::{BillingEvent, BillingEventKind};
use crate::event::{Cancellation, Event, EventEnvelope, Source, SourceKind, SubscriptionId, EVENT_SCHEMA_VERSION};
use crate::fold::Effect;
use crate::rejection::Rejection;
use crate::subscription::{Status, Subscription, Suspension, TermPeriod};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Namespace of the ids of events caused by deadlines (UUID v5). Never change it: a scheduler
/// of another release must derive the same id for the same deadline.
const DEADLINE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x2f0c_71d4_93b8_4e0a_a5c6_1d7e_48b2_9f63);

/// Cancellation reason of a subscription still pending at its activation deadline.
pub const ACTIVATION_DEADLINE_REASON: &str = "activationDeadline";
/// Cancellation reason of a subscription still suspended at the end of its grace period.
pub const SUSPENSION_GRACE_EXPIRED_REASON: &str = "suspensionGraceExpired";
/// `billing.stopped` reason of a subscription whose last term ended.
pub const EXPIRED_REASON: &str = "expired";

/// The activation deadline of purchases recorded before it was part of the purchase event.
pub(crate) fn default_activation_deadline(purchased_at: DateTime<Utc>) -> DateTime<Utc> {
    purchased_at + Duration::days(30)
}

/// What happens when a deadline falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DeadlineKind {
    /// The term ends with auto-renew on: the next term begins.
    Renewal,
    /// The term ends with auto-renew off: the subscription expires.
    Expiry,
    /// Still pending: the system cancels it (`activationDeadline`).
    ActivationDeadline,
    /// Still suspended: the system cancels it (`suspensionGraceExpired`).
    SuspensionGraceExpired,
}

impl DeadlineKind {
    /// The camelCase spelling, for ids, logs and views.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::Renewal => "renewal",
            DeadlineKind::Expiry => "expiry",
            DeadlineKind::ActivationDeadline => "activationDeadline",
            DeadlineKind::SuspensionGraceExpired => "suspensionGraceExpired",
        }
    }
}

/// The next thing time does to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deadline {
    /// What happens.
    pub kind: DeadlineKind,
    /// When it falls due (the event it causes occurs at this instant).
    pub due_at: DateTime<Utc>,
    /// The term it belongs to (0 before billing started).
    pub term_number: u32,
}

impl Deadline {
    /// The id of the event this deadline causes on subscription `id`: the same deadline always
    /// yields the same id, whoever reaches it and however often.
    pub fn event_id(&self, id: SubscriptionId) -> Uuid {
        self.event_id_for_attempt(id, 0)
    }

    /// [`Deadline::event_id`] for attempt `attempt` (0 is the first): a retry after the log
    /// refused the first id as already used (a Kafka message voided after a failed commit keeps
    /// its id) derives the next one, still the same for every writer.
    pub fn event_id_for_attempt(&self, id: SubscriptionId, attempt: u32) -> Uuid {
        let mut name = format!("{id}/{}/{}/{}", self.kind.as_str(), self.term_number, self.due_at.timestamp_micros());
        if attempt > 0 {
            name.push_str(&format!("/{attempt}"));
        }
        Uuid::new_v5(&DEADLINE_ID_NAMESPACE, name.as_bytes())
    }
}

/// The actor id of the events deadlines cause (source kind `system`).
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// Most deadlines reached at once for one subscription (a monthly one catching up 20 years);
/// the rest fall due again at the next look.
pub const MAX_DEADLINES_AT_ONCE: usize = 256;

/// Every deadline of `state` due at `now`, reached in order, as they are recorded: the events
/// each causes (source `system`, actor [`SCHEDULER_ACTOR`], `occurred_at` = its deadline,
/// `recorded_at` = `now`, id from [`Deadline::event_id_for_attempt`]) and the state after them.
/// Nothing is due: no events, the state as it was. Both the scheduler and every write path use
/// this, so a command is never decided against a state whose deadline already passed.
pub fn reach_due_deadlines(
    mut state: Option<Subscription>,
    now: DateTime<Utc>,
    attempt: u32,
) -> (Option<Subscription>, Vec<EventEnvelope>) {
    let mut recorded = Vec::new();
    while recorded.len() < MAX_DEADLINES_AT_ONCE {
        let Some(s) = &state else { break };
        let Some(deadline) = s.next_deadline().filter(|d| d.due_at <= now) else { break };
        // Through `decide`, as every fact is: a deadline it refuses (none is, once due) records
        // nothing.
        let events = crate::decide::decide(Some(s), &crate::Command::ReachDeadline(deadline), now).unwrap_or_default();
        if events.is_empty() {
            break;
        }
        let id = s.id;
        for event in events {
            let envelope = EventEnvelope {
                event_id: deadline.event_id_for_attempt(id, attempt),
                subscription_id: id,
                schema_version: EVENT_SCHEMA_VERSION,
                source: Source { kind: SourceKind::System, actor_id: SCHEDULER_ACTOR.into() },
                occurred_at: deadline.due_at,
                recorded_at: now,
                event,
            };
            state = crate::fold::apply(state, &envelope).0;
            recorded.push(envelope);
        }
    }
    (state, recorded)
}

impl Subscription {
    /// The next deadline, computed from the state alone: the activation deadline while pending,
    /// the term's end while subscribed (renewal or expiry, by the auto-renew setting), the end of
    /// the grace period while suspended, or the term's end first if it comes first and auto-renew
    /// is off (it expires); none once ended. A suspended subscription does not renew: a term that
    /// ended meanwhile renews as soon as it is reinstated, on its original schedule (the new term
    /// starts where the last one ended: a suspension pauses charges, it does not move the term).
    pub fn next_deadline(&self) -> Option<Deadline> {
        let term_number = self.current_term.map_or(0, |t| t.number);
        let (kind, due_at) = match self.status {
            Status::PendingFulfillment => (
                DeadlineKind::ActivationDeadline,
                self.activation_deadline.unwrap_or_else(|| default_activation_deadline(self.purchased_at)),
            ),
            Status::Subscribed => {
                let term = self.current_term?;
                let kind = if self.purchase.auto_renew { DeadlineKind::Renewal } else { DeadlineKind::Expiry };
                (kind, term.end_date)
            }
            Status::Suspended => {
                let grace_until = self.suspension.as_ref()?.grace_until;
                match self.current_term {
                    // Without auto-renew the term still ends on its date: it expires.
                    Some(term) if !self.purchase.auto_renew && term.end_date < grace_until => {
                        (DeadlineKind::Expiry, term.end_date)
                    }
                    _ => (DeadlineKind::SuspensionGraceExpired, grace_until),
                }
            }
            Status::Unsubscribed | Status::Expired => return None,
        };
        Some(Deadline { kind, due_at, term_number })
    }

    /// The last instant of the current term's refundable window for a renewal starting at
    /// `term_start`.
    fn renewal_window_end(&self, term_start: DateTime<Utc>) -> DateTime<Utc> {
        term_start + Duration::seconds(self.cancellation_window_seconds)
    }
}

/// Decides [`Command::ReachDeadline`](crate::Command::ReachDeadline): the event `deadline`
/// causes, when it is still the subscription's next deadline and due at `now`; nothing
/// otherwise (another scheduler, or a partner or publisher command, got there first).
pub(crate) fn decide_deadline(s: &Subscription, deadline: &Deadline, now: DateTime<Utc>) -> Vec<Event> {
    if s.next_deadline().as_ref() != Some(deadline) || deadline.due_at > now {
        return vec![];
    }
    let system_cancel = |reason: &str| {
        Event::Cancelled(Cancellation {
            reason: reason.into(),
            by: SourceKind::System,
            refundable: false,
            operation_id: None,
        })
    };
    let event = match deadline.kind {
        DeadlineKind::ActivationDeadline => system_cancel(ACTIVATION_DEADLINE_REASON),
        DeadlineKind::SuspensionGraceExpired => system_cancel(SUSPENSION_GRACE_EXPIRED_REASON),
        DeadlineKind::Expiry => Event::Expired { term_number: deadline.term_number },
        DeadlineKind::Renewal => {
            let (Some(anchor), term_number) = (s.billing_started_at, deadline.term_number + 1) else {
                return vec![];
            };
            let Some(term_end) = s.purchase.term.end_of_term(anchor, term_number) else {
                return vec![];
            };
            Event::Renewed {
                term_number,
                term_start: deadline.due_at,
                term_end,
                cancellation_allowed_until: s.renewal_window_end(deadline.due_at),
            }
        }
    };
    vec![event]
}

/// Decides [`Command::Suspend`](crate::Command::Suspend): only an active subscription is
/// suspended (a retried request is answered from its idempotency record, not decided again).
pub(crate) fn decide_suspend(
    s: &Subscription,
    reason: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    match s.status {
        Status::Subscribed => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 128 || reason.chars().any(char::is_control) {
                return Err(crate::rules::invalid("reason", "must be 1 to 128 printable characters".into()));
            }
            Ok(vec![Event::Suspended { reason: reason.to_owned(), grace_until: now + grace }])
        }
        other => Err(Rejection::NotSubscribed(other.partner_center_name())),
    }
}

/// Decides [`Command::Reinstate`](crate::Command::Reinstate): only a suspended subscription is
/// reinstated.
pub(crate) fn decide_reinstate(s: &Subscription) -> Result<Vec<Event>, Rejection> {
    match s.status {
        Status::Suspended => Ok(vec![Event::Reinstated {}]),
        other => Err(Rejection::NotSuspended(other.partner_center_name())),
    }
}

/// Applies [`Event::Renewed`]: the next term of an active subscription, once.
pub(crate) fn renew(
    s: &mut Subscription,
    term: TermPeriod,
    cancellation_allowed_until: DateTime<Utc>,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Effect, Rejection> {
    check_term_transition(s, term.number.checked_sub(1).unwrap_or(u32::MAX), &[Status::Subscribed])?;
    s.current_term = Some(term);
    s.cancellation_allowed_until = cancellation_allowed_until;
    let kind = BillingEventKind::Renewed {
        term_number: term.number,
        term_start: term.start_date,
        term_end: term.end_date,
        quantity: s.purchase.quantity,
    };
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

/// Applies [`Event::Expired`]: an active or suspended subscription's last term ended; billing
/// stops for good.
pub(crate) fn expire(
    s: &mut Subscription,
    term_number: u32,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Effect, Rejection> {
    check_term_transition(s, term_number, &[Status::Subscribed, Status::Suspended])?;
    s.status = Status::Expired;
    s.expired_at = Some(at);
    let kind = BillingEventKind::Stopped {
        refundable: false,
        cancelled_by: SourceKind::System,
        reason: EXPIRED_REASON.into(),
    };
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

/// Rule: a term ends once, in one of the `allowed` statuses, and only the current one (a
/// renewal or expiry that raced another is refused by the fold).
fn check_term_transition(s: &Subscription, ending_term: u32, allowed: &[Status]) -> Result<(), Rejection> {
    if !allowed.contains(&s.status) {
        return Err(Rejection::NotSubscribed(s.status.partner_center_name()));
    }
    let current = s.current_term.map_or(0, |t| t.number);
    if current != ending_term {
        return Err(Rejection::TermMismatch { current, reported: ending_term });
    }
    Ok(())
}

/// Applies [`Event::Suspended`]: billing pauses.
pub(crate) fn suspend(
    s: &mut Subscription,
    reason: &str,
    grace_until: DateTime<Utc>,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Effect, Rejection> {
    if s.status != Status::Subscribed {
        return Err(Rejection::NotSubscribed(s.status.partner_center_name()));
    }
    s.status = Status::Suspended;
    s.suspension = Some(Suspension { reason: reason.to_owned(), suspended_at: at, grace_until });
    let kind = BillingEventKind::Suspended { reason: reason.to_owned() };
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

/// Applies [`Event::Reinstated`]: billing resumes.
pub(crate) fn reinstate(s: &mut Subscription, event_id: Uuid, at: DateTime<Utc>) -> Result<Effect, Rejection> {
    if s.status != Status::Suspended {
        return Err(Rejection::NotSuspended(s.status.partner_center_name()));
    }
    s.status = Status::Subscribed;
    s.suspension = None;
    let kind = BillingEventKind::Resumed { quantity: s.purchase.quantity };
    Ok(Effect::Billing(BillingEvent::new(kind, s, event_id, at)))
}

#[cfg(test)]
mod tests;
