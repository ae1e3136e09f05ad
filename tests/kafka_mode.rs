//! The production mode with real parts: the event log in Kafka, read models in PostgreSQL.
//!
//! - Broker down: librdkafka's mock cluster (a Kafka-protocol broker on loopback inside the
//!   test) is taken down under a running service: writes answer 503 with `Retry-After`,
//!   nothing is recorded as accepted, readiness turns false, and everything recovers.
//! - Projectors sharing partitions: against a real broker (Tansu, started by
//!   `scripts/test.sh`), an ingress process appends while projector processes of one consumer
//!   group come and go: a second joins mid-stream (rebalance), the first is killed with
//!   SIGKILL mid-stream, a third starts later. The read model then equals a fresh fold of the
//!   topic, and a billing consumer of the billing topic sees exactly one `billing.started` per
//!   activated subscription.
//! - Two schedulers: two processes of one deployment, each with a projector and its deadline
//!   scheduler, clocks moved past the first term: each subscription renews once.
//!
//! Both need PostgreSQL, so they are `#[ignore]`d for plain `cargo test` and run by the test
//! script; the command-line checks at the end need nothing.

mod common;

use common::billing_schemas::assert_matches_schema;
use common::*;
use fulfillment::KafkaDeployment;
use fulfillment_log::KafkaLogOptions;
use fulfillment_read_model::{BillingFeed, BillingOutbox, PostgresOptions, PostgresReadModel};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use reqwest::Method;
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

async fn pool(options: &PostgresOptions) -> sqlx::PgPool {
    sqlx::PgPool::connect(&options.url).await.expect("connect to the test database")
}

async fn committed_events(options: &PostgresOptions, subscription: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM log_events WHERE subscription_id = $1 AND outcome = 'committed'")
        .bind(subscription)
        .fetch_one(&pool(options).await)
        .await
        .unwrap()
}

