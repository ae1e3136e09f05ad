//! Topic admin and metadata: creating a topic when it is missing, and asking the broker what it
//! serves. The metadata calls block (librdkafka waits for the answer): run them on a blocking
//! thread (`tokio::task::spawn_blocking`).

use crate::KafkaClientError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// Creates `topic` with `config` when it does not exist; an existing topic is left as it is.
/// Every failure is a [`KafkaClientError::TopicCreation`].
pub async fn create_topic_if_missing(
    brokers: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    config: &[(&str, &str)],
    timeout: Duration,
) -> Result<(), KafkaClientError> {
    let failed = |reason: String| KafkaClientError::TopicCreation { topic: topic.to_owned(), reason };
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| failed(e.to_string()))?;
    let new_topic = config
        .iter()
        .fold(NewTopic::new(topic, partitions, TopicReplication::Fixed(replication_factor)), |t, (k, v)| t.set(k, v));
    let options = AdminOptions::new().request_timeout(Some(timeout));
    for result in admin.create_topics([&new_topic], &options).await.map_err(|e| failed(e.to_string()))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    Ok(())
}

/// The partitions of `topic`, or `None` when the broker does not answer within `timeout` or
/// reports an error for the topic (blocking).
pub fn served_partitions<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> Option<Vec<i32>> {
    let metadata = client.fetch_metadata(Some(topic), timeout).ok()?;
    let served = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none())?;
    Some(served.partitions().iter().map(|p| p.id()).collect())
}

/// The offset of the last message of every non-empty partition of `topic`; empty when the
/// broker does not answer (blocking).
pub fn last_offsets<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> BTreeMap<i32, i64> {
    let Ok(metadata) = client.fetch_metadata(Some(topic), timeout) else {
        return BTreeMap::new();
    };
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .filter_map(|p| match client.fetch_watermarks(topic, p, timeout) {
            Ok((_, high)) if high > 0 => Some((p, high - 1)),
            _ => None,
        })
        .collect()
}
