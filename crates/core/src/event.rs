//! Events: the facts the log stores, in past tense, each in an envelope that says who reported
//! it, when it happened, when we recorded it, and which schema version its data has.
//!
//! The wire form is JSON with stable camelCase field names. Readers ignore fields they do not
//! know, and old versions are upcast in [`Event::decode`], never rewritten in the log.

use crate::catalog::{BillingCycle, Term};
use crate::metering::UsageQuantity;
use crate::policy::LicensesRequired;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The schema version every event is written with today. Bump it (and add an upcast arm in
/// [`Event::decode`]) when the data of any event type changes shape.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// A SaaS subscription id (a GUID, as in the marketplace). A newtype so that a customer or
/// order id can never be passed where a subscription is meant. It is the log's partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub Uuid);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SubscriptionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(SubscriptionId)
    }
}

/// Which kind of caller reported a fact. Audits ask "who did this", so every event carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A CSP partner through the partner API.
    Partner,
    /// An ISV publisher through a signed webhook or the SaaS Fulfillment API.
    Publisher,
    /// `fulfillment` itself (policies, timers).
    System,
}

impl SourceKind {
    /// The lowercase wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Partner => "partner",
            SourceKind::Publisher => "publisher",
            SourceKind::System => "system",
        }
    }
}

/// The authenticated caller behind an event: its kind and its configured id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Partner, publisher or system.
    pub kind: SourceKind,
    /// The partner or publisher id from the configuration (never a credential).
    pub actor_id: String,
}

/// What was bought: everything a partner chose for one line item of an order, and the
/// authorization code the ingress issued for it. Declared once and carried whole: the purchase
/// command brings it, the purchase event records it, and the subscription keeps it (flattened,
/// so every wire shape names these fields at the top level, as they always have).
///
/// In a [`Subscription`](crate::Subscription) it is the purchase as it stands now: plan,
/// quantity, auto-renew, nickname and reseller follow later changes; the rest never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    /// The partner's order this subscription was bought in.
    pub order_id: Uuid,
    /// Position of the line item within the order (0-based, as in Partner Center).
    pub line_item_number: u32,
    /// The partner's customer (tenant) the subscription is for.
    pub customer_id: String,
    /// The CSP partner that bought it; only this partner may see or change it.
    pub partner_id: String,
    /// The ISV publisher of the offer; only this publisher may report on it.
    pub publisher_id: String,
    /// Offer bought.
    pub offer_id: String,
    /// Plan bought.
    pub plan_id: String,
    /// License count bought.
    pub quantity: u32,
    /// Commitment term.
    pub term: Term,
    /// How often the customer is charged.
    pub billing_cycle: BillingCycle,
    /// Whether the subscription renews at the end of the term.
    pub auto_renew: bool,
    /// The partner's nickname for the subscription.
    pub friendly_name: String,
    /// MPN ID of the indirect reseller of record, when sold through one.
    pub indirect_reseller_mpn_id: Option<String>,
    /// Code identifying this purchase at the publisher's site (the landing page `token`).
    pub authorization_code: String,
}

/// Why and by whom a subscription was cancelled, and whether the customer is refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    /// Free-text reason given by the canceller.
    pub reason: String,
    /// Who cancelled.
    pub by: SourceKind,
    /// True when cancelled inside the cancellation window (full refund).
    pub refundable: bool,
    /// The SaaS API operation that cancelled it (publisher `DELETE`), if any. Optional so
    /// cancellations recorded before operations existed stay readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<Uuid>,
}

/// What a SaaS API operation changes (the spec's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationAction {
    /// Move to another plan.
    ChangePlan,
    /// Change the license count.
    ChangeQuantity,
    /// Cancel.
    Unsubscribe,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationOutcome {
    /// The publisher confirmed it; the change took effect.
    Succeeded,
    /// The publisher refused it; nothing changed.
    Failed,
}

