//! A subscription's history as its page shows it: each event in words, who did it, whether it
//! was applied, and the billing it caused.
//!
//! In: the timeline the partner API reads from the log
//! ([`crate::partner::subscriptions::timeline`]). Out: the page's timeline section.

use super::layout::date_time;
use crate::partner::subscriptions::{Outcome, TimelineEntry};
use fulfillment_core::{Event, OperationOutcome, SourceKind};
use maud::{html, Markup, PreEscaped};

fn describe(entry: &TimelineEntry) -> String {
    match &entry.event.envelope.event {
        Event::SubscriptionPurchased { purchase: p, .. } => format!(
            "Purchased {} licenses of {} ({}), term {}, billed {}",
            p.quantity, p.offer_id, p.plan_id, p.term, p.billing_cycle
        ),
        Event::LicensesAssigned { assigned_count } => format!("Publisher assigned {assigned_count} licenses"),
        Event::SetupConfirmed { plan_id, quantity } => {
            format!("Publisher confirmed setup of plan {plan_id} with {quantity} licenses")
        }
        Event::QuantityChanged { previous_quantity, quantity } => {
            format!("Licenses changed from {previous_quantity} to {quantity}")
        }
        Event::NicknameChanged { friendly_name } => format!("Nickname changed to \u{201c}{friendly_name}\u{201d}"),
        Event::AutoRenewChanged { auto_renew: true } => "Auto-renew turned on".into(),
        Event::AutoRenewChanged { auto_renew: false } => "Auto-renew turned off".into(),
        Event::IndirectResellerSet { mpn_id } => format!("Indirect reseller MPN ID set to {mpn_id}"),
        Event::Cancelled(c) => format!(
            "Cancelled: {} ({})",
            c.reason,
            if c.refundable { "inside the cancellation window, refundable" } else { "not refundable" }
        ),
        Event::OperationRequested { action, plan_id, quantity, .. } => {
            format!("Publisher requested {action:?} to plan {plan_id} with {quantity} licenses")
        }
        Event::OperationCompleted { outcome: OperationOutcome::Succeeded, .. } => {
            "Publisher completed the requested change".into()
        }
        Event::OperationCompleted { .. } => "Publisher reported the requested change failed".into(),
        Event::Renewed { term_number, term_start, term_end, .. } => format!(
            "Renewed: term {term_number}, {} \u{2192} {}, auto-renew on",
            term_start.format("%Y-%m-%d"),
            term_end.format("%Y-%m-%d")
        ),
        Event::Expired { term_number } => format!("Expired at the end of term {term_number}, auto-renew off"),
        Event::Suspended { reason, grace_until } => {
            format!("Suspended ({reason}); cancelled if not reinstated by {}", grace_until.format("%Y-%m-%d"))
        }
        Event::Reinstated {} => "Reinstated; billing resumed".into(),
        Event::UsageReported { dimension, quantity, effective_start_time, .. } => format!(
            "Publisher reported usage: {quantity} units of {dimension} for the hour from {}",
            effective_start_time.format("%Y-%m-%d %H:00 UTC")
        ),
    }
}

fn by_whom(kind: SourceKind, actor: &str) -> String {
    match kind {
        SourceKind::Partner => format!("partner {actor}"),
        SourceKind::Publisher => format!("publisher {actor}"),
        SourceKind::System => "the system".into(),
    }
}

fn billing_words(kind: &str) -> &'static str {
    match kind {
        "billing.started" => "billing started",
        "billing.quantity_changed" => "billing quantity changed",
        "billing.plan_changed" => "billing plan changed",
        "billing.stopped" => "billing stopped",
        "billing.renewed" => "new term billed",
        "billing.suspended" => "billing suspended",
        "billing.resumed" => "billing resumed",
        _ => "billing changed",
    }
}

/// The timeline section of a subscription's page.
pub(super) fn section(timeline: &[TimelineEntry]) -> Markup {
    html! {
        section aria-labelledby="timeline-heading" {
            h2 id="timeline-heading" { "Timeline" }
            ol.timeline {
                @for entry in timeline {
                    @let e = &entry.event.envelope;
                    li {
                        time datetime=(e.occurred_at.to_rfc3339()) { (date_time(&e.occurred_at)) }
                        ": " (describe(entry)) ", by " (by_whom(e.source.kind, &e.source.actor_id)) "."
                        @match &entry.outcome {
                            Outcome::Rejected { reason, .. } => { " " strong { "Not applied: " (reason) "." } }
                            Outcome::Duplicate => { " (a repeat; ignored)" }
                            Outcome::Applied => {}
                        }
                        @for (_, kind) in &entry.billing { " " strong { (PreEscaped("&rarr; ")) (billing_words(kind)) "." } }
                    }
                }
            }
        }
    }
}
