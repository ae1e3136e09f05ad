//! `fulfillment-bench usage`: accepted usage events per second through the Metering API's
//! `batchUsageEvent` (25 events a request), on the embedded default.
//!
//! Writes `--subscriptions` active subscriptions (bought and activated two days ago) into a
//! fresh embedded log, starts the real service on it, and reports one `apicalls` usage event per
//! subscription and hour for the last 24 hours (the most the marketplace's rules accept: one
//! per dimension and hour, at most 24 hours late), 25 to a batch, each batch spanning 25
//! subscriptions; every item must come back `Accepted`. Then single `usageEvent` requests, and
//! how long until the billing feed shows every `billing.usage`.
//!
//! The baseline, in the same run from the same client: the same batch requests against an axum
//! handler that does nothing, the ceiling on this machine.

use crate::load::{billing_feed_page, run_phase, Phase};
use crate::service::{BenchService, BenchServiceArgs, Parts};
use anyhow::bail;
use chrono::{DateTime, Duration as Hours, Utc};
use fulfillment_log::{SqliteEventLog, SqliteLogOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo publisher's SaaS API token (`config/demo.toml`).
const CONTOSO_TOKEN: &str = "demo-contoso-token-0001";
/// Events per `batchUsageEvent` request (the spec's maximum).
const BATCH: usize = 25;
/// Hours each subscription reports usage for (the reporting window).
const HOURS: usize = 24;

/// Options of `usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Active subscriptions to report usage for (24 events each through batches).
    #[arg(long, default_value_t = 4_000)]
    subscriptions: usize,
    /// Further subscriptions that get single `usageEvent` requests (5 each).
    #[arg(long, default_value_t = 1_000)]
    single_subscriptions: usize,
    /// Concurrent client connections (as `ingest`).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// Runs the usage benchmark and prints its figures.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let bench = BenchService::new(BenchServiceArgs::embedded())?;
    let activated_at = Utc::now() - Hours::days(2);
    let ids = write_active_subscriptions(&bench, args.subscriptions + args.single_subscriptions, activated_at).await?;
    let (batch_ids, single_ids) = ids.split_at(args.subscriptions);
    let service = bench.start(Parts::Both).await?;
    let base = format!("http://{}", service.addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let now = Utc::now();
    let events = args.subscriptions * HOURS;
    println!(
        "fulfillment-bench usage: {events} usage events in batches of {BATCH} over {} subscriptions, {} connections, {}",
        args.subscriptions,
        args.concurrency,
        bench.describe()
    );

    let batches = Arc::new(batch_bodies(batch_ids, now));
    let (c, b, bodies) = (client.clone(), base.clone(), batches.clone());
    let started = Instant::now();
    let (batched, answers) = run_phase("batchUsageEvent", bodies.len(), args.concurrency, move |i| {
        post(&c, &b, "batchUsageEvent", &bodies[i])
    })
    .await?;
    let accepted = count_accepted(&answers);
    if accepted != events {
        bail!("{accepted} of {events} usage events were accepted");
    }
    batched.print();
    let rate = |phase: &Phase, per_request: usize| (phase.requests * per_request) as f64 / phase.elapsed.as_secs_f64();
    println!("{:<22} {accepted} usage events accepted: {:.0} events/s", "accepted", rate(&batched, BATCH));

    let singles: Arc<Vec<Value>> = Arc::new(
        single_ids.iter().flat_map(|id| (1..=5).map(move |h| usage_event(id, now - Hours::hours(h)))).collect(),
    );
    let (c, b, bodies) = (client.clone(), base.clone(), singles.clone());
    let (single, _) =
        run_phase("usageEvent", bodies.len(), args.concurrency, move |i| post(&c, &b, "usageEvent", &bodies[i]))
            .await?;
    single.print();

    let billed = wait_for_billing(&client, &base, events + singles.len(), started).await?;
    println!(
        "{:<22} {} billing.usage events visible in the feed {billed:.3} s after the first batch was sent",
        "billing feed",
        events + singles.len()
    );
    service.stop().await;

    let noop = axum::Router::new()
        .route("/api/batchUsageEvent", axum::routing::post(|| async { axum::Json(json!({"result": [], "count": 0})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let noop_base = format!("http://{}", listener.local_addr()?);
    let noop_server = tokio::spawn(async move { axum::serve(listener, noop).await });
    let (c, bodies) = (client.clone(), batches.clone());
    let (baseline, _) = run_phase("no-op axum handler", bodies.len(), args.concurrency, move |i| {
        post(&c, &noop_base, "batchUsageEvent", &bodies[i])
    })
    .await?;
    noop_server.abort();
    baseline.print();
    println!(
        "{:<22} batchUsageEvent requests at {:.1}% of the no-op handler's rate on this machine",
        "ratio",
        100.0 * rate(&batched, 1) / rate(&baseline, 1)
    );
    println!("peak memory {} MiB", fulfillment::peak_memory_mib());
    Ok(())
}

/// Writes `count` subscriptions activated at `at` into the service's (not yet started) log.
async fn write_active_subscriptions(
    bench: &BenchService,
    count: usize,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let log = SqliteEventLog::open(&bench.data_dir().join("events.sqlite"), SqliteLogOptions::default()).await?;
    let ids = crate::deadlines::write_subscriptions(&log, count, at).await?;
    Ok(ids.iter().map(|id| id.to_string()).collect())
}

/// One usage event of `apicalls` for subscription `id` at `at`.
fn usage_event(id: &str, at: DateTime<Utc>) -> Value {
    json!({"resourceId": id, "quantity": 1.5, "dimension": "apicalls", "effectiveStartTime": at.to_rfc3339(), "planId": "standard"})
}

/// The batch bodies: hour by hour, each batch 25 subscriptions' usage of one hour.
fn batch_bodies(ids: &[String], now: DateTime<Utc>) -> Vec<Value> {
    let items: Vec<Value> = (1..=HOURS as i64)
        .flat_map(|hour| ids.iter().map(move |id| usage_event(id, now - Hours::hours(hour) + Hours::minutes(1))))
        .collect();
    items.chunks(BATCH).map(|chunk| json!({ "request": chunk })).collect()
}

fn post(client: &reqwest::Client, base: &str, operation: &str, body: &Value) -> reqwest::RequestBuilder {
    client.post(format!("{base}/api/{operation}?api-version=2018-08-31")).bearer_auth(CONTOSO_TOKEN).json(body)
}

/// Items answered `Accepted` in all the batch answers.
fn count_accepted(answers: &[Value]) -> usize {
    answers
        .iter()
        .flat_map(|a| a["result"].as_array().into_iter().flatten())
        .filter(|item| item["status"] == "Accepted")
        .count()
}

/// Seconds from `started` until the billing feed holds `usage` `billing.usage` events.
async fn wait_for_billing(client: &reqwest::Client, base: &str, usage: usize, started: Instant) -> anyhow::Result<f64> {
    let (mut seen, mut cursor) = (0usize, "0".to_owned());
    while seen < usage {
        let page = billing_feed_page(client, base, &cursor).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        seen += items.iter().filter(|i| i["event"]["type"] == "billing.usage").count();
        cursor = page["nextCursor"].as_str().unwrap_or(&cursor).to_owned();
        if items.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the billing feed shows only {seen} of {usage} usage events after 10 minutes");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}
