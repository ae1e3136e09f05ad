//! `fulfillment bench ingest`: a reproducible load test of the embedded or the Kafka mode.
//!
//! Starts a real service (log, projector, HTTP) on loopback in a scratch directory,
//! buys `--subscriptions` subscriptions through the partner API, then sends each one a signed
//! `licenses.assigned` and `setup.confirmed` webhook from `--concurrency` concurrent
//! connections, and reports throughput, latency percentiles and how long the projector took to
//! show every billing event. Every request must succeed: a failed request fails the benchmark.

use anyhow::{bail, Context};
use base64::Engine;
use fulfillment::{load_directory, EventLogBackend, ReadModelBackend, Roles, Service, ServiceOptions};
use fulfillment_ingress::signature::sign;
use fulfillment_ingress::SystemClock;
use fulfillment_log::KafkaLogOptions;
use fulfillment_projector::KafkaProjectorOptions;
use fulfillment_read_model::PostgresOptions;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTNER_KEY: &str = "demo-partner-1-key-0001";
const BILLING_KEY: &str = "demo-billing-key-000001";
const CONTOSO_SECRET: &str = "whsec_ZGVtby1jb250b3NvLXdlYmhvb2stc2VjcmV0LTAwMDE=";

/// Where a benchmark's service keeps its log and read models (embedded when no flag is given).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchServiceArgs {
    /// Fold into read models in this PostgreSQL database (which should be empty) instead of a
    /// scratch SQLite file.
    #[arg(long, env = "FULFILLMENT_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Append to a fresh events topic on these Kafka brokers (needs --database-url).
    #[arg(long, env = "FULFILLMENT_BENCH_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// PostgreSQL connections of the service (in Kafka mode each append in flight holds one
    /// while it waits for the broker's acknowledgement).
    #[arg(long, default_value_t = 64)]
    database_max_connections: u32,
    /// Partitions of the fresh events topic (Kafka mode).
    #[arg(long, default_value_t = 12)]
    partitions: i32,
}

/// A service under test: a scratch data directory, the demo catalog, and where events and read
/// models go.
struct BenchService {
    scratch: tempfile::TempDir,
    directory: fulfillment_ingress::Directory,
    event_log: EventLogBackend,
    postgres: Option<PostgresOptions>,
}

impl BenchService {
    fn new(args: BenchServiceArgs) -> anyhow::Result<Self> {
        let scratch = tempfile::tempdir()?;
        let (directory, _) = load_directory(Path::new("/nonexistent/use-the-demo-catalog.toml"), false)?;
        let postgres = args.database_url.map(|url| PostgresOptions {
            url,
            max_connections: args.database_max_connections,
            acquire_timeout: Duration::from_secs(30),
        });
        let event_log = match args.kafka_brokers {
            None => EventLogBackend::default(),
            Some(brokers) => {
                if postgres.is_none() {
                    bail!("--kafka-brokers needs --database-url (an empty PostgreSQL database)");
                }
                let topic = format!("bench.events.{}", uuid::Uuid::new_v4().simple());
                EventLogBackend::Kafka {
                    log: KafkaLogOptions {
                        topic: topic.clone(),
                        partitions: args.partitions,
                        ..KafkaLogOptions::new(brokers.clone())
                    },
                    projector: KafkaProjectorOptions {
                        topic,
                        group: format!("bench-projector-{}", uuid::Uuid::new_v4().simple()),
                        ..KafkaProjectorOptions::new(brokers)
                    },
                }
            }
        };
        Ok(BenchService { scratch, directory, event_log, postgres })
    }

    fn kafka(&self) -> bool {
        matches!(self.event_log, EventLogBackend::Kafka { .. })
    }

    async fn start(&self, roles: Roles) -> anyhow::Result<Service> {
        Service::start(ServiceOptions {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            data_dir: self.scratch.path().to_owned(),
            roles,
            event_log: self.event_log.clone(),
            directory: self.directory.clone(),
            clock: Arc::new(SystemClock),
            projector_batch: 1000,
            read_models: self.postgres.clone().map(ReadModelBackend::Postgres).unwrap_or_default(),
            billing_relay: None,
            connection_limits: Default::default(),
            body_limits: Default::default(),
            auth_failures: Default::default(),
            public_url: None,
            idempotency_retention: Default::default(),
        })
        .await
        .map_err(Into::into)
    }

