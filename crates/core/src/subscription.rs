//! The folded state of one subscription: what the read models store and what `decide` checks
//! commands against.

use crate::event::{Cancellation, OperationAction, Purchase, SourceKind, SubscriptionId};
use crate::metering::{MeteredUsage, UsageQuantity};
use crate::policy::LicensesRequired;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Lifecycle status, following the SaaS API's `saasSubscriptionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Bought, waiting for the publisher to assign licenses and confirm setup ("Action needed"
    /// for the partner; `PendingFulfillmentStart` in the SaaS API).
    PendingFulfillment,
    /// Billing is active.
    Subscribed,
    /// Suspended by the billing system (a failed payment): nothing is billed, no quantity or
    /// plan change is accepted, until it is reinstated or the grace period ends.
    Suspended,
    /// Cancelled; terminal.
    Unsubscribed,
    /// The last term ended with auto-renew off; terminal.
    Expired,
}

impl Status {
    /// The Partner Center spelling (`pending`, `active`, `suspended`, `deleted`, `expired`).
    pub fn partner_center_name(self) -> &'static str {
        match self {
            Status::PendingFulfillment => "pending",
            Status::Subscribed => "active",
            Status::Suspended => "suspended",
            Status::Unsubscribed => "deleted",
            Status::Expired => "expired",
        }
    }

    /// The SaaS Fulfillment API spelling (`saasSubscriptionStatus`): an expired subscription
    /// is `Unsubscribed` there, as the marketplace reports it.
    pub fn saas_name(self) -> &'static str {
        match self {
            Status::PendingFulfillment => "PendingFulfillmentStart",
            Status::Subscribed => "Subscribed",
            Status::Suspended => "Suspended",
            Status::Unsubscribed | Status::Expired => "Unsubscribed",
        }
    }

    /// Whether nothing changes the subscription any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Unsubscribed | Status::Expired)
    }
}

/// One commitment term: its number (1 for the first) and when it starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TermPeriod {
    /// 1 for the first term, 2 after the first renewal, ...
    pub number: u32,
    /// When it started.
    pub start_date: DateTime<Utc>,
    /// When it ends (renews or expires).
    pub end_date: DateTime<Utc>,
}

/// Why and until when a subscription is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// The billing system's reason (`paymentFailed`, ...).
    pub reason: String,
    /// When it was suspended.
    pub suspended_at: DateTime<Utc>,
    /// When the system cancels it if it is still suspended.
    pub grace_until: DateTime<Utc>,
}

/// Where a SaaS API operation stands (the spec's `SaaSOperation.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationStatus {
    /// Requested, waiting for the publisher's outcome.
    InProgress,
    /// Done; the change took effect.
    Succeeded,
    /// Refused; nothing changed.
    Failed,
}

/// A SaaS API operation on the subscription, as the publisher sees it in `GET .../operations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Operation id.
    pub id: Uuid,
    /// What it changes.
    pub action: OperationAction,
    /// Plan after the change.
    pub plan_id: String,
    /// Quantity after the change.
    pub quantity: u32,
    /// Where it stands.
    pub status: OperationStatus,
    /// Who asked for it.
    pub requested_by: SourceKind,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When it ended, if it has.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A subscription as the fold sees it after some prefix of its event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription id.
    pub id: SubscriptionId,
    /// What was bought, as it stands now (plan, quantity, auto-renew, nickname and reseller
    /// follow later changes). Flattened: the stored state and every view read these fields at
    /// the top level, in the order they always had.
    #[serde(flatten)]
    pub purchase: Purchase,
    /// Lifecycle status.
    pub status: Status,
    /// Licenses the publisher reported assigned, once it has.
    pub licenses_assigned: Option<u32>,
    /// Whether the publisher confirmed account setup.
    pub setup_confirmed: bool,
    /// When it was bought.
    pub purchased_at: DateTime<Utc>,
    /// End of the refundable cancellation window.
    pub cancellation_allowed_until: DateTime<Utc>,
    /// When billing started; set exactly once.
    pub billing_started_at: Option<DateTime<Utc>>,
    /// When it was cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// How it was cancelled, if it was.
    pub cancellation: Option<Cancellation>,
    /// SaaS API operations, oldest first.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The term billed now; set when billing starts, advanced by each renewal.
    #[serde(default)]
    pub current_term: Option<TermPeriod>,
    /// When the system cancels the subscription if it is still pending.
    #[serde(default)]
    pub activation_deadline: Option<DateTime<Utc>>,
    /// How many licenses must be assigned before billing starts (recorded at purchase; a state
    /// stored before the rule existed folded its purchase under the old rule, `any`).
    #[serde(default = "LicensesRequired::before_the_rule")]
    pub licenses_required: LicensesRequired,
    /// Length of the refundable cancellation window, in seconds, as recorded at purchase; each
    /// renewal opens a window of the same length.
    #[serde(default)]
    pub cancellation_window_seconds: i64,
    /// The suspension in force, while suspended (kept when a suspended subscription is
    /// cancelled, so its history says so).
    #[serde(default)]
    pub suspension: Option<Suspension>,
    /// When the last term ended without renewal, if it did.
    #[serde(default)]
    pub expired_at: Option<DateTime<Utc>>,
    /// Metered usage: the recent hours with a report (for the one-per-hour rule) and the term's
    /// totals. Left
    /// out of the stored JSON until the first report, so states without usage keep their bytes.
    #[serde(default, skip_serializing_if = "MeteredUsage::is_empty")]
    pub metered_usage: MeteredUsage,
    /// Number of events applied; the concurrency token behind the partner API's etag.
    pub version: u64,
    /// When the last applied event happened.
    pub updated_at: DateTime<Utc>,
    /// Every event id this state has seen (applied or rejected), so a redelivered event is a
    /// no-op. A subscription has tens of events over its life, so this stays small.
    pub seen_event_ids: BTreeSet<Uuid>,
}

