//! `fulfillment-bench e2e`: webhook received → billing event visible in the feed, at a steady
//! rate (an open loop), as latency percentiles, with ingress and projector in one process.

use crate::load::{
    billing_feed_page, buy_subscriptions, contoso_secret, licenses_assigned, millis, run_phase, setup_confirmed,
    signed_webhook,
};
use crate::service::{BenchService, BenchServiceArgs, Parts};
use anyhow::{bail, Context};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `e2e`.
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
    let service = bench.start(Parts::Both).await?;
    let base = format!("http://{}", service.addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let n = (args.rate * args.seconds) as usize;
    println!(
        "fulfillment-bench e2e: {} activations/s for {} s ({n} subscriptions), {}",
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