/// Polls the subscription until the projector has folded it to `status` (at most 30 s).
async fn wait_for_status(app: &TestApp, sub: &str, status: &str) {
    let mut last = serde_json::Value::Null;
    for _ in 0..60 {
        let reply = app.subscription("customer-1", sub).await;
        if reply.status.as_u16() == 200 && reply.body["status"] == status {
            return;
        }
        last = reply.body;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("subscription {sub} did not reach {status}: {last}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn broker_down_answers_503_accepts_nothing_and_recovers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let cluster = MockCluster::new(1).unwrap();
    let log = KafkaLogOptions {
        create_topic: false,
        delivery_timeout: Duration::from_secs(2),
        ..kafka::fresh_log_options_on(&cluster.bootstrap_servers())
    };
    cluster.create_topic(&log.topic, 3, 1).unwrap();
    let database = postgres::fresh_database().await;
    let app = TestApp::spawn_with(Parts::IngressAndProjector(kafka::projector(
        kafka::deployment(log, database.clone()),
        None,
    )))
    .await;

    let (_, sub) = app.purchase("customer-1", 5).await;
    app.licenses_assigned("msg_assign", &sub, 5).await.expect(200);
    assert_eq!(committed_events(&database, &sub).await, 2);
    wait_for_status(&app, &sub, "pending").await;

    cluster.broker_down(1).unwrap();
    let refused = app.setup_confirmed("msg_setup", &sub, 5).await.expect(503);
    assert!(refused.header("retry-after").is_some(), "503 without Retry-After");
    assert_eq!(committed_events(&database, &sub).await, 2, "a refused webhook must not be recorded as accepted");
    let not_ready = app.request(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(not_ready.status.as_u16(), 503, "readiness while the broker is down: {}", not_ready.body);
    assert!(app.billing_types(&sub).await.is_empty(), "billing started without the setup confirmation");

    cluster.broker_up(1).unwrap();
    let mut ready = false;
    for _ in 0..60 {
        if app.request(Method::GET, "/readyz", None, None, &[]).await.status.as_u16() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "the service did not become ready again after the broker came back");
    // The publisher retries with the same webhook id: it was never accepted, so it is now.
    app.setup_confirmed("msg_setup", &sub, 5).await.expect(200);
    assert_eq!(committed_events(&database, &sub).await, 3);
    wait_for_status(&app, &sub, "active").await;
    assert_eq!(app.billing_types(&sub).await, vec!["billing.started"]);
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn two_ingress_processes_agree_on_dedupe_and_stream_order() {
    let cluster = MockCluster::new(1).unwrap();
    let log = KafkaLogOptions { create_topic: false, ..kafka::fresh_log_options_on(&cluster.bootstrap_servers()) };
    cluster.create_topic(&log.topic, 3, 1).unwrap();
    let database = postgres::fresh_database().await;
    let deployment = kafka::deployment(log, database.clone());
    let first = std::sync::Arc::new(
        TestApp::spawn_with(Parts::IngressAndProjector(kafka::projector(deployment.clone(), None))).await,
    );
    let second = std::sync::Arc::new(TestApp::spawn_with(Parts::Ingress(deployment)).await);
    let (_, sub) = first.purchase("customer-1", 5).await;

    // The same webhook delivered to both ingress processes at once, several times, plus
    // renames racing on the same stream from both.
    let mut deliveries = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 { first.clone() } else { second.clone() };
        let sub = sub.clone();
        deliveries.push(tokio::spawn(async move {
            if i < 8 {
                let reply = app.licenses_assigned("msg_assign_once", &sub, 5).await.expect(200);
                Some(reply.body)
            } else {
                app.patch("customer-1", &sub, serde_json::json!({"friendlyName": format!("name {i}")}))
                    .await
                    .expect(200);
                None
            }
        }));
    }
    let mut answers = Vec::new();
    for delivery in deliveries {
        answers.extend(delivery.await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "different answers to one webhook id: {answers:?}");

    let pool = pool(&database).await;
    let streams: Vec<(i64, String)> = sqlx::query_as(
        "SELECT stream_version, envelope FROM log_events
         WHERE subscription_id = $1 AND outcome = 'committed' ORDER BY stream_version",
    )
    .bind(&sub)
    .fetch_all(&pool)
    .await
    .unwrap();
    let versions: Vec<i64> = streams.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, (1..=6).collect::<Vec<i64>>(), "purchase, one licenses.assigned, four renames");
    let assigned = streams.iter().filter(|(_, e)| e.contains("\"subscription.licenses_assigned\"")).count();
    assert_eq!(assigned, 1, "the webhook was accepted more than once");
    for app in [first, second] {
        std::sync::Arc::try_unwrap(app).ok().expect("no task holds the app").stop().await;
    }
}

/// A `fulfillment projector` process, logging its batches to `log_file`.
fn spawn_projector(
    database: &PostgresOptions,
    log: &KafkaLogOptions,
    group: &str,
    billing_topic: &str,
    log_file: &std::path::Path,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fulfillment"))
        .arg("projector")
        .env("FULFILLMENT_LISTEN", "127.0.0.1:0")
        .env("FULFILLMENT_KAFKA_BROKERS", &log.brokers)
        .env("FULFILLMENT_DATABASE_URL", &database.url)
        .env("FULFILLMENT_EVENTS_TOPIC", &log.topic)
        .env("FULFILLMENT_CONSUMER_GROUP", group)
        .env("FULFILLMENT_BILLING_TOPIC", billing_topic)
        .env("FULFILLMENT_BILLING_TOPIC_PARTITIONS", "3")
        .env("FULFILLMENT_PROJECTOR_BATCH", "25")
        .env("FULFILLMENT_KAFKA_SESSION_TIMEOUT", "6")
        .env("FULFILLMENT_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,fulfillment_projector=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log_file).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .expect("start fulfillment projector")
}

/// Subscriptions written so far: three of four activated (licenses, setup, a rename), the
/// fourth left pending.
#[derive(Default)]
struct Written {
    activated: HashSet<String>,
    pending: HashSet<String>,
    count: usize,
}

impl Written {
    async fn subscription(&mut self, ingress: &TestApp) {
        let i = self.count;
        self.count += 1;
        let customer = format!("customer-{i}");
        let (_, sub) = ingress.purchase(&customer, 5).await;
        if i % 4 == 3 {
            self.pending.insert(sub);
            return;
        }
        ingress.licenses_assigned(&format!("msg_assign_{i}"), &sub, 5).await.expect(200);
        ingress.setup_confirmed(&format!("msg_setup_{i}"), &sub, 5).await.expect(200);
        ingress.patch(&customer, &sub, serde_json::json!({"friendlyName": format!("renamed {i}")})).await.expect(200);
        self.activated.insert(sub);
    }
}

#[tokio::test]
#[ignore = "needs a Kafka-protocol broker and PostgreSQL (scripts/test.sh)"]
async fn projectors_share_partitions_through_a_rebalance_and_a_kill_and_equal_a_fresh_fold() {
    let log = KafkaLogOptions { partitions: 6, ..kafka::fresh_log_options() };
    let group = kafka::unique("projectors");
    let billing_topic = kafka::unique("test.billing");
    let database = postgres::fresh_database().await;
    let ingress = TestApp::spawn_with(Parts::Ingress(KafkaDeployment {
        log: log.clone(),
        consumer_group: group.clone(),
        database: database.clone(),
    }))
    .await;

    // The projectors' logs stay in target/tmp for a look after a failure.
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-projectors").join(&group);
    std::fs::create_dir_all(&logs).unwrap();
    let log_of = |n: usize| logs.join(format!("projector-{n}.log"));
    let batches = |n: usize| {
        std::fs::read_to_string(log_of(n))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("projected kafka batch"))
            .count()
    };
    let live = PostgresReadModel::connect(&database).await.unwrap();
    let mut written = Written::default();

    // 1. One instance folds the first subscriptions alone.
    let mut first = Some(spawn_projector(&database, &log, &group, &billing_topic, &log_of(1)));
    for _ in 0..8 {
        written.subscription(&ingress).await;
    }
    kafka::wait_until_folded(&live, &group, &log).await;
    assert!(batches(1) > 0, "the first projector folded nothing (logs in {})", logs.display());

    // 2. A second instance joins mid-stream: writes go on until the rebalance handed it
    //    partitions and it folded some of them.
    let mut others = vec![spawn_projector(&database, &log, &group, &billing_topic, &log_of(2))];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while batches(2) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rebalance to the second projector (logs in {})",
            logs.display()
        );
        written.subscription(&ingress).await;
    }

    // 3. The first instance is killed (SIGKILL, no leaving the group) while writes go on,
    //    most likely inside a batch; its partitions move after the session timeout.
    let folded_by_first = batches(1);
    let mut killed = first.take().unwrap();
    let writer = async {
        for _ in 0..12 {
            written.subscription(&ingress).await;
        }
    };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed.start_kill().unwrap();
        killed.wait().await.unwrap();
    };
    tokio::join!(writer, killer);
    assert!(batches(1) >= folded_by_first);

    // 4. A third instance starts (a restart), and everything gets folded.
    others.push(spawn_projector(&database, &log, &group, &billing_topic, &log_of(3)));
    for _ in 0..4 {
        written.subscription(&ingress).await;
    }
    kafka::wait_until_folded(&live, &group, &log).await;
    let Written { activated, pending, count: subscriptions } = written;

    // A fresh fold of the whole topic into a new database, by a new consumer group.
    let live_print = kafka::assert_equals_fresh_fold(&live, &log).await;
    assert_eq!(live_print.subscriptions.len(), subscriptions);

    // Billing in the store: one start per activated subscription, none for pending ones.
    let feed = live.billing_events(0, 10_000).await.unwrap();
    let mut starts: HashMap<String, usize> = HashMap::new();
    for entry in &feed {
        assert_matches_schema(&entry.event);
        if entry.event["type"] == "billing.started" {
            *starts.entry(entry.event["subscriptionId"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(starts.keys().cloned().collect::<HashSet<_>>(), activated);
    assert!(starts.values().all(|n| *n == 1), "{starts:?}");

    // A billing consumer of the topic: at least once, so it dedupes by ce_id; after that,
    // exactly one start per activated subscription.
    for _ in 0..120 {
        if live.unpublished_billing(1).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(live.unpublished_billing(1).await.unwrap().is_empty(), "the relays did not publish every billing event");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &log.brokers)
        .set("group.id", kafka::unique("billing-system"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&billing_topic]).unwrap();
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    let expected_events = feed.len();
    let mut distinct = HashSet::new();
    while distinct.len() < expected_events {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("every billing event reaches the billing topic")
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let ce_id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("ce_id header");
        assert_eq!(ce_id, event["id"].as_str().unwrap());
        distinct.insert(ce_id.clone());
        if event["type"] == "billing.started" {
            seen.entry(event["subscriptionId"].as_str().unwrap().to_owned()).or_default().insert(ce_id);
        }
    }
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), activated);
    assert!(seen.values().all(|ids| ids.len() == 1), "more than one distinct billing start: {seen:?}");
    assert!(pending.iter().all(|p| !seen.contains_key(p)));

    for mut projector in others {
        projector.start_kill().ok();
        projector.wait().await.ok();
    }
    ingress.stop().await;
}

#[test]
fn separate_processes_and_the_kafka_log_ask_for_what_they_need() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fulfillment"))
            .args(args)
            .env_remove("FULFILLMENT_KAFKA_BROKERS")
            .env_remove("FULFILLMENT_DATABASE_URL")
            .env("FULFILLMENT_LOG_FORMAT", "text")
            .output()
            .unwrap()
    };
    for command in ["ingress", "projector"] {
        let out = run(&[command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} started without Kafka and PostgreSQL");
        assert!(
            stderr.contains("--kafka-brokers")
                && stderr.contains("--database-url")
                && stderr.contains("fulfillment serve"),
            "{command}: {stderr}"
        );
    }
    let out = run(&["serve", "--kafka-brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve put the log in Kafka without PostgreSQL");
    assert!(stderr.contains("--database-url"), "{stderr}");
}

/// Two processes of one deployment, each running a projector and with it a deadline scheduler,
/// both with their clocks moved past the subscriptions' first term: every renewal is recorded
/// once (the stream version decides their races in the log's write side), never twice.
#[tokio::test]
#[ignore = "needs a Kafka broker and PostgreSQL (scripts/test.sh)"]
async fn two_schedulers_on_one_deployment_never_double_a_renewal() {
    let deployment = kafka::fresh_deployment(postgres::fresh_database().await);
    let first = TestApp::spawn_with(Parts::IngressAndProjector(kafka::projector(deployment.clone(), None))).await;
    let second = TestApp::spawn_with(Parts::IngressAndProjector(kafka::projector(deployment.clone(), None))).await;
    let mut subs = Vec::new();
    for n in 0..6 {
        let (_, sub) = first.purchase("customer-1", 2).await;
        first.licenses_assigned(&format!("l-{n}"), &sub, 2).await.expect(200);
        first.setup_confirmed(&format!("s-{n}"), &sub, 2).await.expect(200);
        subs.push(sub);
    }
    for sub in &subs {
        wait_for_status(&first, sub, "active").await;
    }
    first.advance(chrono::Duration::days(32));
    second.advance(chrono::Duration::days(32));
    let renewed = |events: &[serde_json::Value], sub: &str| {
        events.iter().filter(|e| e["subscriptionId"] == sub && e["type"] == "billing.renewed").count()
    };
    for _ in 0..120 {
        let events = first.billing_events().await;
        if subs.iter().all(|sub| renewed(&events, sub) >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give a doubled renewal every chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = first.billing_events().await;
    for sub in &subs {
        assert_eq!(renewed(&events, sub), 1, "{sub}: {:?}", first.billing_types(sub).await);
        let history = first.history("customer-1", sub).await;
        let recorded = history.iter().filter(|e| e["type"] == "subscription.renewed").count();
        assert_eq!(recorded, 1, "one renewal in the log for {sub}");
    }
    second.stop().await;
    first.stop().await;
}
