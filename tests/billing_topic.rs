//! A billing consumer reading the billing topic: the real service, driven over HTTP, publishes
//! its billing events to a Kafka-protocol broker on loopback (librdkafka's mock cluster), and
//! the consumer sees exactly one `billing.started` per activated subscription, each a valid
//! CloudEvent matching the schema in `specs/billing/`, and nothing for pending subscriptions.

mod common;

use common::billing_schemas::assert_matches_schema;
use common::*;
use fulfillment_relay::RelayOptions;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn a_billing_consumer_sees_one_billing_start_per_activated_subscription() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("fulfillment.billing", 3, 1).unwrap();
    let relay =
        RelayOptions { create_topic: false, delivery_timeout: Duration::from_secs(5), ..RelayOptions::new(&brokers) };
    let app = TestApp::spawn_with_billing_topic(Some(relay)).await;

    let mut activated = Vec::new();
    for i in 0..4 {
        let (_, sub) = app.purchase(&format!("customer-{i}"), 5).await;
        if i < 3 {
            app.licenses_assigned(&format!("msg_assign_{i}"), &sub, 5).await.expect(200);
            app.setup_confirmed(&format!("msg_setup_{i}"), &sub, 5).await.expect(200);
            // A redelivered webhook changes nothing on the topic either.
            app.setup_confirmed(&format!("msg_setup_{i}"), &sub, 5).await.expect(200);
            activated.push(sub);
        }
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "billing-system")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["fulfillment.billing"]).unwrap();
    let mut starts: HashMap<String, usize> = HashMap::new();
    while starts.values().sum::<usize>() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("the billing events reach the topic")
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_matches_schema(&event);
        let header = |name: &str| {
            message.headers().unwrap().iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| v.to_vec())
        };
        assert_eq!(header("ce_id").unwrap(), event["id"].as_str().unwrap().as_bytes());
        assert_eq!(message.key().unwrap(), event["subscriptionId"].as_str().unwrap().as_bytes());
        assert_eq!(event["type"], "billing.started");
        *starts.entry(event["subscriptionId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    // Nothing else arrives: no second start, nothing for the pending subscription.
    let extra = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await;
    assert!(extra.is_err(), "unexpected message: {:?}", extra.map(|m| m.map(|m| m.detach())));
    let mut expected: Vec<&String> = activated.iter().collect();
    let mut seen: Vec<&String> = starts.keys().collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    assert!(starts.values().all(|n| *n == 1));
    // The HTTP feed and the topic agree.
    assert_eq!(app.billing_events().await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_the_billing_relay_while_the_broker_is_down() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("fulfillment.billing", 1, 1).unwrap();
    let relay =
        RelayOptions { create_topic: false, delivery_timeout: Duration::from_secs(1), ..RelayOptions::new(&brokers) };
    let app = TestApp::spawn_with_billing_topic(Some(relay)).await;
    let ready = app.request(reqwest::Method::GET, "/readyz", None, None, &[]).await.expect(200);
    assert_eq!(ready.body["billingRelay"], true, "{}", ready.body);

    cluster.broker_down(1).unwrap();
    let (_, sub) = app.purchase("customer-1", 5).await;
    app.licenses_assigned("msg_assign", &sub, 5).await.expect(200);
    app.setup_confirmed("msg_setup", &sub, 5).await.expect(200);
    let poll = |expected: u16| {
        let app = &app;
        async move {
            for _ in 0..80 {
                let reply = app.request(reqwest::Method::GET, "/readyz", None, None, &[]).await;
                if reply.status.as_u16() == expected {
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            panic!("/readyz never answered {expected}");
        }
    };
    let not_ready = poll(503).await.expect(503);
    assert_eq!(not_ready.body["billingRelay"], false, "{}", not_ready.body);
    assert_eq!(not_ready.body["log"], true, "the embedded log is fine: {}", not_ready.body);

    cluster.broker_up(1).unwrap();
    let ready = poll(200).await;
    assert_eq!(ready.body["billingRelay"], true, "{}", ready.body);
    app.stop().await;
}
