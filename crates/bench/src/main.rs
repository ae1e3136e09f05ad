//! `fulfillment-bench`: measures the service on this machine and prints the figures
//! (BENCHMARKS.md records them). It is a tool beside the product, not part of it: the
//! `fulfillment` binary carries no load generator and no demo credentials of its own.
//!
//! - `ingest`: partner orders and signed webhooks per second against a service on loopback;
//! - `e2e`: webhook received → billing event visible in the feed, at a steady rate;
//! - `generate`: a synthetic event log (for replay and verify figures);
//! - `fold`: a whole log folded into a fresh read-model store (projector events/s);
//! - `deadlines`: deadlines reached per second when many fall due at once (the scheduler);
//! - `usage`: accepted usage events per second through the Metering API's `batchUsageEvent`.
//!
//! The service is started in-process through the `fulfillment` library ([`service`]), on the
//! demo catalog, in a scratch directory or on the Kafka brokers and PostgreSQL database named.

mod deadlines;
mod e2e;
mod fold;
mod generate;
mod ingest;
mod load;
mod service;
mod usage;

use clap::{Parser, Subcommand};
use fulfillment::logging::{init_tracing, LogFormat};

/// The service's allocator: the figures must be the service's own (glibc's malloc took about a
/// sixth of the ingest CPU, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure the fulfillment service on this machine and print the figures.
#[derive(Debug, Parser)]
#[command(name = "fulfillment-bench", version, about)]
struct Cli {
    /// Log format: `text` for people, `json` for collectors; `auto` picks text on a terminal.
    #[arg(long, env = "FULFILLMENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Partner orders and signed webhooks per second against a service on loopback.
    Ingest(ingest::IngestArgs),
    /// Webhook received → billing event visible in the feed, at a steady rate: latency
    /// percentiles.
    E2e(e2e::EndToEndArgs),
    /// Write a synthetic event log (for replay figures).
    Generate(generate::GenerateArgs),
    /// Fold a whole log into a fresh SQLite or PostgreSQL read-model store: projector events/s.
    Fold(fold::FoldArgs),
    /// Deadlines reached per second when many fall due at once: the scheduler's throughput.
    Deadlines(deadlines::DeadlinesArgs),
    /// Accepted usage events per second through the Metering API (batches of 25).
    Usage(usage::UsageArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The service's log lines, as the service writes them (the figures go to standard output).
    init_tracing(cli.log_format);
    match cli.command {
        Command::Ingest(args) => ingest::ingest(args).await,
        Command::E2e(args) => e2e::end_to_end(args).await,
        Command::Generate(args) => generate::generate(args).await,
        Command::Fold(args) => fold::fold(args).await,
        Command::Deadlines(args) => deadlines::deadlines(args).await,
        Command::Usage(args) => usage::usage(args).await,
    }
}