    fn describe(&self) -> String {
        match &self.event_log {
            EventLogBackend::Embedded(_) => format!("embedded SQLite log in {}", self.scratch.path().display()),
            EventLogBackend::Kafka { log, .. } => {
                format!("Kafka log on {} (topic {}, {} partitions)", log.brokers, log.topic, log.partitions)
            }
        }
    }
}

/// Options of `bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Subscriptions to buy and activate (two webhooks each).
    #[arg(long, default_value_t = 5000)]
    subscriptions: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the service keeps events and read models. In Kafka mode the ingress runs alone
    /// while the requests are sent; then a projector process's worth of work starts and folds
    /// the whole topic into PostgreSQL, timed separately.
    #[command(flatten)]
    service: BenchServiceArgs,
}

/// Latency and throughput of one phase.
struct Phase {
    name: &'static str,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    #[allow(clippy::print_stdout)] // a benchmark prints its figures
    fn print(&self) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        println!(
            "{:<22} {:>7} requests in {:>7.3} s = {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms",
            self.name,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            millis(&sorted, 0.50),
            millis(&sorted, 0.99),
            millis(&sorted, 1.0),
        );
    }
}

/// Runs `count` requests made by `make(i)` over `concurrency` workers, timing each.
async fn run_phase<F>(
    name: &'static str,
    count: usize,
    concurrency: usize,
    make: F,
) -> anyhow::Result<(Phase, Vec<Value>)>
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, next) = (make.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(results);
                }
                let sent = Instant::now();
                let response = make(i).send().await.context("request failed")?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    bail!("request {i} of {name} answered {status}: {body}");
                }
                results.push((i, sent.elapsed(), body));
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut bodies = vec![Value::Null; count];
    for worker in workers {
        for (i, latency, body) in worker.await?? {
            latencies.push(latency);
            bodies[i] = body;
        }
    }
    Ok((Phase { name, requests: count, elapsed: start.elapsed(), latencies }, bodies))
}

fn signed_webhook(
    client: &reqwest::Client,
    base: &str,
    secret: &[u8],
    id: String,
    body: Value,
) -> reqwest::RequestBuilder {
    let body = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp();
    let signature = sign(secret, &id, ts, &body);
    client
        .post(format!("{base}/webhooks/publishers/contoso"))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(body)
}