/// A fact about one subscription. Variant names are the facts; the `type` strings are the wire
/// names and never change once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
// The purchase is the largest fact and comes once per stream; boxing it would change every
// place a purchase event is built or matched for a few hundred bytes per event held in a batch.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A partner bought the subscription; it now waits for the publisher. The window end is
    /// recorded with the purchase, so later policy changes never rewrite the past.
    #[serde(rename = "subscription.purchased", rename_all = "camelCase")]
    SubscriptionPurchased {
        /// What was bought.
        #[serde(flatten)]
        purchase: Purchase,
        /// Last instant a partner may cancel with a refund (purchase time + policy window).
        cancellation_allowed_until: DateTime<Utc>,
        /// When the system cancels the subscription if it is still pending (purchase time +
        /// `policy.activation_deadline_days`). Absent on purchases recorded before the deadline
        /// existed: those get the default 30 days from their purchase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation_deadline: Option<DateTime<Utc>>,
        /// How many licenses must be assigned before billing starts. Absent on purchases
        /// recorded before the rule was configurable: those keep the old rule, `any`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        licenses_required: Option<LicensesRequired>,
    },
    /// The publisher assigned licenses to the customer's users.
    #[serde(rename = "subscription.licenses_assigned", rename_all = "camelCase")]
    LicensesAssigned {
        /// How many licenses are assigned now.
        assigned_count: u32,
    },
    /// The publisher confirmed that the customer's account is set up (SaaS API `activate`).
    #[serde(rename = "subscription.setup_confirmed", rename_all = "camelCase")]
    SetupConfirmed {
        /// Plan the publisher set up.
        plan_id: String,
        /// Quantity the publisher set up.
        quantity: u32,
    },
    /// The license count changed.
    #[serde(rename = "subscription.quantity_changed", rename_all = "camelCase")]
    QuantityChanged {
        /// Count before the change.
        previous_quantity: u32,
        /// Count after the change.
        quantity: u32,
    },
    /// The partner renamed the subscription.
    #[serde(rename = "subscription.nickname_changed", rename_all = "camelCase")]
    NicknameChanged {
        /// The new nickname.
        friendly_name: String,
    },
    /// Auto-renew was turned on or off.
    #[serde(rename = "subscription.auto_renew_changed", rename_all = "camelCase")]
    AutoRenewChanged {
        /// Whether the subscription now renews.
        auto_renew: bool,
    },
    /// The partner recorded the indirect reseller of record.
    #[serde(rename = "subscription.indirect_reseller_set", rename_all = "camelCase")]
    IndirectResellerSet {
        /// MPN ID of the indirect reseller.
        mpn_id: String,
    },
    /// The subscription was cancelled; this is terminal.
    #[serde(rename = "subscription.cancelled")]
    Cancelled(Cancellation),
    /// A publisher asked (SaaS API `PATCH`) to change plan or quantity; the change takes
    /// effect when the operation succeeds.
    #[serde(rename = "subscription.operation_requested", rename_all = "camelCase")]
    OperationRequested {
        /// Operation id (the `Operation-Id` header).
        operation_id: Uuid,
        /// `ChangePlan` or `ChangeQuantity`.
        action: OperationAction,
        /// Plan after the change.
        plan_id: String,
        /// Quantity after the change.
        quantity: u32,
    },
    /// The publisher reported an operation's outcome (SaaS API operation `PATCH`).
    #[serde(rename = "subscription.operation_completed", rename_all = "camelCase")]
    OperationCompleted {
        /// Operation id.
        operation_id: Uuid,
        /// Succeeded (the change applies) or failed (nothing changes).
        outcome: OperationOutcome,
    },
    /// A term ended with auto-renew on and the next one began (source `system`, occurred at
    /// the end of the previous term).
    #[serde(rename = "subscription.renewed", rename_all = "camelCase")]
    Renewed {
        /// Number of the term that begins (2 for the first renewal).
        term_number: u32,
        /// Start of the new term (the end of the previous one).
        term_start: DateTime<Utc>,
        /// End of the new term.
        term_end: DateTime<Utc>,
        /// Last instant of the new term's refundable cancellation window.
        cancellation_allowed_until: DateTime<Utc>,
    },
    /// A term ended with auto-renew off; this is terminal (source `system`, occurred at the end
    /// of the term).
    #[serde(rename = "subscription.expired", rename_all = "camelCase")]
    Expired {
        /// Number of the term that ended.
        term_number: u32,
    },
    /// The billing system suspended the subscription (a failed payment, say): nothing is
    /// billed and no quantity or plan changes are accepted until it is reinstated.
    #[serde(rename = "subscription.suspended", rename_all = "camelCase")]
    Suspended {
        /// Why (`paymentFailed`, or the billing system's own reason).
        reason: String,
        /// When the system cancels it if it is still suspended (suspension time +
        /// `policy.suspension_grace_days`).
        grace_until: DateTime<Utc>,
    },
    /// The billing system lifted the suspension; billing resumes.
    #[serde(rename = "subscription.reinstated", rename_all = "camelCase")]
    Reinstated {},
    /// The publisher reported usage of a metering dimension (Metering Service API); billed on
    /// top of the flat fee. At most one per dimension and hour.
    #[serde(rename = "subscription.usage_reported", rename_all = "camelCase")]
    UsageReported {
        /// The Metering API's `usageEventId` (deterministic per subscription, dimension, hour).
        usage_event_id: Uuid,
        /// Dimension id.
        dimension: String,
        /// Units consumed.
        quantity: UsageQuantity,
        /// When the usage happened, as reported.
        effective_start_time: DateTime<Utc>,
        /// Plan the usage was reported for (the subscription's plan then).
        plan_id: String,
    },
}