impl Subscription {
    /// Whether billing is running (started and not stopped).
    pub fn is_billing(&self) -> bool {
        self.billing_started_at.is_some() && self.status == Status::Subscribed
    }

    /// Whether the partner still has something to do at the publisher's site.
    pub fn action_needed(&self) -> bool {
        self.status == Status::PendingFulfillment
    }

    /// The suspension in force: `Some` only while suspended (the field keeps the last one after
    /// a suspended subscription is cancelled, for its history).
    pub fn suspension_in_force(&self) -> Option<&Suspension> {
        self.suspension.as_ref().filter(|_| self.status == Status::Suspended)
    }

    /// Units reported per dimension for the current term (empty before the first report of
    /// the term).
    pub fn usage_this_term(&self) -> BTreeMap<&str, UsageQuantity> {
        let term_number = self.current_term.map_or(0, |t| t.number);
        if self.metered_usage.term_number != term_number {
            return BTreeMap::new();
        }
        self.metered_usage.this_term.iter().map(|(d, q)| (d.as_str(), *q)).collect()
    }

    /// An operation by id.
    pub fn operation(&self, id: Uuid) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// Whether a partner cancelling at `now` is inside the refundable window.
    pub fn within_cancellation_window(&self, now: DateTime<Utc>) -> bool {
        now <= self.cancellation_allowed_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::purchased;

    /// The stored state is this JSON text; fingerprints hash it and `verify` compares stores
    /// written before and after any release, so its keys keep their order.
    #[test]
    fn state_json_keeps_its_top_level_keys_in_order() {
        let json = serde_json::to_string(&purchased(5)).unwrap();
        let keys = [
            "id",
            "orderId",
            "lineItemNumber",
            "customerId",
            "partnerId",
            "publisherId",
            "offerId",
            "planId",
            "quantity",
            "term",
            "billingCycle",
            "autoRenew",
            "friendlyName",
            "indirectResellerMpnId",
            "authorizationCode",
            "status",
            "licensesAssigned",
            "setupConfirmed",
            "purchasedAt",
            "cancellationAllowedUntil",
            "billingStartedAt",
            "cancelledAt",
            "cancellation",
            "operations",
            "currentTerm",
            "activationDeadline",
            "licensesRequired",
            "cancellationWindowSeconds",
            "suspension",
            "expiredAt",
            "version",
            "updatedAt",
            "seenEventIds",
        ];
        let at: Vec<usize> =
            keys.iter().map(|k| json.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {json}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(object.len(), keys.len(), "{json}");
    }

    #[test]
    fn partner_center_status_names() {
        assert_eq!(Status::PendingFulfillment.partner_center_name(), "pending");
        assert_eq!(Status::Subscribed.partner_center_name(), "active");
        assert_eq!(Status::Unsubscribed.partner_center_name(), "deleted");
        assert_eq!(Status::Suspended.partner_center_name(), "suspended");
        assert_eq!(Status::Expired.partner_center_name(), "expired");
    }

    #[test]
    fn saas_status_names() {
        assert_eq!(Status::PendingFulfillment.saas_name(), "PendingFulfillmentStart");
        assert_eq!(Status::Suspended.saas_name(), "Suspended");
        assert_eq!(Status::Expired.saas_name(), "Unsubscribed");
        assert!(Status::Expired.is_terminal() && Status::Unsubscribed.is_terminal());
        assert!(!Status::Suspended.is_terminal());
    }
}
