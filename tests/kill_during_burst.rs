//! Fault test: the real `fulfillment` binary is killed with SIGKILL twice during a burst of
//! 2,000 signed webhooks that clients send with retries (connection errors and 5xx are retried
//! with the same `webhook-id`, as a publisher's sender would). After the burst:
//!
//! - every webhook got a 2xx in the end, and the log holds each fact exactly once (one
//!   purchase, one `licenses_assigned`, one `setup_confirmed` per subscription);
//! - the read model equals a fresh replay (`fulfillment verify`, embedded mode);
//! - billing started exactly once per activated subscription.
//!
//! Bounded: 1,000 subscriptions, 16 concurrent senders, loopback only, at most two minutes for
//! the burst.

mod common;

use common::process::{free_port, run, serve};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SUBSCRIPTIONS: usize = 1000;
const SENDERS: usize = 16;

/// Sends webhook `i` until it is answered 2xx; returns the answer. A 4xx is a test failure
/// (the request is valid); connection errors and 5xx are retried.
async fn deliver(client: &reqwest::Client, base: &str, id: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string().into_bytes();
    for _ in 0..2400 {
        let ts = chrono::Utc::now().timestamp();
        let sent = client
            .post(format!("{base}/webhooks/publishers/contoso"))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign(CONTOSO_SECRET, id, ts, &body))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status < 300 {
                return (status, answer);
            }
            assert!(status >= 500, "webhook {id} refused with {status}: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook {id} never accepted");
}

#[tokio::test]
async fn sigkill_during_a_burst_of_webhooks_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fulfillment.toml");
    std::fs::write(&config, test_config()).unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut server = Some(serve(port, &data, &config).await);
    let mut buyers = Vec::new();
    for sender in 0..SENDERS {
        let (client, base) = (client.clone(), base.clone());
        buyers.push(tokio::spawn(async move {
            let mut bought = Vec::new();
            for i in (sender..SUBSCRIPTIONS).step_by(SENDERS) {
                let order: Value = client
                    .post(format!("{base}/v1/customers/burst-{}/orders", i % 50))
                    .bearer_auth(PARTNER_1_KEY)
                    .json(&json!({"lineItems": [line_item(3)]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                bought.push(order["lineItems"][0]["subscriptionId"].as_str().expect("order placed").to_owned());
            }
            bought
        }));
    }
    let mut subscriptions = Vec::with_capacity(SUBSCRIPTIONS);
    for buyer in buyers {
        subscriptions.extend(buyer.await.unwrap());
    }

    // The burst: webhook 2k assigns licenses, 2k+1 confirms setup, for subscription k.
    let subscriptions = Arc::new(subscriptions);
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, base, subscriptions, next, accepted) =
            (client.clone(), base.clone(), subscriptions.clone(), next.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 2 * SUBSCRIPTIONS {
                    return answers;
                }
                let sub = &subscriptions[i / 2];
                let body = if i % 2 == 0 {
                    json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 3}})
                } else {
                    json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": 3}})
                };
                let answer = deliver(&client, &base, &format!("burst-{i}"), &body).await;
                accepted.fetch_add(1, Ordering::Relaxed);
                answers.push((i, answer));
            }
        }));
    }
    // Kill twice mid-burst, restarting on the same port and data directory each time.
    let mut kills = 0;
    for threshold in [2 * SUBSCRIPTIONS / 4, 2 * SUBSCRIPTIONS * 5 / 8] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while accepted.load(Ordering::Relaxed) < threshold {
            assert!(tokio::time::Instant::now() < deadline, "the burst stalled before {threshold} webhooks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(server.take()); // SIGKILL
        kills += 1;
        server = Some(serve(port, &data, &config).await);
    }
    let mut answers = BTreeMap::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    assert_eq!(kills, 2);
    assert_eq!(answers.len(), 2 * SUBSCRIPTIONS, "every webhook was answered 2xx in the end");

    // Billing: exactly one start per subscription (all of them were activated).
    let mut starts: HashMap<String, usize> = HashMap::new();
    let mut cursor = "0".to_owned();
    loop {
        let page: Value = client
            .get(format!("{base}/v1/billing/events?after={cursor}&limit=1000"))
            .bearer_auth(BILLING_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        for item in items {
            if item["event"]["type"] == "billing.started" {
                *starts.entry(item["event"]["subscriptionId"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
        if items.is_empty() {
            if starts.len() == SUBSCRIPTIONS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        cursor = page["nextCursor"].as_str().unwrap().to_owned();
    }
    assert!(starts.values().all(|n| *n == 1), "a subscription started billing more than once");
    drop(server.take());

    // The log: each fact exactly once per subscription.
    let export = run(&["export", "--data-dir", data.to_str().unwrap()]);
    assert!(export.0, "export failed: {}", export.2);
    let mut facts: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for line in export.1.lines() {
        let stored: Value = serde_json::from_str(line).unwrap();
        let event = &stored["envelope"];
        *facts
            .entry(event["subscriptionId"].as_str().expect("subscriptionId").to_owned())
            .or_default()
            .entry(event["type"].as_str().expect("type").to_owned())
            .or_default() += 1;
    }
    assert_eq!(facts.len(), SUBSCRIPTIONS);
    for (sub, counts) in &facts {
        assert_eq!(counts.values().sum::<usize>(), 3, "subscription {sub}: {counts:?}");
        assert!(counts.values().all(|n| *n == 1), "subscription {sub}: {counts:?}");
    }

    // The read model equals a fresh replay, and the hash chains are intact.
    let verify = run(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verify.0, "verify found a difference:\n{}\n{}", verify.1, verify.2);
}
