//! Fault test: the real `fulfillment` binary is killed with SIGKILL twice during a burst of
//! 2,000 signed webhooks that clients send with retries (connection errors and 5xx are retried
//! with the same `webhook-id`, as a publisher's sender would). After the burst:
//!
//! - every webhook got a 2xx in the end, and the log holds each fact exactly once (one
//!   purchase, one `licenses_assigned`, one `setup_confirmed` per subscription);
//! - every event id a 2xx answer named is in the log;
//! - the read model equals a fresh replay (embedded: `fulfillment verify`; Kafka + PostgreSQL:
//!   a fresh fold of the topic by a new consumer group into an empty database);
//! - billing started exactly once per activated subscription.
//!
//! The Kafka + PostgreSQL run needs a broker and PostgreSQL, so it is `#[ignore]`d for plain
//! `cargo test`; `scripts/test.sh` runs it against the Tansu 0.6 broker it starts. There the
//! killed service is restarted only after its consumer-group session timeout (6 s) has passed
//! ([`TANSU_RESTART_DELAY`]): restarted at once, it never folded again, because Tansu completed
//! the rebalance with the killed process's member as leader and handed the live member an empty
//! assignment (librdkafka's debug log: `SyncGroup response: Success (0 bytes of MemberState
//! data)`), where a Kafka coordinator drops a leader that misses its session timeout. Static
//! membership (`group.instance.id`) did not change it. Webhooks sent during the delay get
//! connection errors and are retried, as during any outage. A real Kafka should not need the
//! delay (not verified here): `FULFILLMENT_TEST_KAFKA=host:port cargo test --test kill_during_burst -- --ignored`.
//! Bounded: 1,000 subscriptions, 16 concurrent senders, loopback only, at most two minutes for
//! the burst.

mod common;

use common::process::{free_port, run, serve_command, serve_with, service_files, Server, ServiceFiles};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SUBSCRIPTIONS: usize = 1000;
const SENDERS: usize = 16;

/// How long the Kafka-mode test waits after a SIGKILL before restarting the service: past the
/// consumer-group session timeout it sets (6 s), so Tansu 0.6 has dropped the dead member
/// (see the module documentation).
const TANSU_RESTART_DELAY: Duration = Duration::from_secs(8);

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

/// What a burst left behind: the subscriptions bought and every webhook's final answer.
struct Burst {
    subscriptions: Vec<String>,
    answers: BTreeMap<usize, (u16, Value)>,
}

impl Burst {
    /// Checks that every event id a 2xx answer named is among `logged` (the log's event ids).
    fn assert_answers_logged(&self, logged: &HashSet<String>) {
        for (i, (status, answer)) in &self.answers {
            assert_eq!(*status, 200, "webhook {i}: {answer}");
            for id in answer["eventIds"].as_array().expect("eventIds") {
                assert!(logged.contains(id.as_str().unwrap()), "webhook {i} answered 2xx for {id}, not in the log");
            }
        }
    }
}

