//! The Kafka-protocol broker the Kafka-mode tests use: a real broker over TCP on loopback
//! (`FULFILLMENT_TEST_KAFKA`, default `127.0.0.1:9092`; `scripts/test.sh` installs and starts
//! Tansu there). Every test gets its own topics and consumer group, so tests share the broker
//! without seeing each other's events.

use fulfillment::{KafkaDeployment, ProjectorOptions};
use fulfillment_log::KafkaLogOptions;
use fulfillment_projector::{run_kafka_projector, KafkaProjectorOptions};
use fulfillment_read_model::{Fingerprint, Fingerprints, PostgresOptions, PostgresReadModel};
use fulfillment_relay::RelayOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The broker's bootstrap address.
pub fn brokers() -> String {
    std::env::var("FULFILLMENT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Event-log options on a fresh topic of 3 partitions of the test broker.
pub fn fresh_log_options() -> KafkaLogOptions {
    fresh_log_options_on(&brokers())
}

/// Event-log options on a fresh topic of 3 partitions of `brokers`.
pub fn fresh_log_options_on(brokers: &str) -> KafkaLogOptions {
    KafkaLogOptions {
        topic: unique("test.events"),
        partitions: 3,
        delivery_timeout: Duration::from_secs(5),
        ..KafkaLogOptions::new(brokers)
    }
}

/// Projector options for `log` with a fresh consumer group, short session timeout so a
/// rebalance after an instance leaves happens quickly.
pub fn projector_options(log: &KafkaLogOptions) -> KafkaProjectorOptions {
    KafkaProjectorOptions {
        topic: log.topic.clone(),
        group: unique("test-projector"),
        batch: 100,
        session_timeout: Duration::from_secs(6),
        ..KafkaProjectorOptions::new(log.brokers.clone())
    }
}

/// A deployment on a fresh topic of the test broker and a fresh consumer group, read models
/// in `database`.
pub fn fresh_deployment(database: PostgresOptions) -> KafkaDeployment {
    deployment(fresh_log_options(), database)
}

/// A deployment on `log`'s topic with a fresh consumer group, read models in `database`.
pub fn deployment(log: KafkaLogOptions, database: PostgresOptions) -> KafkaDeployment {
    KafkaDeployment { consumer_group: unique("test-projector"), log, database }
}

/// A projector of `kafka` as [`projector_options`] sets one up (batches of 100, a short
/// session timeout), publishing billing events to `billing_relay` too when given.
pub fn projector(kafka: KafkaDeployment, billing_relay: Option<RelayOptions>) -> ProjectorOptions {
    let consumer = projector_options(&kafka.log);
    ProjectorOptions { kafka, folding: super::folding(billing_relay), session_timeout: consumer.session_timeout }
}

/// The end offset of every partition of `topic`.
pub async fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        (0..partitions).map(|p| (p, consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap().1)).collect()
    })
    .await
    .unwrap()
}

/// Waits until `group` has folded every message of `topic` into `store`: its stored next offset
/// of each partition at or past the partition's end as the broker reports it now. "Past": after
/// a producer was SIGKILLed mid-append, Tansu 0.6 was seen to serve a record at the very offset
/// it reported as the end (read back with a plain consumer: end 533, a record at 533), so a
/// projector that folded everything stands one past that end.
pub async fn wait_until_folded(store: &PostgresReadModel, group: &str, log: &KafkaLogOptions) {
    let mut ends = BTreeMap::new();
    for _ in 0..240 {
        ends = high_watermarks(&log.brokers, &log.topic, log.partitions).await;
        let folded = store.consumed_offsets(group, &log.topic).await.unwrap();
        if ends.iter().all(|(p, end)| *end == 0 || folded.get(p).is_some_and(|next| next >= end)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "group {group} did not fold the whole topic: ends {ends:?}, folded {:?}",
        store.consumed_offsets(group, &log.topic).await.unwrap()
    );
}

/// Folds the whole topic of `log` into a new database with a new consumer group and checks the
/// live read model equals it, row by row; returns the live fingerprint.
pub async fn assert_equals_fresh_fold(live: &PostgresReadModel, log: &KafkaLogOptions) -> Fingerprint {
    let scratch = super::postgres::fresh_database().await;
    let fresh = PostgresReadModel::connect(&scratch).await.unwrap();
    let fresh_group = unique("fresh-fold");
    let stop = CancellationToken::new();
    let replay = run_kafka_projector(
        KafkaProjectorOptions { group: fresh_group.clone(), ..projector_options(log) },
        fresh.clone(),
        live.pool().clone(),
        stop.clone(),
    )
    .unwrap();
    wait_until_folded(&fresh, &fresh_group, log).await;
    stop.cancel();
    replay.task.await.unwrap();

    let (live_print, fresh_print) = (live.fingerprint().await.unwrap(), fresh.fingerprint().await.unwrap());
    for (id, hash) in &fresh_print.subscriptions {
        assert_eq!(
            live_print.subscriptions.get(id),
            Some(hash),
            "subscription {id} differs from a fresh fold:\nlive  {}\nfresh {}",
            live.subscription_rows(id).await.unwrap(),
            fresh.subscription_rows(id).await.unwrap()
        );
    }
    assert_eq!(live_print, fresh_print, "the read model must equal a fresh fold of the topic");
    live_print
}
