//! The `fulfillment` command: `fulfillment serve` runs the ingress and the projector in one
//! process, on the embedded log (SQLite) by default or on Kafka and PostgreSQL;
//! `fulfillment ingress` and `fulfillment projector` run them as separately scaled processes;
//! `replay`, `verify`, `history` and `export` audit the embedded log; `migrate` prepares
//! PostgreSQL. This file parses the command line (`config`) and dispatches.

mod audit_commands;
mod config;
mod service_commands;

use clap::Parser;
use config::{Command, Config};
use fulfillment::logging::init_tracing;
use service_commands::{directory, run};

/// Every request allocates (headers, JSON, envelopes) and frees on another thread; glibc's
/// allocator spent about a sixth of the ingest CPU on that (`fulfillment-bench ingest` under
/// perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_tracing(config.log_format);
    match config.command {
        Command::Serve(args) => run(args.service_options(directory)?).await,
        Command::Ingress(args) => run(args.service_options(directory)?).await,
        Command::Projector(args) => run(args.service_options()?).await,
        Command::Migrate(args) => service_commands::migrate(args.database).await,
        Command::Replay(args) => audit_commands::replay(args).await,
        Command::History(args) => audit_commands::history(args).await,
        Command::Export(args) => audit_commands::export(args).await,
        Command::Verify(args) => std::process::exit(audit_commands::verify(args).await as i32),
    }
}
