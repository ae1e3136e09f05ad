//! `fulfillment-bench ingest`: a reproducible load test of the embedded or the Kafka mode.
//!
//! Starts a real service (log, projector, HTTP) on loopback in a scratch directory,
//! buys `--subscriptions` subscriptions through the partner API, then sends each one a signed
//! `licenses.assigned` and `setup.confirmed` webhook from `--concurrency` concurrent
//! connections, and reports throughput, latency percentiles and how long the projector took to
//! show every billing event; then the same webhooks against an axum handler that does nothing,
//! the ceiling on this machine.

use crate::load::{
    billing_feed_page, buy_subscriptions, contoso_secret, licenses_assigned, run_phase, setup_confirmed,
    signed_webhook, Phase,
};
use crate::service::{BenchService, BenchServiceArgs, Parts};
use anyhow::bail;
use serde_json::json;
use std::time::{Duration, Instant};

/// Options of `ingest`.
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

/// Runs the ingest benchmark and prints its figures.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let bench = BenchService::new(args.service)?;
    let parts = if bench.kafka().is_some() { Parts::Ingress } else { Parts::Both };
    let service = bench.start(parts).await?;
    let base = format!("http://{}", service.addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let n = args.subscriptions;
    println!(
        "fulfillment-bench ingest: {n} subscriptions, {} webhooks, {} connections, {}",
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
    let projector = match bench.kafka() {
        Some(kafka) => {
            let store = fulfillment_read_model::PostgresReadModel::connect(&kafka.database).await?;
            let events = 3 * n as i64;
            let folding = Instant::now();
            let service = bench.start(Parts::Projector).await?;
            loop {
                let folded: i64 = store.consumed_offsets(&kafka.consumer_group, &kafka.log.topic).await?.values().sum();
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
        None => None,
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
