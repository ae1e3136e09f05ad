//! The billing relay against librdkafka's mock cluster (a Kafka-protocol broker on loopback,
//! in process), with a real SQLite read-model store folded from a real log: every billing event
//! reaches the topic once with its CloudEvents headers and key, and a broker outage delays
//! publishing without losing or reordering anything.

use fulfillment_core::fixtures::{envelope, purchase};
use fulfillment_core::{Event, SubscriptionId};
use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
use fulfillment_read_model::{BillingFeed, BillingOutbox, Projection, SqliteReadModel};
use fulfillment_relay::{run_billing_relay, BillingRelay, RelayOptions};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOPIC: &str = "fulfillment.billing";

/// Folds `n` subscriptions into a fresh store; the even ones are activated (billing started)
/// and then change quantity (billing quantity changed), the odd ones stay pending.
async fn folded_store(dir: &tempfile::TempDir, n: usize) -> SqliteReadModel {
    let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
    for i in 0..n {
        let id = SubscriptionId(Uuid::new_v4());
        let mut events = vec![envelope(id, purchase("customer-1", &Uuid::new_v4().to_string()))];
        if i % 2 == 0 {
            events.push(envelope(id, Event::LicensesAssigned { assigned_count: 3 }));
            events.push(envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }));
            events.push(envelope(id, Event::QuantityChanged { previous_quantity: 3, quantity: 8 }));
        }
        log.append(AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: 0, events }],
            idempotency: None,
        })
        .await
        .unwrap();
    }
    let store = SqliteReadModel::open(&dir.path().join("read_model.sqlite")).await.unwrap();
    store.project_batch(&log.read_after(0, 100_000).await.unwrap()).await.unwrap();
    store
}

/// One consumed message: key, headers, value.
#[derive(Debug)]
struct Received {
    key: String,
    headers: BTreeMap<String, String>,
    value: serde_json::Value,
}

async fn consume(brokers: &str, expected: usize) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("billing-test-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut received = Vec::new();
    while received.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} billing messages arrived", received.len()))
            .unwrap();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            key: String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
            headers,
            value: serde_json::from_slice(message.payload().unwrap()).unwrap(),
        });
    }
    received
}

/// The mock cluster has no CreateTopics API: the tests create the topic on the cluster.
fn options(brokers: &str) -> RelayOptions {
    RelayOptions {
        delivery_timeout: Duration::from_secs(3),
        batch: 7,
        create_topic: false,
        ..RelayOptions::new(brokers)
    }
}

#[tokio::test]
async fn every_billing_event_reaches_the_topic_once_as_a_cloud_event_keyed_by_subscription() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let store = folded_store(&dir, 10).await;
    cluster.create_topic(TOPIC, 4, 1).unwrap();
    let relay = BillingRelay::new(options(&brokers)).unwrap();

    let mut published = 0;
    loop {
        let n = relay.publish_pending(&store).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 7, "one round publishes at most one batch");
        published += n;
    }
    assert_eq!(published, 10, "five activated subscriptions: started and quantity changed each");
    assert!(store.unpublished_billing(100).await.unwrap().is_empty(), "every row is marked published");
    assert_eq!(relay.publish_pending(&store).await.unwrap(), 0, "nothing is published twice");

    let feed = store.billing_events(0, 100).await.unwrap();
    let received = consume(&brokers, 10).await;
    let mut by_subscription: HashMap<String, Vec<String>> = HashMap::new();
    for message in &received {
        let event = &message.value;
        assert_eq!(message.key, event["subscriptionId"]);
        assert_eq!(message.headers["ce_specversion"], "1.0");
        assert_eq!(message.headers["ce_id"], event["id"], "ce_id is the deterministic billing event id");
        assert_eq!(message.headers["ce_type"], event["type"]);
        assert_eq!(message.headers["ce_subject"], event["subscriptionId"]);
        assert_eq!(message.headers["ce_time"], event["effectiveAt"]);
        assert_eq!(message.headers["ce_source"], "/fulfillment/billing");
        assert_eq!(message.headers["content-type"], "application/json");
        assert!(feed.iter().any(|f| f.event == *event), "the message is the feed's event, unchanged");
        by_subscription.entry(message.key.clone()).or_default().push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_subscription.len(), 5);
    for types in by_subscription.values() {
        assert_eq!(types, &["billing.started", "billing.quantity_changed"], "in order, once each");
    }
}

#[tokio::test]
async fn a_broker_outage_delays_publishing_and_loses_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(folded_store(&dir, 8).await);

    cluster.broker_down(1).unwrap();
    let relay = BillingRelay::new(options(&brokers)).unwrap();
    let error = relay.publish_pending(store.as_ref()).await.expect_err("the broker is down");
    assert!(error.to_string().contains("kafka"), "{error}");
    assert_eq!(store.unpublished_billing(100).await.unwrap().len(), 8, "nothing marked without an acknowledgement");

    // The running relay keeps retrying and catches up once the broker is back.
    let stop = CancellationToken::new();
    let (_wake_tx, wake) = tokio::sync::watch::channel(0);
    let handle =
        run_billing_relay(BillingRelay::new(options(&brokers)).unwrap(), store.clone(), wake, stop.child_token());
    let mut healthy = handle.healthy.clone();
    tokio::time::timeout(Duration::from_secs(20), healthy.wait_for(|h| !*h)).await.unwrap().unwrap();
    cluster.broker_up(1).unwrap();
    let mut published = handle.published.clone();
    tokio::time::timeout(Duration::from_secs(30), published.wait_for(|n| *n >= 8))
        .await
        .expect("the relay catches up after the outage")
        .unwrap();
    stop.cancel();
    handle.task.await.unwrap();
    assert!(store.unpublished_billing(100).await.unwrap().is_empty());

    let received = consume(&brokers, 8).await;
    let mut ids: Vec<&str> = received.iter().map(|m| m.headers["ce_id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "each billing event once (by ce_id)");
    let started = received.iter().filter(|m| m.value["type"] == "billing.started").count();
    assert_eq!(started, 4, "one billing start per activated subscription");
}
