//! Billing events: what billing systems consume. They are effects of the fold, never stored
//! as facts of their own, so they can always be re-derived from the log; their ids are
//! deterministic (a UUID v5 of the causing event and the kind) so a consumer can dedupe every
//! redelivery and every replay.

use crate::catalog::{BillingCycle, Term};
use crate::event::{SourceKind, SubscriptionId};
use crate::metering::UsageQuantity;
use crate::subscription::Subscription;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for billing event ids (UUID v5). Never change it: consumers dedupe on these ids.
const BILLING_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_8d4a_4f6b_9e21_5a7c_0d3e_8f41);

/// What changed for billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum BillingEventKind {
    /// Charges start for `quantity` licenses.
    #[serde(rename = "billing.started", rename_all = "camelCase")]
    Started {
        /// Licenses billed from now on.
        quantity: u32,
    },
    /// The billed license count changed.
    #[serde(rename = "billing.quantity_changed", rename_all = "camelCase")]
    QuantityChanged {
        /// Count billed before.
        previous_quantity: u32,
        /// Count billed from now on.
        quantity: u32,
        /// True for a decrease inside the term's refundable cancellation window: the licenses
        /// removed are refunded. Absent (false) in billing events derived before it existed.
        #[serde(default)]
        refundable: bool,
    },
    /// The billed plan changed (a publisher plan change that succeeded).
    #[serde(rename = "billing.plan_changed", rename_all = "camelCase")]
    PlanChanged {
        /// Plan billed before.
        previous_plan_id: String,
        /// Plan billed from now on.
        plan_id: String,
    },
    /// Charges stop; the subscription was cancelled, or it expired at the end of its term
    /// (cancelled by `system`, reason `expired`).
    #[serde(rename = "billing.stopped", rename_all = "camelCase")]
    Stopped {
        /// Whether charges so far are refunded (cancelled inside the window).
        refundable: bool,
        /// Who cancelled.
        cancelled_by: SourceKind,
        /// Why.
        reason: String,
    },
    /// A new term began (auto-renew): charge it.
    #[serde(rename = "billing.renewed", rename_all = "camelCase")]
    Renewed {
        /// Number of the new term (2 for the first renewal).
        term_number: u32,
        /// Start of the new term.
        term_start: DateTime<Utc>,
        /// End of the new term.
        term_end: DateTime<Utc>,
        /// Licenses billed for the new term.
        quantity: u32,
    },
    /// Charges pause: the billing system suspended the subscription.
    #[serde(rename = "billing.suspended", rename_all = "camelCase")]
    Suspended {
        /// Why it was suspended.
        reason: String,
    },
    /// Charges resume: the subscription was reinstated.
    #[serde(rename = "billing.resumed", rename_all = "camelCase")]
    Resumed {
        /// Licenses billed from now on.
        quantity: u32,
    },
    /// Metered usage to charge on top of the flat fee: `quantity` units of `dimension` in the
    /// hour starting at `hour` (plan in `planId`).
    #[serde(rename = "billing.usage", rename_all = "camelCase")]
    Usage {
        /// The Metering API's id of the accepted usage event.
        usage_event_id: Uuid,
        /// Dimension id.
        dimension: String,
        /// Units consumed.
        quantity: UsageQuantity,
        /// Start of the UTC hour the usage counts for.
        hour: DateTime<Utc>,
        /// When the usage happened, as the publisher reported it.
        effective_start_time: DateTime<Utc>,
    },
}

impl BillingEventKind {
    /// The stable wire name (`billing.started`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            BillingEventKind::Started { .. } => "billing.started",
            BillingEventKind::QuantityChanged { .. } => "billing.quantity_changed",
            BillingEventKind::PlanChanged { .. } => "billing.plan_changed",
            BillingEventKind::Stopped { .. } => "billing.stopped",
            BillingEventKind::Renewed { .. } => "billing.renewed",
            BillingEventKind::Suspended { .. } => "billing.suspended",
            BillingEventKind::Resumed { .. } => "billing.resumed",
            BillingEventKind::Usage { .. } => "billing.usage",
        }
    }
}

/// One billing event with everything a billing system needs to charge without reading our
/// tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingEvent {
    /// Deterministic id: the same causing event always yields the same billing event id.
    pub id: Uuid,
    /// What happened, with its data.
    #[serde(flatten)]
    pub kind: BillingEventKind,
    /// Subscription billed.
    pub subscription_id: SubscriptionId,
    /// Customer billed.
    pub customer_id: String,
    /// CSP partner that bought it.
    pub partner_id: String,
    /// Indirect reseller of record, if any.
    pub indirect_reseller_mpn_id: Option<String>,
    /// Publisher paid.
    pub publisher_id: String,
    /// Offer.
    pub offer_id: String,
    /// Plan.
    pub plan_id: String,
    /// Term.
    pub term: Term,
    /// Billing cycle.
    pub billing_cycle: BillingCycle,
    /// When the change takes effect (the causing fact's time).
    pub effective_at: DateTime<Utc>,
    /// The log event that caused this billing event.
    pub caused_by_event_id: Uuid,
}

impl BillingEvent {
    /// Builds the billing event for `kind`, caused by `event_id`, about `subscription` as it is
    /// after that event.
    pub fn new(kind: BillingEventKind, subscription: &Subscription, event_id: Uuid, at: DateTime<Utc>) -> Self {
        let id = Uuid::new_v5(&BILLING_ID_NAMESPACE, format!("{event_id}/{}", kind.type_name()).as_bytes());
        BillingEvent {
            id,
            kind,
            subscription_id: subscription.id,
            customer_id: subscription.purchase.customer_id.clone(),
            partner_id: subscription.purchase.partner_id.clone(),
            indirect_reseller_mpn_id: subscription.purchase.indirect_reseller_mpn_id.clone(),
            publisher_id: subscription.purchase.publisher_id.clone(),
            offer_id: subscription.purchase.offer_id.clone(),
            plan_id: subscription.purchase.plan_id.clone(),
            term: subscription.purchase.term,
            billing_cycle: subscription.purchase.billing_cycle,
            effective_at: at,
            caused_by_event_id: event_id,
        }
    }
}
