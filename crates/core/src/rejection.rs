//! Rejections: why a command, or an event that raced past `decide`, breaks a rule. One variant
//! per rule, each saying what to fix; adapters map them to answers (422, 404, 409) and the fold
//! records them, with their stable [`Rejection::code`], for the audit trail.

use crate::subscription::OperationStatus;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Why a command (or a racing event) was refused. Each variant is one rule; the HTTP layer maps
/// [`Rejection::is_invalid_input`] to 422, [`Rejection::NotFound`] to 404 and the rest to 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such subscription.
    #[error("subscription not found")]
    NotFound,
    /// A purchase for an id that already exists.
    #[error("subscription already exists")]
    AlreadyPurchased,
    /// The subscription is cancelled; nothing changes it any more.
    #[error("subscription is cancelled (unsubscribed); it cannot be changed")]
    Unsubscribed,
    /// A field value breaks a rule that does not depend on state.
    #[error("{field}: {message}")]
    InvalidField {
        /// Wire name of the field.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Setup confirmed for another plan than the one bought.
    #[error("setup confirmed for plan {reported:?} but the subscription is on plan {current:?}")]
    PlanMismatch {
        /// Plan of the subscription.
        current: String,
        /// Plan reported.
        reported: String,
    },
    /// Setup confirmed for another quantity than the subscription has.
    #[error("setup confirmed for quantity {reported} but the subscription has quantity {current}")]
    QuantityMismatch {
        /// Quantity of the subscription.
        current: u32,
        /// Quantity reported.
        reported: u32,
    },
    /// Setup was already confirmed with other values.
    #[error("setup was already confirmed for plan {plan_id:?} with quantity {quantity}")]
    SetupAlreadyConfirmed {
        /// Plan confirmed earlier.
        plan_id: String,
        /// Quantity confirmed earlier.
        quantity: u32,
    },
    /// More licenses assigned than bought.
    #[error("{assigned} licenses assigned but the subscription has only {quantity}")]
    LicensesExceedQuantity {
        /// Reported count.
        assigned: u32,
        /// Subscription quantity.
        quantity: u32,
    },
    /// Only a subscribed (active) subscription can be changed through an operation.
    #[error("subscription is not subscribed (active); it is {0}")]
    NotSubscribed(&'static str),
    /// A change to the value the subscription already has.
    #[error("{field} is already {value}")]
    SameValue {
        /// Wire name of the field.
        field: &'static str,
        /// The current value.
        value: String,
    },
    /// No such operation on this subscription.
    #[error("operation not found")]
    OperationNotFound,
    /// The operation already ended the other way.
    #[error("operation already completed as {status:?}")]
    OperationAlreadyCompleted {
        /// How it ended.
        status: OperationStatus,
    },
    /// A later operation already took effect; this older one can no longer succeed.
    #[error("a newer update ({newer}) already completed")]
    NewerOperationCompleted {
        /// The newer operation.
        newer: Uuid,
    },
    /// The last term ended without renewal; nothing changes it any more.
    #[error("subscription expired at the end of its term; it cannot be changed")]
    Expired,
    /// The billing system suspended the subscription; quantity and plan stay as they are until
    /// it is reinstated.
    #[error("subscription is suspended ({reason}); quantity and plan cannot change until it is reinstated")]
    Suspended {
        /// The suspension's reason.
        reason: String,
    },
    /// Only a suspended subscription can be reinstated.
    #[error("subscription is not suspended; it is {0}")]
    NotSuspended(&'static str),
    /// A renewal or expiry for another term than the current one (it raced another).
    #[error("term {reported} cannot end: the current term is {current}")]
    TermMismatch {
        /// The current term's number.
        current: u32,
        /// The term the event ends.
        reported: u32,
    },
    /// A partner decrease below the licenses the publisher reported assigned.
    #[error("quantity {quantity} is below the {assigned} licenses the publisher has assigned; the publisher must first report fewer assigned")]
    QuantityBelowAssignedLicenses {
        /// Licenses assigned.
        assigned: u32,
        /// Quantity asked for.
        quantity: u32,
    },
    /// A partner tried to cancel after the refundable window.
    #[error("the cancellation window closed at {closed_at}")]
    CancellationWindowClosed {
        /// End of the window.
        closed_at: DateTime<Utc>,
    },
    /// Usage reported for another plan than the one the subscription holds.
    #[error("planId {reported:?} is not the subscription's plan; it holds {current:?}")]
    UsagePlanMismatch {
        /// Plan of the subscription.
        current: String,
        /// Plan reported.
        reported: String,
    },
    /// Usage reported for a dimension the plan does not configure.
    #[error("dimension {dimension:?} is not a metering dimension of plan {plan_id:?} (configured: {configured})")]
    UnknownDimension {
        /// Dimension reported.
        dimension: String,
        /// The subscription's plan.
        plan_id: String,
        /// The plan's dimensions, comma-separated (empty when it has none).
        configured: String,
    },
    /// Usage reported more than 24 hours after it happened.
    #[error(
        "effectiveStartTime {effective_start_time} is more than 24 hours ago; the earliest accepted now is {earliest}"
    )]
    UsageExpired {
        /// When the usage happened, as reported.
        effective_start_time: DateTime<Utc>,
        /// The earliest instant accepted now.
        earliest: DateTime<Utc>,
    },
    /// Usage reported for a time before the subscription became active.
    #[error("effectiveStartTime {effective_start_time} is before the subscription became active at {active_since}")]
    UsageBeforeActivation {
        /// When the usage happened, as reported.
        effective_start_time: DateTime<Utc>,
        /// When billing started.
        active_since: DateTime<Utc>,
    },
    /// Usage for a dimension and hour already reported and accepted.
    #[error("usage of dimension {dimension:?} for the hour starting {hour} was already accepted (usage event {usage_event_id})")]
    DuplicateUsage {
        /// The accepted report's usage event id (the adapter reads its details from the stream).
        usage_event_id: Uuid,
        /// Dimension.
        dimension: String,
        /// Start of the hour.
        hour: DateTime<Utc>,
    },
}