/// Why stored bytes could not be read as an event: surfaced by replay and verify tools, so it
/// names the type and version that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The envelope itself is not valid JSON of the expected shape.
    #[error("malformed event envelope: {0}")]
    Envelope(String),
    /// The event was written by a newer `fulfillment` than this one.
    #[error("event type {event_type} has version {version}, newer than supported {supported}")]
    UnsupportedVersion {
        /// Wire type name.
        event_type: String,
        /// Version found.
        version: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// The type name is unknown, or the data does not fit it.
    #[error("cannot decode {event_type} v{version}: {message}")]
    Data {
        /// Wire type name.
        event_type: String,
        /// Version found.
        version: u32,
        /// What did not fit.
        message: String,
    },
}

impl Event {
    /// The stable wire name of this event's type (`subscription.purchased`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::SubscriptionPurchased { .. } => "subscription.purchased",
            Event::LicensesAssigned { .. } => "subscription.licenses_assigned",
            Event::SetupConfirmed { .. } => "subscription.setup_confirmed",
            Event::QuantityChanged { .. } => "subscription.quantity_changed",
            Event::NicknameChanged { .. } => "subscription.nickname_changed",
            Event::AutoRenewChanged { .. } => "subscription.auto_renew_changed",
            Event::IndirectResellerSet { .. } => "subscription.indirect_reseller_set",
            Event::Cancelled(_) => "subscription.cancelled",
            Event::OperationRequested { .. } => "subscription.operation_requested",
            Event::OperationCompleted { .. } => "subscription.operation_completed",
            Event::Renewed { .. } => "subscription.renewed",
            Event::Expired { .. } => "subscription.expired",
            Event::Suspended { .. } => "subscription.suspended",
            Event::Reinstated {} => "subscription.reinstated",
            Event::UsageReported { .. } => "subscription.usage_reported",
        }
    }

    /// The event's data as JSON, without the type tag.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(serde_json::Value::Null),
            // Serializing plain structs of strings, numbers and dates cannot fail.
            _ => serde_json::Value::Null,
        }
    }

    /// Reads an event of any version this build knows, upcasting old versions to the current
    /// shape. Version 1 is the current shape, so there is nothing to upcast yet; a future
    /// version 2 of a type adds an arm here that rewrites v1 data before deserializing.
    pub fn decode(event_type: &str, version: u32, data: serde_json::Value) -> Result<Event, DecodeError> {
        if version == 0 || version > EVENT_SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                event_type: event_type.to_owned(),
                version,
                supported: EVENT_SCHEMA_VERSION,
            });
        }
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(tagged).map_err(|e| DecodeError::Data {
            event_type: event_type.to_owned(),
            version,
            message: e.to_string(),
        })
    }
}

