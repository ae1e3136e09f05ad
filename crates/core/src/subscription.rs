//! The folded state of one subscription: what the read models store and what `decide` checks
//! commands against.

use crate::event::{Cancellation, OperationAction, Purchase, SourceKind, SubscriptionId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
    /// Cancelled; terminal.
    Unsubscribed,
}

impl Status {
    /// The Partner Center spelling (`pending`, `active`, `deleted`).
    pub fn partner_center_name(self) -> &'static str {
        match self {
            Status::PendingFulfillment => "pending",
            Status::Subscribed => "active",
            Status::Unsubscribed => "deleted",
        }
    }
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
    }
}
