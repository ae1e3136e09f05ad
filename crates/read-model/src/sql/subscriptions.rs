//! The position and the subscription queries, for both databases (see [`super`]). Every query
//! but the position filters by the owner the caller is (partner or publisher), so no caller
//! reads another's subscriptions.

use super::fold::parse_state;
use super::{Backend, Param, SqlStore, PROJECTOR};
use crate::{CustomerSummary, DueDeadline, DueDeadlines, FoldPosition, ReadModelError, SubscriptionQueries};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulfillment_core::{Subscription, SubscriptionId};
use tracing::warn;
use uuid::Uuid;

/// The position stored in `projector_positions` (0 before the first batch), read on `conn`.
pub(crate) async fn stored_position<D: Backend>(conn: &mut D::Connection) -> Result<u64, ReadModelError> {
    let stored = D::fetch_decoded(
        conn,
        "SELECT position FROM projector_positions WHERE projector = $1",
        &[Param::Text(PROJECTOR)],
        |row| Ok(D::int(row, 0)?),
    )
    .await?;
    Ok(stored.first().copied().unwrap_or(0) as u64)
}

/// The stored states `sql` selects (its only column is `state`), as stored.
async fn stored_states<S: SqlStore>(store: &S, sql: &str, params: &[Param<'_>]) -> Result<Vec<String>, ReadModelError> {
    let mut conn = store.connections().acquire().await?;
    S::Db::fetch_decoded(&mut conn, sql, params, |row| Ok(S::Db::text(row, 0)?)).await
}

/// The folded states `sql` selects (its only column is `state`).
async fn states<S: SqlStore>(store: &S, sql: &str, params: &[Param<'_>]) -> Result<Vec<Subscription>, ReadModelError> {
    stored_states(store, sql, params).await?.iter().map(|state| parse_state(state)).collect()
}

#[async_trait]
impl<S: SqlStore> FoldPosition for S {
    async fn position(&self) -> Result<u64, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        stored_position::<S::Db>(&mut conn).await
    }
}

#[async_trait]
impl<S: SqlStore> DueDeadlines for S {
    async fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        after: Option<DueDeadline>,
        limit: u32,
    ) -> Result<Vec<DueDeadline>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        // Served by `subscriptions_by_next_deadline` (partial: rows with a deadline only).
        let limit = Param::Int(limit.into());
        let from_id = after.map(|last| last.subscription_id.to_string()).unwrap_or_default();
        let (sql, params) = match after {
            None => (
                "SELECT subscription_id, next_deadline_at FROM subscriptions
                 WHERE next_deadline_at IS NOT NULL AND next_deadline_at <= $1
                 ORDER BY next_deadline_at, subscription_id LIMIT $2",
                vec![Param::Time(now), limit],
            ),
            Some(last) => (
                "SELECT subscription_id, next_deadline_at FROM subscriptions
                 WHERE next_deadline_at IS NOT NULL AND next_deadline_at <= $1
                   AND (next_deadline_at > $2 OR (next_deadline_at = $3 AND subscription_id > $4))
                 ORDER BY next_deadline_at, subscription_id LIMIT $5",
                vec![
                    Param::Time(now),
                    Param::Time(last.due_at),
                    Param::Time(last.due_at),
                    Param::Text(&from_id),
                    limit,
                ],
            ),
        };
        S::Db::fetch_decoded(&mut conn, sql, &params, |row| {
            let id = S::Db::text(row, 0)?;
            Ok(DueDeadline {
                subscription_id: id
                    .parse()
                    .map_err(|e: uuid::Error| ReadModelError::Corrupt(format!("subscription_id {id:?}: {e}")))?,
                due_at: S::Db::time(row, 1, "next_deadline_at")?,
            })
        })
        .await
    }

    async fn subscriptions_without_deadlines(&self) -> Result<u64, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        let counted = S::Db::fetch_decoded(
            &mut conn,
            "SELECT COUNT(*) FROM subscriptions
             WHERE next_deadline_at IS NULL AND status IN ('pending', 'active', 'suspended')",
            &[],
            |row| Ok(S::Db::int(row, 0)?),
        )
        .await?;
        Ok(counted.first().copied().unwrap_or(0) as u64)
    }
}

#[async_trait]
impl<S: SqlStore> SubscriptionQueries for S {
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, ReadModelError> {
        let id = id.to_string();
        let found =
            states(self, "SELECT state FROM subscriptions WHERE subscription_id = $1", &[Param::Text(&id)]).await?;
        Ok(found.into_iter().next())
    }

    async fn customer_subscriptions(
        &self,
        partner_id: &str,
        customer_id: &str,
    ) -> Result<Vec<Subscription>, ReadModelError> {
        states(
            self,
            "SELECT state FROM subscriptions WHERE partner_id = $1 AND customer_id = $2
             ORDER BY purchased_at, subscription_id",
            &[Param::Text(partner_id), Param::Text(customer_id)],
        )
        .await
    }

    async fn partner_customers(&self, partner_id: &str) -> Result<Vec<CustomerSummary>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        // Served by `subscriptions_by_customer` (partner_id, customer_id, purchased_at).
        S::Db::fetch_decoded(
            &mut conn,
            "SELECT customer_id, COUNT(*) AS subscriptions,
                    COUNT(*) FILTER (WHERE status = 'pending') AS action_needed,
                    MAX(purchased_at) AS latest_purchase
             FROM subscriptions WHERE partner_id = $1
             GROUP BY customer_id ORDER BY latest_purchase DESC, customer_id",
            &[Param::Text(partner_id)],
            |row| {
                Ok(CustomerSummary {
                    customer_id: S::Db::text(row, 0)?,
                    subscriptions: S::Db::int(row, 1)? as u64,
                    action_needed: S::Db::int(row, 2)? as u64,
                    latest_purchase: S::Db::time(row, 3, "purchased_at")?,
                })
            },
        )
        .await
    }

    async fn order_subscriptions(&self, partner_id: &str, order_id: Uuid) -> Result<Vec<Subscription>, ReadModelError> {
        let order_id = order_id.to_string();
        let mut subscriptions = states(
            self,
            "SELECT state FROM subscriptions WHERE partner_id = $1 AND order_id = $2",
            &[Param::Text(partner_id), Param::Text(&order_id)],
        )
        .await?;
        subscriptions.sort_by_key(|s| s.purchase.line_item_number);
        Ok(subscriptions)
    }

    async fn subscription_by_authorization_code(&self, code: &str) -> Result<Option<Subscription>, ReadModelError> {
        // Two rows are enough to tell a unique code from a shared one (see the trait).
        let found = stored_states(
            self,
            "SELECT state FROM subscriptions WHERE authorization_code = $1 LIMIT 2",
            &[Param::Text(code)],
        )
        .await?;
        match found.as_slice() {
            [only] => parse_state(only).map(Some),
            [] => Ok(None),
            _ => {
                warn!("an authorization code is shared by several subscriptions; refusing to resolve it");
                Ok(None)
            }
        }
    }

    async fn publisher_subscriptions(
        &self,
        publisher_id: &str,
        after: Option<SubscriptionId>,
        limit: u32,
    ) -> Result<Vec<Subscription>, ReadModelError> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        states(
            self,
            "SELECT state FROM subscriptions WHERE publisher_id = $1 AND subscription_id > $2
             ORDER BY subscription_id LIMIT $3",
            &[Param::Text(publisher_id), Param::Text(&after), Param::Int(limit as i64)],
        )
        .await
    }
}
