//! What the HTTP API reads about subscriptions (partner API, console, SaaS Fulfillment API).
//! In: the partner, publisher, order or code a request names. Out: folded subscription states,
//! never another partner's or publisher's (every query filters by its owner).

use crate::ReadModelError;
use async_trait::async_trait;
use fulfillment_core::{Subscription, SubscriptionId};
use uuid::Uuid;

/// One of a partner's customers, as the console's customer list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSummary {
    /// The partner's identifier for the customer.
    pub customer_id: String,
    /// Subscriptions this partner bought for the customer, in any status.
    pub subscriptions: u64,
    /// Of those, how many wait for the publisher ("Action needed").
    pub action_needed: u64,
    /// When the latest of them was bought (the list's sort key, newest first).
    pub latest_purchase: chrono::DateTime<chrono::Utc>,
}

/// The subscription queries the HTTP API answers from.
#[async_trait]
pub trait SubscriptionQueries: Send + Sync + 'static {
    /// One subscription's current state.
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, ReadModelError>;

    /// A partner's subscriptions for one customer, oldest first.
    async fn customer_subscriptions(
        &self,
        partner_id: &str,
        customer_id: &str,
    ) -> Result<Vec<Subscription>, ReadModelError>;

    /// The customers a partner has bought for, most recent purchase first.
    async fn partner_customers(&self, partner_id: &str) -> Result<Vec<CustomerSummary>, ReadModelError>;

    /// A partner's subscriptions bought in one order, by line item.
    async fn order_subscriptions(&self, partner_id: &str, order_id: Uuid) -> Result<Vec<Subscription>, ReadModelError>;

    /// The subscription whose purchase carries this authorization code (SaaS API `resolve`).
    /// The code is a random bearer secret minted per purchase, so a second match means the log
    /// holds a copied code; answering with either subscription would hand one customer's
    /// landing page to another, so an ambiguous code resolves to nothing.
    async fn subscription_by_authorization_code(&self, code: &str) -> Result<Option<Subscription>, ReadModelError>;

    /// A publisher's subscriptions in id order, after `after`, at most `limit` (SaaS API list).
    async fn publisher_subscriptions(
        &self,
        publisher_id: &str,
        after: Option<SubscriptionId>,
        limit: u32,
    ) -> Result<Vec<Subscription>, ReadModelError>;
}
