//! `fulfillment-bench deadlines`: how fast the scheduler reaches deadlines when many fall due
//! at once (a month-end, or a restart after an outage). Writes `--subscriptions` active monthly
//! subscriptions whose first term ended 31 days ago into a fresh embedded log, folds them into
//! a fresh read model, and times one scheduler sweep (every subscription renews once).
//!
//! The baseline, in the same run on the same log: as many single-event appends at the same
//! concurrency, without reading a state or deciding anything. The ratio says what the
//! scheduler costs beyond the log's own append rate.

use anyhow::{bail, Context};
use chrono::{Duration as Days, Utc};
use fulfillment_core::{Event, EventEnvelope, Source, SourceKind, SubscriptionId, EVENT_SCHEMA_VERSION};
use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
use fulfillment_read_model::SqliteReadModel;
use fulfillment_scheduler::{Now, Scheduler, SchedulerOptions};
use futures_util::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Options of `deadlines`.
#[derive(Debug, clap::Args)]
pub struct DeadlinesArgs {
    /// Subscriptions whose term ends at once.
    #[arg(long, default_value_t = 100_000)]
    subscriptions: usize,
    /// Subscriptions the scheduler reaches at once (its default is 64).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// Writes the subscriptions, folds them, and prints the sweep's rate beside the baseline's.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn deadlines(args: DeadlinesArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let log = Arc::new(SqliteEventLog::open(&scratch.path().join("events.sqlite"), SqliteLogOptions::default()).await?);
    let store = Arc::new(SqliteReadModel::open(&scratch.path().join("read_model.sqlite")).await?);
    let bought_at = Utc::now() - Days::days(62);
    write_subscriptions(log.as_ref(), args.subscriptions, bought_at).await?;
    let report = fulfillment_audit::replay::rebuild(
        log.as_ref(),
        store.as_ref(),
        fulfillment_audit::replay::Until::Head,
        5000,
        &mut fulfillment_audit::Silent,
    )
    .await?;
    println!(
        "wrote and folded {} subscriptions ({} events), first terms ended 31 days ago",
        args.subscriptions, report.events
    );

    let baseline = timed_plain_appends(log.as_ref(), args.subscriptions, args.concurrency).await?;
    let now: Now = Arc::new(move || bought_at + Days::days(32));
    let options = SchedulerOptions { concurrency: args.concurrency, ..SchedulerOptions::default() };
    let scheduler = Scheduler::new(log.clone(), store.clone(), now, options);
    let started = Instant::now();
    let sweep = scheduler.sweep(&CancellationToken::new()).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if sweep.reached as usize != args.subscriptions {
        bail!("the sweep reached {} deadlines of {}", sweep.reached, args.subscriptions);
    }
    let rate = sweep.reached as f64 / elapsed;
    println!(
        "scheduler: {} deadlines due at once reached in {elapsed:.2} s: {rate:.0} deadlines/s (concurrency {})",
        sweep.reached, args.concurrency
    );
    println!(
        "baseline: {} single-event appends at the same concurrency in {:.2} s: {:.0} appends/s; the scheduler reaches {:.2}x that rate",
        args.subscriptions,
        baseline,
        args.subscriptions as f64 / baseline,
        rate / (args.subscriptions as f64 / baseline)
    );
    println!("peak memory {} MiB", fulfillment::peak_memory_mib());
    Ok(())
}

fn envelope(id: SubscriptionId, source: &Source, at: chrono::DateTime<Utc>, event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        subscription_id: id,
        schema_version: EVENT_SCHEMA_VERSION,
        source: source.clone(),
        occurred_at: at,
        recorded_at: at,
        event,
    }
}

/// `count` monthly subscriptions bought and activated at `at`, 500 streams an append; returns
/// their ids.
pub(crate) async fn write_subscriptions(
    log: &dyn EventLog,
    count: usize,
    at: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<SubscriptionId>> {
    let partner = Source { kind: SourceKind::Partner, actor_id: "partner-1".into() };
    let publisher = Source { kind: SourceKind::Publisher, actor_id: "contoso".into() };
    let mut written = Vec::with_capacity(count);
    while written.len() < count {
        let streams = (written.len()..count.min(written.len() + 500))
            .map(|n| {
                let id = SubscriptionId(uuid::Uuid::new_v4());
                let events = vec![
                    envelope(id, &partner, at, crate::generate::purchase_event(n, &partner.actor_id, at)),
                    envelope(id, &publisher, at, Event::LicensesAssigned { assigned_count: 5 }),
                    envelope(id, &publisher, at, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 5 }),
                ];
                StreamAppend { subscription_id: id, expected_version: 0, events }
            })
            .collect::<Vec<_>>();
        written.extend(streams.iter().map(|s| s.subscription_id));
        log.append(AppendBatch { streams, idempotency: None }).await.context("writing the subscriptions")?;
    }
    Ok(written)
}

/// Seconds `count` single-event appends to fresh streams take at `concurrency`.
async fn timed_plain_appends(log: &dyn EventLog, count: usize, concurrency: usize) -> anyhow::Result<f64> {
    let system = Source { kind: SourceKind::System, actor_id: "bench".into() };
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..count)
        .map(|_| {
            let id = SubscriptionId(uuid::Uuid::new_v4());
            let event = envelope(id, &system, Utc::now(), Event::AutoRenewChanged { auto_renew: false });
            let append = StreamAppend { subscription_id: id, expected_version: 0, events: vec![event] };
            log.append(AppendBatch { streams: vec![append], idempotency: None })
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for result in results {
        result.context("baseline append")?;
    }
    Ok(started.elapsed().as_secs_f64())
}