impl Rejection {
    /// True for rejections caused by a bad value rather than by the subscription's state.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Rejection::InvalidField { .. })
    }

    /// A stable machine-readable code, for problem documents and stored rejections.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotFound => "not-found",
            Rejection::AlreadyPurchased => "already-purchased",
            Rejection::Unsubscribed => "unsubscribed",
            Rejection::InvalidField { .. } => "invalid-field",
            Rejection::PlanMismatch { .. } => "plan-mismatch",
            Rejection::QuantityMismatch { .. } => "quantity-mismatch",
            Rejection::SetupAlreadyConfirmed { .. } => "setup-already-confirmed",
            Rejection::LicensesExceedQuantity { .. } => "licenses-exceed-quantity",
            Rejection::CancellationWindowClosed { .. } => "cancellation-window-closed",
            Rejection::Expired => "expired",
            Rejection::Suspended { .. } => "suspended",
            Rejection::NotSuspended(_) => "not-suspended",
            Rejection::TermMismatch { .. } => "term-mismatch",
            Rejection::QuantityBelowAssignedLicenses { .. } => "quantity-below-assigned-licenses",
            Rejection::NotSubscribed(_) => "not-subscribed",
            Rejection::SameValue { .. } => "same-value",
            Rejection::OperationNotFound => "operation-not-found",
            Rejection::OperationAlreadyCompleted { .. } => "operation-already-completed",
            Rejection::NewerOperationCompleted { .. } => "newer-operation-completed",
            Rejection::UsagePlanMismatch { .. } => "usage-plan-mismatch",
            Rejection::UnknownDimension { .. } => "unknown-dimension",
            Rejection::UsageExpired { .. } => "usage-expired",
            Rejection::UsageBeforeActivation { .. } => "usage-before-activation",
            Rejection::DuplicateUsage { .. } => "duplicate-usage",
        }
    }
}