/// Starts the service with `launch` (a fresh command each time, same data every time), buys
/// the subscriptions, sends the burst and kills the service twice during it, restarting it each
/// time; returns with the service running.
async fn burst_with_two_kills(port: u16, restart_after: Duration, launch: impl Fn() -> Command) -> (Server, Burst) {
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = Some(serve_command(launch(), port).await);
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
    // Kill twice mid-burst, restarting on the same port and data each time.
    for threshold in [2 * SUBSCRIPTIONS / 4, 2 * SUBSCRIPTIONS * 5 / 8] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while accepted.load(Ordering::Relaxed) < threshold {
            assert!(tokio::time::Instant::now() < deadline, "the burst stalled before {threshold} webhooks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let billed = billing_started_count(&base).await;
        drop(server.take()); // SIGKILL
        tokio::time::sleep(restart_after).await;
        server = Some(serve_command(launch(), port).await);
        // The restarted service must fold again (its billing count moves) before the burst
        // goes on to the next kill: a restart that accepts webhooks but never projects them
        // fails here, not in a timeout at the end.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while billing_started_count(&base).await <= billed {
            assert!(tokio::time::Instant::now() < deadline, "the restarted service folded nothing in two minutes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut answers = BTreeMap::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    assert_eq!(answers.len(), 2 * SUBSCRIPTIONS, "every webhook was answered 2xx in the end");
    let subscriptions = Arc::try_unwrap(subscriptions).unwrap();
    (server.unwrap(), Burst { subscriptions, answers })
}

/// The `billing.started` events of the whole billing feed now, counted per subscription.
async fn billing_starts(base: &str) -> reqwest::Result<HashMap<String, usize>> {
    let client = reqwest::Client::new();
    let (mut starts, mut cursor) = (HashMap::new(), "0".to_owned());
    loop {
        let page: Value = client
            .get(format!("{base}/v1/billing/events?after={cursor}&limit=1000"))
            .bearer_auth(BILLING_KEY)
            .send()
            .await?
            .json()
            .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for item in items.iter().filter(|i| i["event"]["type"] == "billing.started") {
            *starts.entry(item["event"]["subscriptionId"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        if items.is_empty() || page["hasMore"] != json!(true) {
            return Ok(starts);
        }
        cursor = page["nextCursor"].as_str().unwrap().to_owned();
    }
}

/// How many `billing.started` events the feed holds now (0 while the service does not answer).
async fn billing_started_count(base: &str) -> usize {
    billing_starts(base).await.map(|starts| starts.values().sum()).unwrap_or(0)
}

/// Reads the whole billing feed until every subscription started billing; fails when one
/// started more than once.
async fn assert_billing_started_once_each(base: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let starts = billing_starts(base).await.expect("the billing feed answers");
        assert!(starts.values().all(|n| *n == 1), "a subscription started billing more than once");
        if starts.len() == SUBSCRIPTIONS {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} subscriptions started billing", starts.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that the log holds each fact exactly once per subscription, given every committed
/// envelope.
fn assert_each_fact_once<'a>(envelopes: impl Iterator<Item = &'a Value>) {
    let mut facts: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for event in envelopes {
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
}

#[tokio::test]
async fn sigkill_during_a_burst_of_webhooks_loses_nothing_and_doubles_nothing() {
    let ServiceFiles { dir: _dir, config, data } = service_files();
    let port = free_port();
    let launch = || serve_with(port, &data, &config);
    let (server, burst) = burst_with_two_kills(port, Duration::ZERO, launch).await;
    assert_eq!(burst.subscriptions.len(), SUBSCRIPTIONS);
    assert_billing_started_once_each(&format!("http://127.0.0.1:{port}")).await;
    drop(server);

    // The log: each fact exactly once per subscription.
    let export = run(&["export", "--data-dir", data.to_str().unwrap()]);
    assert!(export.0, "export failed: {}", export.2);
    let stored: Vec<Value> = export.1.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_each_fact_once(stored.iter().map(|s| &s["envelope"]));
    burst
        .assert_answers_logged(&stored.iter().map(|s| s["envelope"]["eventId"].as_str().unwrap().to_owned()).collect());

    // The read model equals a fresh replay, and the hash chains are intact.
    let verify = run(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verify.0, "verify found a difference:\n{}\n{}", verify.1, verify.2);
}

#[tokio::test]
#[ignore = "needs a Kafka broker and PostgreSQL; run by scripts/test.sh"]
async fn sigkill_during_a_burst_on_kafka_and_postgres_loses_nothing_and_doubles_nothing() {
    let log = fulfillment_log::KafkaLogOptions { partitions: 6, ..kafka::fresh_log_options() };
    let group = kafka::unique("burst-projector");
    let database = postgres::fresh_database().await;
    let ServiceFiles { dir: _dir, config, data } = service_files();
    let port = free_port();
    let billing_topic = kafka::unique("test.billing");
    let launch = || {
        let mut command = serve_with(port, &data, &config);
        command
            .env("FULFILLMENT_KAFKA_BROKERS", &log.brokers)
            .env("FULFILLMENT_DATABASE_URL", &database.url)
            .env("FULFILLMENT_EVENTS_TOPIC", &log.topic)
            .env("FULFILLMENT_EVENTS_TOPIC_PARTITIONS", log.partitions.to_string())
            .env("FULFILLMENT_CONSUMER_GROUP", &group)
            .env("FULFILLMENT_BILLING_TOPIC", &billing_topic)
            .env("FULFILLMENT_KAFKA_SESSION_TIMEOUT", "6");
        command
    };
    let (server, burst) = burst_with_two_kills(port, TANSU_RESTART_DELAY, launch).await;
    assert_billing_started_once_each(&format!("http://127.0.0.1:{port}")).await;
    let live = fulfillment_read_model::PostgresReadModel::connect(&database).await.unwrap();
    kafka::wait_until_folded(&live, &group, &log).await;
    drop(server);

    // The log: its committed events in PostgreSQL (a message in the topic whose append rolled
    // back is void there, and never folded).
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let committed: Vec<String> = sqlx::query_scalar("SELECT envelope FROM log_events WHERE outcome = 'committed'")
        .fetch_all(&pool)
        .await
        .unwrap();
    let envelopes: Vec<Value> = committed.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_each_fact_once(envelopes.iter());
    burst.assert_answers_logged(&envelopes.iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect());

    // The read model equals a fresh fold of the whole topic.
    let print = kafka::assert_equals_fresh_fold(&live, &log).await;
    assert_eq!(print.subscriptions.len(), SUBSCRIPTIONS);
}
