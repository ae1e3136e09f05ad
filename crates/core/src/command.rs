//! Commands: what a caller (partner, publisher, or `fulfillment` itself) asks to happen to one
//! subscription. The adapters build them from requests, with catalog lookups already done (the
//! catalog is configuration, not state); [`decide`](crate::decide()) checks them and answers
//! with events or a [`Rejection`](crate::Rejection).

use crate::catalog::Plan;
use crate::event::{OperationOutcome, Purchase, SourceKind};
use crate::lifecycle::Deadline;
use crate::metering::UsageReport;
use crate::policy::Policy;
use chrono::Duration;
use uuid::Uuid;

/// A purchase as the partner asked for it, with what only the command needs: the catalog plan
/// it refers to, already looked up by the caller (the catalog is configuration, not state), and
/// the policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// What is bought; its `plan_id` names [`PurchaseOrder::plan`].
    pub purchase: Purchase,
    /// The plan from the catalog, for the quantity bounds and the terms it is sold for.
    pub plan: Plan,
    /// Policy in force at purchase.
    pub policy: Policy,
}

/// What a caller asks to happen to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Buy a new subscription.
    Purchase(Box<PurchaseOrder>),
    /// Publisher: licenses are assigned.
    AssignLicenses {
        /// Licenses assigned.
        assigned_count: u32,
    },
    /// Publisher: account setup is done (SaaS API `activate`).
    ConfirmSetup {
        /// Plan set up.
        plan_id: String,
        /// Quantity set up.
        quantity: u32,
    },
    /// Change the license count; `plan` is the subscription's catalog plan.
    ChangeQuantity {
        /// New count.
        quantity: u32,
        /// Catalog plan, for the bounds.
        plan: Plan,
    },
    /// Rename.
    ChangeNickname {
        /// New nickname.
        friendly_name: String,
    },
    /// Turn auto-renew on or off.
    SetAutoRenew {
        /// Desired setting.
        auto_renew: bool,
    },
    /// Record the indirect reseller of record.
    SetIndirectReseller {
        /// MPN ID.
        mpn_id: String,
    },
    /// Cancel.
    Cancel {
        /// Why.
        reason: String,
        /// Who asks; partners are bound by the cancellation window, publishers are not.
        by: SourceKind,
        /// The SaaS API operation recording it (publisher `DELETE`), if any.
        operation_id: Option<Uuid>,
    },
    /// Publisher (SaaS API `PATCH`): ask to change plan or quantity; it takes effect when the
    /// operation succeeds.
    RequestChange {
        /// Id for the new operation.
        operation_id: Uuid,
        /// The change.
        change: RequestedChange,
    },
    /// Publisher (SaaS API operation `PATCH`): report an operation's outcome.
    CompleteOperation {
        /// The operation.
        operation_id: Uuid,
        /// Succeeded or failed.
        outcome: OperationOutcome,
    },
    /// System (the scheduler): act on a deadline that fell due, if it still is the
    /// subscription's next one ([`Subscription::next_deadline`](crate::Subscription::next_deadline)).
    ReachDeadline(Deadline),
    /// Billing system: suspend an active subscription (a failed payment, say).
    Suspend {
        /// Why (`paymentFailed`, ...).
        reason: String,
        /// How long it may stay suspended before the system cancels it (policy in force).
        grace: Duration,
    },
    /// Billing system: lift a suspension.
    Reinstate,
    /// Publisher (Metering Service API): usage of a metering dimension; `plan` is the
    /// subscription's catalog plan, for its dimensions.
    ReportUsage {
        /// The report.
        report: UsageReport,
        /// Catalog plan.
        plan: Plan,
    },
}

/// A plan or quantity change, with the catalog plan that bounds the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedChange {
    /// Move to `plan` (from the catalog), keeping the quantity.
    Plan(Plan),
    /// Change the quantity within `plan` (the current plan, from the catalog).
    Quantity {
        /// New quantity.
        quantity: u32,
        /// Current plan.
        plan: Plan,
    },
}
