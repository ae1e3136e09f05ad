//! The client side of the benchmarks: the demo catalog's credentials, the requests a partner,
//! a publisher and a billing consumer send, and [`run_phase`], which sends many of them from
//! concurrent workers and times each ([`Phase`]).
//!
//! In: a service's base URL. Out: latencies, throughput, and the answers' bodies. Every request
//! must succeed: a failed request fails the benchmark.

use anyhow::{bail, Context};
use base64::Engine;
use fulfillment_ingress::signature::sign;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo catalog's partner (`config/demo.toml`).
const PARTNER_KEY: &str = "demo-partner-1-key-0001";
/// The demo catalog's billing consumer.
const BILLING_KEY: &str = "demo-billing-key-000001";
/// The demo catalog's publisher `contoso`, its webhook signing secret.
const CONTOSO_SECRET: &str = "whsec_ZGVtby1jb250b3NvLXdlYmhvb2stc2VjcmV0LTAwMDE=";

/// Latency and throughput of one phase.
pub struct Phase {
    /// What was sent.
    pub name: &'static str,
    /// How many requests.
    pub requests: usize,
    /// How long they took, all together.
    pub elapsed: Duration,
    /// Each one's time to its answer.
    pub latencies: Vec<Duration>,
}

impl Phase {
    #[allow(clippy::print_stdout)] // a benchmark prints its figures
    /// One line of figures: throughput and latency percentiles.
    pub fn print(&self) {
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
pub async fn run_phase<F>(
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

/// A webhook of the demo publisher `contoso`, signed with `secret` now.
pub fn signed_webhook(
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
pub async fn buy_subscriptions(
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
pub fn contoso_secret() -> anyhow::Result<Vec<u8>> {
    Ok(base64::engine::general_purpose::STANDARD.decode(&CONTOSO_SECRET["whsec_".len()..])?)
}

/// The first of the two facts billing waits for.
pub fn licenses_assigned(subscription_id: &str) -> Value {
    json!({"type": "licenses.assigned", "subscriptionId": subscription_id, "data": {"assignedCount": 5}})
}

/// The second fact: with it, billing starts.
pub fn setup_confirmed(subscription_id: &str) -> Value {
    json!({"type": "setup.confirmed", "subscriptionId": subscription_id, "data": {"planId": "standard", "quantity": 5}})
}

/// One page (up to 1,000 events) of the billing feed after `cursor`, as a billing consumer reads it.
pub async fn billing_feed_page(client: &reqwest::Client, base: &str, cursor: &str) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{base}/v1/billing/events?after={cursor}&limit=1000"))
        .bearer_auth(BILLING_KEY)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Percentile `p` (0..=1) of sorted durations, in milliseconds.
pub fn millis(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}