/// An event with its metadata: the unit the log stores and the fold consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    /// UUID v7: unique, and sortable by creation time for humans reading a log.
    pub event_id: Uuid,
    /// The stream (and log partition key) the event belongs to.
    pub subscription_id: SubscriptionId,
    /// Schema version the data was written with (before upcasting).
    pub schema_version: u32,
    /// Who reported the fact.
    pub source: Source,
    /// When the fact happened according to its source (a signed webhook timestamp, or now).
    pub occurred_at: DateTime<Utc>,
    /// When `fulfillment` accepted it.
    pub recorded_at: DateTime<Utc>,
    /// The fact itself.
    pub event: Event,
}

/// The JSON shape of an envelope; kept separate so the version check and upcast run before the
/// data is interpreted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEnvelope {
    event_id: Uuid,
    subscription_id: SubscriptionId,
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    source: Source,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    data: serde_json::Value,
}

impl EventEnvelope {
    /// The wire type name of the contained event.
    pub fn event_type(&self) -> &'static str {
        self.event.type_name()
    }

    /// The envelope as a JSON value (what the log stores and the history API shows).
    pub fn to_json(&self) -> serde_json::Value {
        let wire = WireEnvelope {
            event_id: self.event_id,
            subscription_id: self.subscription_id,
            event_type: self.event.type_name().to_owned(),
            version: self.schema_version,
            source: self.source.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            data: self.event.data(),
        };
        serde_json::to_value(wire).unwrap_or(serde_json::Value::Null)
    }

    /// Encodes the envelope as compact JSON text.
    pub fn encode(&self) -> String {
        self.to_json().to_string()
    }

    /// Decodes an envelope, upcasting its data to the current version.
    pub fn decode(json: &str) -> Result<EventEnvelope, DecodeError> {
        let wire: WireEnvelope = serde_json::from_str(json).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        let event = Event::decode(&wire.event_type, wire.version, wire.data)?;
        Ok(EventEnvelope {
            event_id: wire.event_id,
            subscription_id: wire.subscription_id,
            schema_version: wire.version,
            source: wire.source,
            occurred_at: wire.occurred_at,
            recorded_at: wire.recorded_at,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event: Event) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::now_v7(),
            subscription_id: SubscriptionId(Uuid::new_v4()),
            schema_version: EVENT_SCHEMA_VERSION,
            source: Source { kind: SourceKind::Publisher, actor_id: "contoso".into() },
            occurred_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            recorded_at: "2026-01-01T00:00:01Z".parse().unwrap(),
            event,
        }
    }

    #[test]
    fn envelope_round_trips_with_stable_field_names() {
        let env = envelope(Event::LicensesAssigned { assigned_count: 5 });
        let json = env.to_json();
        assert_eq!(json["type"], "subscription.licenses_assigned");
        assert_eq!(json["version"], 1);
        assert_eq!(json["data"]["assignedCount"], 5);
        assert_eq!(json["source"]["kind"], "publisher");
        assert_eq!(json["source"]["actorId"], "contoso");
        assert!(json["eventId"].is_string() && json["occurredAt"].is_string());
        assert_eq!(EventEnvelope::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn cancellations_recorded_without_an_operation_id_stay_readable() {
        let data = serde_json::json!({"reason": "r", "by": "partner", "refundable": false});
        let event = Event::decode("subscription.cancelled", 1, data).unwrap();
        assert!(matches!(event, Event::Cancelled(Cancellation { operation_id: None, .. })));
    }

    #[test]
    fn purchases_recorded_before_the_deadline_and_license_rule_stay_readable() {
        let mut data = Event::SubscriptionPurchased {
            purchase: crate::test_support::purchase_order(3).purchase,
            cancellation_allowed_until: "2026-01-04T00:00:00Z".parse().unwrap(),
            activation_deadline: None,
            licenses_required: None,
        }
        .data();
        assert!(data.get("activationDeadline").is_none() && data.get("licensesRequired").is_none(), "{data}");
        data.as_object_mut().unwrap().remove("activationDeadline");
        let event = Event::decode("subscription.purchased", 1, data).unwrap();
        assert!(matches!(
            event,
            Event::SubscriptionPurchased { activation_deadline: None, licenses_required: None, .. }
        ));
    }

    #[test]
    fn a_reinstatement_has_empty_data() {
        let data = Event::Reinstated {}.data();
        assert_eq!(data, serde_json::json!({}));
        assert_eq!(Event::decode("subscription.reinstated", 1, data).unwrap(), Event::Reinstated {});
    }

    #[test]
    fn unknown_fields_are_tolerated_on_read() {
        let env = envelope(Event::AutoRenewChanged { auto_renew: false });
        let mut json = env.to_json();
        json["traceparent"] = "00-abc".into();
        json["data"]["futureField"] = 42.into();
        assert_eq!(EventEnvelope::decode(&json.to_string()).unwrap(), env);
    }

    #[test]
    fn newer_versions_are_refused_with_a_clear_error() {
        let mut json = envelope(Event::AutoRenewChanged { auto_renew: true }).to_json();
        json["version"] = 9.into();
        let err = EventEnvelope::decode(&json.to_string()).unwrap_err();
        assert!(matches!(err, DecodeError::UnsupportedVersion { version: 9, .. }), "{err}");
    }

    #[test]
    fn unknown_types_and_bad_data_name_the_type() {
        let err = Event::decode("subscription.teleported", 1, serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("subscription.teleported"));
        let err =
            Event::decode("subscription.licenses_assigned", 1, serde_json::json!({"assignedCount": "x"})).unwrap_err();
        assert!(matches!(err, DecodeError::Data { .. }));
    }

    #[test]
    fn a_purchase_keeps_its_fields_at_the_top_level_of_its_data() {
        let event = Event::SubscriptionPurchased {
            purchase: crate::test_support::purchase_order(3).purchase,
            cancellation_allowed_until: "2026-01-04T00:00:00Z".parse().unwrap(),
            activation_deadline: Some("2026-01-31T00:00:00Z".parse().unwrap()),
            licenses_required: Some(LicensesRequired::All),
        };
        let data = event.data();
        assert_eq!(data["planId"], "standard");
        assert_eq!(data["cancellationAllowedUntil"], "2026-01-04T00:00:00Z");
        assert_eq!(data["activationDeadline"], "2026-01-31T00:00:00Z");
        assert_eq!(data["licensesRequired"], "all");
        assert_eq!(data.as_object().unwrap().len(), 17, "{data}");
        assert_eq!(Event::decode(event.type_name(), 1, data).unwrap(), event);
    }

    #[test]
    fn every_event_type_round_trips() {
        let events = vec![
            Event::SetupConfirmed { plan_id: "p".into(), quantity: 3 },
            Event::QuantityChanged { previous_quantity: 1, quantity: 3 },
            Event::NicknameChanged { friendly_name: "n".into() },
            Event::IndirectResellerSet { mpn_id: "1234567".into() },
            Event::Cancelled(Cancellation {
                reason: "r".into(),
                by: SourceKind::Partner,
                refundable: true,
                operation_id: Some(Uuid::from_u128(2)),
            }),
            Event::OperationRequested {
                operation_id: Uuid::from_u128(1),
                action: OperationAction::ChangeQuantity,
                plan_id: "p".into(),
                quantity: 4,
            },
            Event::OperationCompleted { operation_id: Uuid::from_u128(1), outcome: OperationOutcome::Failed },
            Event::Renewed {
                term_number: 2,
                term_start: "2027-01-05T00:00:00Z".parse().unwrap(),
                term_end: "2027-02-05T00:00:00Z".parse().unwrap(),
                cancellation_allowed_until: "2027-01-08T00:00:00Z".parse().unwrap(),
            },
            Event::Expired { term_number: 3 },
            Event::Suspended { reason: "paymentFailed".into(), grace_until: "2027-02-04T00:00:00Z".parse().unwrap() },
            Event::Reinstated {},
            Event::UsageReported {
                usage_event_id: Uuid::from_u128(3),
                dimension: "apicalls".into(),
                quantity: "12.5".parse().unwrap(),
                effective_start_time: "2027-01-05T10:15:00Z".parse().unwrap(),
                plan_id: "standard".into(),
            },
        ];
        for e in events {
            let decoded = Event::decode(e.type_name(), 1, e.data()).unwrap();
            assert_eq!(decoded, e);
        }
    }
}
