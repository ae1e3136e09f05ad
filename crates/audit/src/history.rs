//! One subscription's timeline for `fulfillment history`: every event, who reported it, and
//! what it did. The fold is core's [`explain`]; this module only renders its rows and table.

use fulfillment_core::{explain, Event, Explained, OperationOutcome, Outcome};
use fulfillment_log::StoredEvent;
use serde::Serialize;
use std::fmt::Write;

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineRow {
    /// Log position.
    pub position: u64,
    /// Place in the subscription's stream.
    pub stream_version: u64,
    /// When it happened (per its source).
    pub occurred_at: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// Event type.
    pub event_type: String,
    /// Schema version it was written with.
    pub version: u32,
    /// `partner`, `publisher` or `system`.
    pub source: String,
    /// Partner or publisher id.
    pub actor: String,
    /// The event's key fields, in words.
    pub details: String,
    /// `applied`, `duplicate`, or `rejected: <reason>`.
    pub outcome: String,
    /// Status after the event (`pending`, `active`, `deleted`).
    pub status_after: Option<String>,
    /// Billing events it caused (`billing.started <id>`).
    pub billing: Vec<String>,
}

fn details(event: &Event) -> String {
    match event {
        Event::SubscriptionPurchased { purchase: p, .. } => format!(
            "{}/{} x{} {} {}, customer {}, partner {}{}",
            p.offer_id,
            p.plan_id,
            p.quantity,
            p.term,
            p.billing_cycle,
            p.customer_id,
            p.partner_id,
            p.indirect_reseller_mpn_id.as_ref().map(|m| format!(", reseller {m}")).unwrap_or_default()
        ),
        Event::LicensesAssigned { assigned_count } => format!("{assigned_count} licenses assigned"),
        Event::SetupConfirmed { plan_id, quantity } => format!("setup confirmed for {plan_id} x{quantity}"),
        Event::QuantityChanged { previous_quantity, quantity } => format!("quantity {previous_quantity} -> {quantity}"),
        Event::NicknameChanged { friendly_name } => format!("nickname {friendly_name:?}"),
        Event::AutoRenewChanged { auto_renew } => format!("auto-renew {}", if *auto_renew { "on" } else { "off" }),
        Event::IndirectResellerSet { mpn_id } => format!("indirect reseller {mpn_id}"),
        Event::Cancelled(c) => {
            format!(
                "cancelled by {}, {}refundable: {}",
                c.by.as_str(),
                if c.refundable { "" } else { "not " },
                c.reason
            )
        }
        Event::OperationRequested { operation_id, action, plan_id, quantity } => {
            format!("{action:?} requested to {plan_id} x{quantity} (operation {operation_id})")
        }
        Event::OperationCompleted { operation_id, outcome } => format!(
            "operation {operation_id} {}",
            if *outcome == OperationOutcome::Succeeded { "succeeded" } else { "failed" }
        ),
        Event::Renewed { term_number, term_start, term_end, .. } => format!(
            "renewed: term {term_number}, {} \u{2192} {}, auto-renew on",
            term_start.format("%Y-%m-%d"),
            term_end.format("%Y-%m-%d")
        ),
        Event::Expired { term_number } => format!("expired: term {term_number} ended, auto-renew off"),
        Event::Suspended { reason, grace_until } => {
            format!("suspended: {reason}, cancelled unless reinstated by {}", grace_until.format("%Y-%m-%d"))
        }
        Event::Reinstated {} => "reinstated: billing resumes".into(),
        Event::UsageReported { dimension, quantity, effective_start_time, plan_id, usage_event_id } => format!(
            "usage: {quantity} {dimension} on {plan_id} in the hour of {} (usage event {usage_event_id})",
            effective_start_time.format("%Y-%m-%d %H:00Z")
        ),
    }
}

/// Folds `events` (one subscription's stream) and describes each.
pub fn timeline(events: &[StoredEvent]) -> Vec<TimelineRow> {
    explain(events, |e| &e.envelope).entries.into_iter().map(row).collect()
}

/// One explained event as a row.
fn row(explained: Explained<&StoredEvent>) -> TimelineRow {
    let (stored, env) = (explained.event, &explained.event.envelope);
    TimelineRow {
        position: stored.position,
        stream_version: stored.stream_version,
        occurred_at: env.occurred_at.to_rfc3339(),
        recorded_at: env.recorded_at.to_rfc3339(),
        event_type: env.event_type().to_owned(),
        version: env.schema_version,
        source: env.source.kind.as_str().to_owned(),
        actor: env.source.actor_id.clone(),
        details: details(&env.event),
        outcome: match explained.outcome {
            Outcome::Applied => "applied".to_owned(),
            Outcome::Rejected { reason, .. } => format!("rejected: {reason}"),
            Outcome::Duplicate => "duplicate".to_owned(),
        },
        status_after: explained.status_after.map(|s| s.partner_center_name().to_owned()),
        billing: explained.billing.iter().map(|b| format!("{} {}", b.kind.type_name(), b.id)).collect(),
    }
}

/// The timeline as a text table.
pub fn render_table(rows: &[TimelineRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8} {:>3}  {:<25} {:<38} {:<22} {:<8} details",
        "position", "v#", "recorded at", "event", "source", "status"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>8} {:>3}  {:<25} {:<38} {:<22} {:<8} {}",
            r.position,
            r.stream_version,
            r.recorded_at,
            format!("{} v{}", r.event_type, r.version),
            format!("{}:{}", r.source, r.actor),
            r.status_after.as_deref().unwrap_or("-"),
            r.details
        );
        if r.outcome != "applied" {
            let _ = writeln!(out, "{:>14}-> {}", "", r.outcome);
        }
        for b in &r.billing {
            let _ = writeln!(out, "{:>14}-> {b}", "");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_events_are_explained_in_words() {
        let renewed = Event::Renewed {
            term_number: 2,
            term_start: "2027-01-05T10:00:00Z".parse().unwrap(),
            term_end: "2027-02-05T10:00:00Z".parse().unwrap(),
            cancellation_allowed_until: "2027-01-08T10:00:00Z".parse().unwrap(),
        };
        assert_eq!(details(&renewed), "renewed: term 2, 2027-01-05 \u{2192} 2027-02-05, auto-renew on");
        assert_eq!(details(&Event::Expired { term_number: 3 }), "expired: term 3 ended, auto-renew off");
        let suspended =
            Event::Suspended { reason: "paymentFailed".into(), grace_until: "2027-02-04T00:00:00Z".parse().unwrap() };
        assert_eq!(details(&suspended), "suspended: paymentFailed, cancelled unless reinstated by 2027-02-04");
        assert_eq!(details(&Event::Reinstated {}), "reinstated: billing resumes");
    }
}