/// Buys `n` subscriptions of the demo catalog through the partner API, spread over 100
/// customers; returns the phase's figures and the subscription ids.
async fn buy_subscriptions(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<(Phase, Arc<Vec<String>>)> {
    let (c, b) = (client.clone(), base.to_owned());
    let (orders, bodies) = run_phase("partner orders", n, concurrency, move |i| {
        c.post(format!("{b}/v1/customers/bench-{}/orders", i % 100)).bearer_auth(PARTNER_KEY).json(&json!({"lineItems": [{
            "offerId": "contoso-crm", "planId": "standard", "quantity": 5, "termDuration": "P1M", "billingCycle": "monthly"
        }]}))
    })
    .await?;
    let ids = bodies.iter().map(|b| b["lineItems"][0]["subscriptionId"].as_str().unwrap_or_default().to_owned());
    Ok((orders, Arc::new(ids.collect())))
}

/// The demo publisher's webhook signing secret, decoded.
fn contoso_secret() -> anyhow::Result<Vec<u8>> {
    Ok(base64::engine::general_purpose::STANDARD.decode(&CONTOSO_SECRET["whsec_".len()..])?)
}

/// The first of the two facts billing waits for.
fn licenses_assigned(subscription_id: &str) -> Value {
    json!({"type": "licenses.assigned", "subscriptionId": subscription_id, "data": {"assignedCount": 5}})
}

/// The second fact: with it, billing starts.
fn setup_confirmed(subscription_id: &str) -> Value {
    json!({"type": "setup.confirmed", "subscriptionId": subscription_id, "data": {"planId": "standard", "quantity": 5}})
}

/// One page (up to 1,000 events) of the billing feed after `cursor`, as a billing consumer reads it.
async fn billing_feed_page(client: &reqwest::Client, base: &str, cursor: &str) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{base}/v1/billing/events?after={cursor}&limit=1000"))
        .bearer_auth(BILLING_KEY)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Runs the ingest benchmark and prints its figures.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let bench = BenchService::new(args.service)?;
    let kafka = bench.kafka();
    let roles = if kafka { Roles { ingress: true, projector: false } } else { Roles::BOTH };
    let service = bench.start(roles).await?;
    let base = format!("http://{}", service.addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let n = args.subscriptions;
    println!(
        "fulfillment bench ingest: {n} subscriptions, {} webhooks, {} connections, {}",
        2 * n,
        args.concurrency,
        bench.describe(),
    );

    let (orders, subscriptions) = buy_subscriptions(&client, &base, n, args.concurrency).await?;
    orders.print();
    let secret = contoso_secret()?;
    let (c, b, subs, key) = (client.clone(), base.clone(), subscriptions.clone(), secret.clone());
    let started = Instant::now();
    let (webhooks, _) = run_phase("signed webhooks", 2 * n, args.concurrency, move |i| {
        let sub = &subs[i / 2];
        let body = if i % 2 == 0 { licenses_assigned(sub) } else { setup_confirmed(sub) };
        signed_webhook(&c, &b, &key, format!("bench-{i}"), body)
    })
    .await?;
    webhooks.print();

    // Kafka mode: now a projector folds the whole topic into PostgreSQL.
    let projector = match (&bench.event_log, &bench.postgres) {
        (EventLogBackend::Kafka { projector, .. }, Some(database)) => {
            let store = fulfillment_read_model::PostgresReadModel::connect(database).await?;
            let events = 3 * n as i64;
            let folding = Instant::now();
            let service = bench.start(Roles { ingress: false, projector: true }).await?;
            loop {
                let folded: i64 = store.consumed_offsets(&projector.group, &projector.topic).await?.values().sum();
                if folded >= events {
                    break;
                }
                if folding.elapsed() > Duration::from_secs(600) {
                    bail!("the projector folded only {folded} of {events} messages in 10 minutes");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let elapsed = folding.elapsed();
            println!(
                "{:<22} {events} events from Kafka folded into PostgreSQL in {:.3} s = {:.0} events/s (batch 1000, incl. joining the group)",
                "projector",
                elapsed.as_secs_f64(),
                events as f64 / elapsed.as_secs_f64()
            );
            store.close().await;
            Some(service)
        }
        _ => None,
    };

    // Wait until every activation shows in the billing feed.
    let mut seen = 0usize;
    let mut cursor = "0".to_owned();
    while seen < n {
        let page = billing_feed_page(&client, &base, &cursor).await?;
        let items = page["items"].as_array().map(Vec::len).unwrap_or(0);
        seen += items;
        cursor = page["nextCursor"].as_str().unwrap_or(&cursor).to_owned();
        if items == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("billing feed shows only {seen} of {n} activations after 10 minutes");
        }
    }
    println!(
        "{:<22} {n} billing.started events visible in the feed {:.3} s after the first webhook was sent",
        "billing feed",
        started.elapsed().as_secs_f64()
    );
    service.stop().await;
    if let Some(projector) = projector {
        projector.stop().await;
    }

    // The ceiling on this machine: the same requests from the same client against an axum
    // handler that does nothing, so the figure above can be read as a share of it.
    let noop = axum::Router::new()
        .route("/webhooks/publishers/{publisher}", axum::routing::post(|| async { axum::Json(json!({})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let noop_base = format!("http://{}", listener.local_addr()?);
    let noop_server = tokio::spawn(async move { axum::serve(listener, noop).await });
    let (c, b, subs) = (client.clone(), noop_base, subscriptions.clone());
    let (baseline, _) = run_phase("no-op axum handler", 2 * n, args.concurrency, move |i| {
        let body = licenses_assigned(&subs[i / 2]);
        signed_webhook(&c, &b, &secret, format!("noop-{i}"), body)
    })
    .await?;
    noop_server.abort();
    baseline.print();
    let rate = |phase: &Phase| phase.requests as f64 / phase.elapsed.as_secs_f64();
    println!(
        "{:<22} signed webhooks at {:.1}% of the no-op handler's rate on this machine",
        "ratio",
        100.0 * rate(&webhooks) / rate(&baseline)
    );
    println!("peak memory {} MiB", fulfillment::peak_memory_mib());
    Ok(())
}

/// Options of `bench e2e`.
#[derive(Debug, clap::Args)]
pub struct EndToEndArgs {
    /// Activations per second, sent at a steady pace whatever the answers' latency (an open
    /// loop, so a slow answer cannot hide later ones).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to keep the pace.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Where the service keeps events and read models (ingress and projector in one process).
    #[command(flatten)]
    service: BenchServiceArgs,
}

/// Percentile `p` (0..=1) of sorted durations, in milliseconds.
fn millis(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}

/// Measures webhook received → billing event visible in the feed at a steady rate: buys
/// `rate × seconds` subscriptions and assigns their licenses (not timed), then sends one signed
/// `setup.confirmed` every `1/rate` s — each one starts billing — while a billing consumer reads
/// the feed as fast as it answers. Latency is from the instant a webhook was due to be sent to
/// the instant its `billing.started` came back from the feed.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn end_to_end(args: EndToEndArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be at least 1");
    }
    let bench = BenchService::new(args.service)?;
    let service = bench.start(Roles::BOTH).await?;
    let base = format!("http://{}", service.addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let n = (args.rate * args.seconds) as usize;
    println!(
        "fulfillment bench e2e: {} activations/s for {} s ({n} subscriptions), {}",
        args.rate,
        args.seconds,
        bench.describe()
    );
    let (_, subscriptions) = buy_subscriptions(&client, &base, n, 64).await?;
    let secret = contoso_secret()?;
    let (c, b, subs, key) = (client.clone(), base.clone(), subscriptions.clone(), secret.clone());
    run_phase("licenses (setup)", n, 64, move |i| {
        signed_webhook(&c, &b, &key, format!("e2e-licenses-{i}"), licenses_assigned(&subs[i]))
    })
    .await?;
    // Start the feed where it is now: only the billing events of the timed phase count.
    let mut cursor = "0".to_owned();
    loop {
        let page = billing_feed_page(&client, &base, &cursor).await?;
        cursor = page["nextCursor"].as_str().unwrap_or(&cursor).to_owned();
        if page["hasMore"] != json!(true) {
            break;
        }
    }

    // The billing consumer: reads the feed without pause, noting when each subscription's
    // billing.started first shows.
    let index: Arc<std::collections::HashMap<String, usize>> =
        Arc::new(subscriptions.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect());
    let (c, b, ids) = (client.clone(), base.clone(), index.clone());
    let consumer = tokio::spawn(async move {
        let mut seen: Vec<Option<Instant>> = vec![None; ids.len()];
        let mut remaining = ids.len();
        let deadline = Instant::now() + Duration::from_secs(600);
        while remaining > 0 {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} billing events showed in the feed in 10 minutes",
                    ids.len() - remaining,
                    ids.len()
                );
            }
            let page = billing_feed_page(&c, &b, &cursor).await?;
            let arrived = Instant::now();
            let items = page["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                let event = &item["event"];
                if event["type"] != json!("billing.started") {
                    continue;
                }
                let subscription = event["subscriptionId"].as_str().unwrap_or_default();
                if let Some(&i) = ids.get(subscription) {
                    if seen[i].is_none() {
                        seen[i] = Some(arrived);
                        remaining -= 1;
                    }
                }
            }
            cursor = page["nextCursor"].as_str().unwrap_or(&cursor).to_owned();
            if items.is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok::<_, anyhow::Error>(seen)
    });

    // The steady sender: webhook i is due at start + i/rate, sent on its own task.
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let start = Instant::now() + Duration::from_millis(50);
    let due = |i: usize| start + period * i as u32;
    let mut sends = Vec::with_capacity(n);
    for (i, subscription) in subscriptions.iter().enumerate() {
        tokio::time::sleep_until(due(i).into()).await;
        let request = signed_webhook(&client, &base, &secret, format!("e2e-setup-{i}"), setup_confirmed(subscription));
        sends.push(tokio::spawn(async move {
            let response = request.send().await.context("webhook failed")?;
            let answered = Instant::now();
            if !response.status().is_success() {
                bail!("webhook {i} answered {}: {}", response.status(), response.text().await.unwrap_or_default());
            }
            Ok::<_, anyhow::Error>(answered)
        }));
    }
    let sent_for = start.elapsed();
    let mut answers = Vec::with_capacity(n);
    for (i, send) in sends.into_iter().enumerate() {
        answers.push(send.await?? - due(i));
    }
    let seen = consumer.await??;
    let mut visible: Vec<Duration> =
        seen.iter().enumerate().map(|(i, at)| at.map(|at| at - due(i)).unwrap_or_default()).collect();
    answers.sort();
    visible.sort();
    println!(
        "{:<22} {n} webhooks in {:.2} s = {:.0}/s",
        "paced",
        sent_for.as_secs_f64(),
        n as f64 / sent_for.as_secs_f64()
    );
    for (name, sorted) in [("webhook answered", &answers), ("billing event in feed", &visible)] {
        println!(
            "{name:<22} p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            millis(sorted, 0.50),
            millis(sorted, 0.90),
            millis(sorted, 0.99),
            millis(sorted, 1.0)
        );
    }
    println!("peak memory {} MiB", fulfillment::peak_memory_mib());
    service.stop().await;
    Ok(())
}

/// Options of `bench generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Events to write (four per subscription: purchased, licenses assigned, setup confirmed,
    /// quantity changed).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Data directory to create the log in (must not hold one yet).
    #[arg(long)]
    data_dir: std::path::PathBuf,
}

/// Writes a synthetic but valid event log, for replay and verify figures.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    use fulfillment_core::{
        BillingCycle, Event, EventEnvelope, Purchase, Source, SourceKind, SubscriptionId, Term, EVENT_SCHEMA_VERSION,
    };
    use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
    let path = args.data_dir.join("events.sqlite");
    if path.exists() {
        bail!("{} already exists; generate into a new directory", path.display());
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await?;
    let started = Instant::now();
    let subscriptions = args.events.div_ceil(4);
    let mut written = 0u64;
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let mut n = 0u64;
    while n < subscriptions {
        let mut batch = AppendBatch::default();
        for _ in 0..250 {
            if n >= subscriptions || written >= args.events {
                break;
            }
            let id = SubscriptionId(uuid::Uuid::new_v4());
            let at = base + chrono::Duration::milliseconds(n as i64);
            let partner = Source { kind: SourceKind::Partner, actor_id: format!("partner-{}", n % 50) };
            let publisher = Source { kind: SourceKind::Publisher, actor_id: "contoso".into() };
            let events = [
                (
                    partner.clone(),
                    Event::SubscriptionPurchased(Purchase {
                        order_id: uuid::Uuid::new_v4(),
                        line_item_number: 0,
                        customer_id: format!("customer-{}", n % 10_000),
                        partner_id: partner.actor_id.clone(),
                        publisher_id: "contoso".into(),
                        offer_id: "contoso-crm".into(),
                        plan_id: "standard".into(),
                        quantity: 5,
                        term: Term::P1M,
                        billing_cycle: BillingCycle::Monthly,
                        auto_renew: true,
                        friendly_name: format!("subscription {n}"),
                        indirect_reseller_mpn_id: None,
                        authorization_code: format!("code-{n}-{}", uuid::Uuid::new_v4().simple()),
                        cancellation_allowed_until: at + chrono::Duration::hours(72),
                    }),
                ),
                (publisher.clone(), Event::LicensesAssigned { assigned_count: 5 }),
                (publisher, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 5 }),
                (partner, Event::QuantityChanged { previous_quantity: 5, quantity: 8 }),
            ];
            let take = (args.events - written).min(4) as usize;
            let envelopes: Vec<EventEnvelope> = events
                .into_iter()
                .take(take)
                .map(|(source, event)| EventEnvelope {
                    event_id: uuid::Uuid::now_v7(),
                    subscription_id: id,
                    schema_version: EVENT_SCHEMA_VERSION,
                    source,
                    occurred_at: at,
                    recorded_at: at,
                    event,
                })
                .collect();
            written += envelopes.len() as u64;
            batch.streams.push(StreamAppend { subscription_id: id, expected_version: 0, events: envelopes });
            n += 1;
        }
        log.append(batch).await?;
    }
    println!(
        "wrote {written} events for {subscriptions} subscriptions into {} in {:.2} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Options of `bench fold`.
#[derive(Debug, clap::Args)]
pub struct FoldArgs {
    /// Data directory holding the event log to fold (for example one `bench generate` wrote).
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// Fold into this PostgreSQL database, which must not hold a folded model yet; without it,
    /// into a scratch SQLite file.
    #[arg(long, env = "FULFILLMENT_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Events per projector transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

/// Folds a whole log into a fresh read-model store, the projector's own code path, and prints
/// events per second: the projector's throughput on SQLite or PostgreSQL.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn fold(args: FoldArgs) -> anyhow::Result<()> {
    use fulfillment_audit::replay::{rebuild, Until};
    use fulfillment_audit::Silent;
    use fulfillment_read_model::{PostgresReadModel, ReadModels, SqliteReadModel};
    let path = args.data_dir.join("events.sqlite");
    let log = fulfillment_log::SqliteEventLog::open_read_only(&path)
        .await
        .with_context(|| format!("opening the event log {}", path.display()))?;
    let scratch = tempfile::tempdir()?;
    let (store, backend): (Box<dyn ReadModels>, &str) = match &args.database_url {
        Some(url) => {
            let options =
                PostgresOptions { url: url.clone(), max_connections: 2, acquire_timeout: Duration::from_secs(30) };
            (Box::new(PostgresReadModel::connect(&options).await?), "PostgreSQL")
        }
        // The live projector's store (every batch durable), not a replay target's.
        None => (Box::new(SqliteReadModel::open(&scratch.path().join("read_model.sqlite")).await?), "SQLite"),
    };
    if store.position().await? != 0 {
        bail!("the target already holds a folded model; point --database-url at an empty database");
    }
    let report = rebuild(&log, store.as_ref(), Until::Head, args.batch, &mut Silent).await?;
    println!(
        "folded {} events into {backend} in {:.2} s: {:.0} events/s (batch {}), peak memory {} MiB",
        report.events,
        report.elapsed.as_secs_f64(),
        report.rate(),
        args.batch,
        fulfillment::peak_memory_mib()
    );

    // The baseline: the rows the fold wrote (subscription states and billing events), written
    // again by a plain batched insert into a two-column table of the same database kind, the
    // same number of rows per transaction. The ratio says what folding costs beyond writing.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut after = None;
    loop {
        let page = store.publisher_subscriptions("contoso", after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for subscription in &page {
            rows.push((subscription.id.to_string(), serde_json::to_string(subscription)?));
        }
    }
    let mut cursor = 0;
    loop {
        let page = store.billing_events(cursor, 1000).await?;
        let Some(last) = page.last() else { break };
        cursor = last.sequence;
        rows.extend(page.iter().map(|e| (format!("billing-{}", e.sequence), e.event.to_string())));
    }
    let started = Instant::now();
    match &args.database_url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS bench_baseline (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            for chunk in rows.chunks(args.batch.max(1)) {
                let mut tx = pool.begin().await?;
                let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new("INSERT INTO bench_baseline (k, v) ");
                insert.push_values(chunk, |mut row, (k, v)| {
                    row.push_bind(k).push_bind(v);
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
            sqlx::query("DROP TABLE bench_baseline").execute(&pool).await?;
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(scratch.path().join("baseline.sqlite"))
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            sqlx::query("CREATE TABLE bench_baseline (k TEXT PRIMARY KEY, v TEXT NOT NULL)").execute(&pool).await?;
            // SQLite binds at most 32,766 parameters per statement: 2 per row.
            for chunk in rows.chunks(args.batch.clamp(1, 16_000)) {
                let mut tx = pool.begin().await?;
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bench_baseline (k, v) ");
                insert.push_values(chunk, |mut row, (k, v)| {
                    row.push_bind(k).push_bind(v);
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
    }
    let baseline = started.elapsed();
    println!(
        "plain batched insert of the {} rows the fold wrote: {:.2} s; the fold took {:.1}x as long",
        rows.len(),
        baseline.as_secs_f64(),
        report.elapsed.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
    Ok(())
}
