//! The usage read model for both databases (see [`super`]): rows written by the fold, read by
//! the Metering API's `GET /api/usageEvents`.

use super::dialect::Statement;
use super::{Backend, Param, SqlStore};
use crate::{ReadModelError, UsageFilter, UsageQueries, UsageRecord};
use async_trait::async_trait;

#[async_trait]
impl<S: SqlStore> UsageQueries for S {
    async fn usage_events(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, ReadModelError> {
        let mut conn = self.connections().acquire().await?;
        // Served by `usage_events_by_publisher`.
        let mut select = Statement::<S::Db>::new("SELECT payload FROM usage_events WHERE publisher_id = ")
            .param(Param::Text(&filter.publisher_id))
            .push(" AND usage_hour >= ")
            .param(Param::Time(filter.from))
            .push(" AND usage_hour < ")
            .param(Param::Time(filter.to));
        for (column, value) in [
            (" AND offer_id = ", &filter.offer_id),
            (" AND plan_id = ", &filter.plan_id),
            (" AND dimension = ", &filter.dimension),
        ] {
            if let Some(value) = value {
                select = select.push(column).param(Param::Text(value));
            }
        }
        let select = select.push(" ORDER BY usage_hour, usage_event_id LIMIT ").param(Param::Int(filter.limit.into()));
        S::Db::fetch_decoded(&mut conn, &select.sql, &select.params, |row| {
            serde_json::from_str(&S::Db::text(row, 0)?).map_err(|e| ReadModelError::Corrupt(e.to_string()))
        })
        .await
    }
}
