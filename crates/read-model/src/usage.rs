//! What the Metering API reads back (`GET /api/usageEvents`): the usage events the fold accepted,
//! one record each. In: the calling publisher and the filters of the request. Out: the records,
//! never another publisher's (the query filters by its owner).

use crate::ReadModelError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{AcceptedUsage, SubscriptionId};
use serde::{Deserialize, Serialize};

/// One accepted usage event with the subscription and offer it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The subscription (the Metering API's `resourceId`).
    pub subscription_id: SubscriptionId,
    /// Its offer.
    pub offer_id: String,
    /// The accepted report.
    #[serde(flatten)]
    pub usage: AcceptedUsage,
}

/// Which usage events a publisher asks for: the hours in `[from, to)`, optionally narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    /// The calling publisher; only its subscriptions' usage is read.
    pub publisher_id: String,
    /// First hour included.
    pub from: DateTime<Utc>,
    /// First hour no longer included.
    pub to: DateTime<Utc>,
    /// Only this offer.
    pub offer_id: Option<String>,
    /// Only this plan.
    pub plan_id: Option<String>,
    /// Only this dimension.
    pub dimension: Option<String>,
    /// At most this many records, in hour order.
    pub limit: u32,
}

/// The usage queries the Metering API answers from.
#[async_trait]
pub trait UsageQueries: Send + Sync + 'static {
    /// The accepted usage events matching `filter`, by hour then usage event id.
    async fn usage_events(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, ReadModelError>;
}
