//! The `fulfillment` command: `fulfillment serve` runs the ingress and the projector on the
//! embedded log (SQLite) in one process.

mod audit_commands;
mod bench;

use clap::{Parser, Subcommand, ValueEnum};
use fulfillment::{load_directory, DirectorySource, Service, ServiceOptions, DEMO_CONFIG};
use fulfillment_ingress::SystemClock;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

/// Event-sourced fulfillment for commercial-marketplace SaaS subscriptions.
#[derive(Debug, Parser)]
#[command(name = "fulfillment", version, about)]
struct Config {
    /// Log format: `text` for people, `json` for collectors; `auto` picks text on a terminal.
    #[arg(long, env = "FULFILLMENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP ingress and the projector in one process on the embedded event log.
    Serve(ServeArgs),
    /// Rebuild the read models from the first event into a new store (optionally up to a
    /// position or instant), and optionally swap it in for the live one.
    Replay(audit_commands::ReplayArgs),
    /// Replay into a scratch store, compare with the live read models, check the hash chains.
    /// Exit 0 when equal and intact, 1 otherwise.
    Verify(audit_commands::VerifyArgs),
    /// One subscription's timeline from the log.
    History(audit_commands::HistoryArgs),
    /// Raw envelopes as JSON lines (streaming), for audits.
    Export(audit_commands::ExportArgs),
    /// Measure the service on this machine and print the figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Partner orders and signed webhooks per second against an embedded service on loopback.
    Ingest(bench::IngestArgs),
    /// Write a synthetic event log (for replay figures).
    Generate(bench::GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the event log and the read models.
    #[arg(long, env = "FULFILLMENT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Partners, publishers, offers and credentials (TOML). Without it, ./fulfillment.toml is
    /// used when present, else the public demo catalog.
    #[arg(long, env = "FULFILLMENT_CONFIG")]
    config: Option<PathBuf>,
    /// Events folded per projector transaction.
    #[arg(long, env = "FULFILLMENT_PROJECTOR_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    projector_batch: u64,
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Tells the operator that public demo credentials are live, and what they are.
fn announce_demo() {
    warn!(
        "no configuration file found: serving the public DEMO catalog (config/demo.toml); do not expose this instance"
    );
    for line in DEMO_CONFIG.lines().filter(|l| {
        l.contains("api_keys") || l.contains("webhook_secrets") || l.contains("api_tokens") || l.starts_with("id =")
    }) {
        info!(demo = %line.trim(), "demo configuration");
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let explicit = args.config.is_some();
    let path = args.config.unwrap_or_else(|| PathBuf::from("fulfillment.toml"));
    let (directory, source) = load_directory(&path, explicit)?;
    match &source {
        DirectorySource::Demo => announce_demo(),
        DirectorySource::File(p) => info!(config = %p.display(), "configuration loaded"),
    }
    let service = Service::start(ServiceOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        directory,
        clock: Arc::new(SystemClock),
        projector_batch: args.projector_batch as usize,
    })
    .await?;
    let stop = service.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        stop.cancel();
    });
    service.run_until_stopped().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_tracing(config.log_format);
    match config.command {
        Command::Serve(args) => serve(args).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args).await,
        Command::Bench(BenchCommand::Generate(args)) => bench::generate(args).await,
        Command::Replay(args) => audit_commands::replay(args).await,
        Command::History(args) => audit_commands::history(args).await,
        Command::Export(args) => audit_commands::export(args).await,
        Command::Verify(args) => {
            if audit_commands::verify_command(args).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}
