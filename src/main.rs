//! The `fulfillment` command: `fulfillment serve` runs the ingress and the projector in one
//! process, on the embedded log (SQLite) by default or on Kafka and PostgreSQL;
//! `fulfillment ingress` and `fulfillment projector` run them as separately scaled processes.

mod audit_commands;
mod bench;
mod text_log;

use clap::{Parser, Subcommand, ValueEnum};
use fulfillment::{
    load_directory, DirectorySource, EventLogBackend, ReadModelBackend, Roles, Service, ServiceOptions, DEMO_CONFIG,
};
use fulfillment_ingress::idempotency::IdempotencyRetention;
use fulfillment_ingress::listener::raise_open_file_limit;
use fulfillment_ingress::{AuthFailureQuota, BodyLimits, ConnectionLimits, SystemClock};
use fulfillment_log::{KafkaLogOptions, SqliteLogOptions};
use fulfillment_projector::KafkaProjectorOptions;
use fulfillment_read_model::{redact_url, PostgresOptions, PostgresReadModel};
use fulfillment_relay::RelayOptions;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Every request allocates (headers, JSON, envelopes) and frees on another thread; glibc's
/// allocator spent about a sixth of the ingest CPU on that (`bench ingest` under perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the HTTP ingress and the projector in one process: on the embedded event log by
    /// default, on Kafka with --kafka-brokers (and --database-url).
    Serve(ServeArgs),
    /// Run only the HTTP ingress, appending to the Kafka event log (scale it out freely).
    Ingress(IngressArgs),
    /// Run only the projector: a consumer group on the events topic folding into PostgreSQL,
    /// and the billing relay; serves /healthz and /readyz.
    Projector(ProjectorArgs),
    /// Rebuild the read models from the first event into a new store (optionally up to a
    /// position or instant), and optionally swap it in for the live one.
    Replay(audit_commands::ReplayArgs),
    /// Check both files with SQLite's integrity_check, replay into a scratch store, compare
    /// with the live read models, check the hash chains; exit 0, 1 or 2 (`verify --help` says
    /// when).
    #[command(after_help = audit_commands::VERIFY_EXIT_STATUS)]
    Verify(audit_commands::VerifyArgs),
    /// One subscription's timeline from the log.
    History(audit_commands::HistoryArgs),
    /// Raw envelopes as JSON lines (streaming), for audits.
    Export(audit_commands::ExportArgs),
    /// Apply the PostgreSQL migrations (`migrations/postgres`) and exit; `serve` applies them
    /// at start too, this is for deploying schema changes ahead of the processes.
    Migrate(MigrateArgs),
    /// Measure the service on this machine and print the figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Partner orders and signed webhooks per second against a service on loopback.
    Ingest(bench::IngestArgs),
    /// Webhook received → billing event visible in the feed, at a steady rate: latency
    /// percentiles.
    E2e(bench::EndToEndArgs),
    /// Write a synthetic event log (for replay figures).
    Generate(bench::GenerateArgs),
    /// Fold a whole log into a fresh SQLite or PostgreSQL read-model store: projector events/s.
    Fold(bench::FoldArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the embedded event log and read models (unused with --kafka-brokers).
    #[arg(long, env = "FULFILLMENT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    directory: DirectoryArgs,
    #[command(flatten)]
    folding: FoldingArgs,
    /// Subscription states the embedded log keeps in memory, so a command need not read its
    /// stream again: up to twice this many, each about a kilobyte; 0 turns it off (embedded
    /// mode only).
    #[arg(long, env = "FULFILLMENT_STATE_CACHE", default_value_t = 20_000)]
    state_cache: usize,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    billing: BillingTopicArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
struct IngressArgs {
    /// Address to listen on.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    directory: DirectoryArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The projectors' group: reads wait on its offsets to see this process's own writes.
    #[command(flatten)]
    group: ConsumerGroupArgs,
}

#[derive(Debug, clap::Args)]
struct ProjectorArgs {
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    folding: FoldingArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    billing: BillingTopicArgs,
}

/// What a client may make the HTTP listener hold: connections and time.
#[derive(Debug, clap::Args)]
struct ConnectionArgs {
    /// Seconds a client has to send a request's head, from connecting or from the first byte
    /// of its next request; a stalled client is disconnected.
    #[arg(long, env = "FULFILLMENT_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "FULFILLMENT_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Most open connections (kept an eighth below the open-file limit); at the cap the
    /// connection waiting longest outside a request is closed for the new one.
    #[arg(long, env = "FULFILLMENT_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
}

impl ConnectionArgs {
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections as usize,
        }
    }
}

/// The API's limits for clients (body memory and time, failed authentication) and the base of
/// the links it hands out.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// Seconds a client has to send a request's body once its head arrived (answered 408).
    #[arg(long, env = "FULFILLMENT_BODY_READ_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout: u64,
    /// MiB that all request bodies being read or handled may hold together; a body that does
    /// not fit is answered 503 with Retry-After before it is read. At least 1 (one largest body).
    #[arg(long, env = "FULFILLMENT_MAX_BODY_MEMORY_MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_body_memory_mib: u64,
    /// Failed authentication attempts allowed per minute from one address (IPv6: one /64)
    /// before every attempt from it is answered 429 for a while; 0 turns the limit off.
    #[arg(long, env = "FULFILLMENT_AUTH_FAILURES_PER_ADDRESS", default_value_t = 20)]
    auth_failures_per_address: u32,
    /// Failed authentication attempts allowed per minute for one credential (a publisher's
    /// webhooks, one API key or token) from anywhere; 0 turns the limit off.
    #[arg(long, env = "FULFILLMENT_AUTH_FAILURES_PER_CREDENTIAL", default_value_t = 60)]
    auth_failures_per_credential: u32,
    /// The URL clients reach this service by (`https://fulfillment.example.com`), for the
    /// absolute links of the SaaS API (`Operation-Location`, `@nextLink`); without it links are
    /// relative. Never taken from the request's Host header.
    #[arg(long, env = "FULFILLMENT_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Hours an idempotency record (a webhook id, an Idempotency-Key and its answer) is kept;
    /// a repeat after that is decided as a new request. Longer than any client retries (webhook
    /// senders retry for up to 8 hours).
    #[arg(long, env = "FULFILLMENT_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    idempotency_retention_hours: u64,
}

impl ApiArgs {
    fn body_limits(&self) -> BodyLimits {
        BodyLimits::new(self.max_body_memory_mib as usize * 1024 * 1024, Duration::from_secs(self.body_read_timeout))
    }

    fn idempotency_retention(&self) -> IdempotencyRetention {
        IdempotencyRetention {
            keep: Duration::from_secs(self.idempotency_retention_hours * 3600),
            ..IdempotencyRetention::default()
        }
    }

    fn auth_failures(&self) -> AuthFailureQuota {
        AuthFailureQuota {
            per_address_per_minute: self.auth_failures_per_address,
            per_credential_per_minute: self.auth_failures_per_credential,
        }
    }
}

/// An absolute `http` or `https` URL without query or fragment; kept without a trailing slash.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let uri: axum::http::Uri = raw.parse().map_err(|e| format!("not a URL: {e}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.query().is_some() || raw.contains('#') {
        return Err(
            "expected an absolute http(s) URL without query or fragment, e.g. https://fulfillment.example.com".into()
        );
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Partners, publishers, offers and credentials.
#[derive(Debug, clap::Args)]
struct DirectoryArgs {
    /// Partners, publishers, offers and credentials (TOML). Without it, ./fulfillment.toml is
    /// used when present, else the public demo catalog.
    #[arg(long, env = "FULFILLMENT_CONFIG")]
    config: Option<PathBuf>,
}

/// How the projector folds.
#[derive(Debug, clap::Args)]
struct FoldingArgs {
    /// Events folded per projector transaction.
    #[arg(long, env = "FULFILLMENT_PROJECTOR_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    projector_batch: u64,
    #[command(flatten)]
    group: ConsumerGroupArgs,
    /// Seconds without a heartbeat after which Kafka moves a projector's partitions to the
    /// other instances (Kafka mode).
    #[arg(long, env = "FULFILLMENT_KAFKA_SESSION_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    kafka_session_timeout: u64,
}

/// The consumer group of the projectors (Kafka mode).
#[derive(Debug, clap::Args)]
struct ConsumerGroupArgs {
    /// Consumer group the projector instances share on the events topic (Kafka mode); one name
    /// per read-model database.
    #[arg(long, env = "FULFILLMENT_CONSUMER_GROUP", default_value = "fulfillment-projector")]
    consumer_group: String,
}

/// Where Kafka is: the event log's topic, and (for the projector) the billing topic.
#[derive(Debug, clap::Args)]
struct KafkaArgs {
    /// Kafka brokers (`host:port[,host:port...]`): the event log goes to the events topic and
    /// billing events to the billing topic. Needs --database-url.
    #[arg(long, env = "FULFILLMENT_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Topic the events are appended to (created when missing, unlimited retention).
    #[arg(long, env = "FULFILLMENT_EVENTS_TOPIC", default_value = "fulfillment.events")]
    events_topic: String,
    /// Partitions of the events topic when it is created: the most projector instances that
    /// share the work.
    #[arg(long, env = "FULFILLMENT_EVENTS_TOPIC_PARTITIONS", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    events_topic_partitions: i32,
    /// Replication factor of topics created by `fulfillment`.
    #[arg(long, env = "FULFILLMENT_KAFKA_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    kafka_replication_factor: i32,
    /// Seconds an append waits for the broker's acknowledgement before answering 503.
    #[arg(long, env = "FULFILLMENT_KAFKA_DELIVERY_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    kafka_delivery_timeout: u64,
}

/// The billing topic.
#[derive(Debug, clap::Args)]
struct BillingTopicArgs {
    /// Topic the billing events are published to.
    #[arg(long, env = "FULFILLMENT_BILLING_TOPIC", default_value = "fulfillment.billing")]
    billing_topic: String,
    /// Partitions of the billing topic when it is created (an existing topic is kept).
    #[arg(long, env = "FULFILLMENT_BILLING_TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    billing_topic_partitions: i32,
}

impl FoldingArgs {
    fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.kafka_session_timeout)
    }
}

impl KafkaArgs {
    /// The Kafka log when brokers are given, else the embedded log tuned by `embedded`.
    fn event_log(
        &self,
        consumer_group: &str,
        session_timeout: Duration,
        embedded: SqliteLogOptions,
    ) -> EventLogBackend {
        match &self.kafka_brokers {
            None => EventLogBackend::Embedded(embedded),
            Some(brokers) => EventLogBackend::Kafka {
                log: KafkaLogOptions {
                    topic: self.events_topic.clone(),
                    partitions: self.events_topic_partitions,
                    replication_factor: self.kafka_replication_factor,
                    delivery_timeout: Duration::from_secs(self.kafka_delivery_timeout),
                    ..KafkaLogOptions::new(brokers.clone())
                },
                projector: KafkaProjectorOptions {
                    topic: self.events_topic.clone(),
                    group: consumer_group.to_owned(),
                    session_timeout,
                    ..KafkaProjectorOptions::new(brokers.clone())
                },
            },
        }
    }

    fn billing_relay(&self, billing: &BillingTopicArgs) -> Option<RelayOptions> {
        self.kafka_brokers.as_ref().map(|brokers| RelayOptions {
            topic: billing.billing_topic.clone(),
            partitions: billing.billing_topic_partitions,
            replication_factor: self.kafka_replication_factor,
            ..RelayOptions::new(brokers.clone())
        })
    }

    /// Separate ingress and projector processes exist only on Kafka and PostgreSQL.
    fn require(&self, database: &DatabaseArgs, command: &str) -> anyhow::Result<()> {
        if self.kafka_brokers.is_none() || database.database_url.is_none() {
            anyhow::bail!(
                "fulfillment {command} needs --kafka-brokers and --database-url (or FULFILLMENT_KAFKA_BROKERS and \
                 FULFILLMENT_DATABASE_URL); for one process on the embedded log use `fulfillment serve`"
            );
        }
        Ok(())
    }
}

/// Where PostgreSQL is, and how many connections this process may hold.
#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// Keep the read models and the billing outbox in PostgreSQL
    /// (`postgres://user[:password]@host:port/database`) instead of `<data-dir>/read_model.sqlite`.
    #[arg(long, env = "FULFILLMENT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections in the PostgreSQL pool of this process.
    #[arg(long, env = "FULFILLMENT_DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    database_max_connections: u32,
    /// Seconds a query waits for a pooled connection before it fails (the projector then
    /// retries the batch; nothing is skipped).
    #[arg(long, env = "FULFILLMENT_DATABASE_ACQUIRE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    database_acquire_timeout: u64,
}

impl DatabaseArgs {
    fn postgres(&self) -> Option<PostgresOptions> {
        self.database_url.as_ref().map(|url| PostgresOptions {
            url: url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_secs(self.database_acquire_timeout),
        })
    }
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Colours only on a terminal: a log file or collector gets no escape sequences at all.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.fmt_fields(text_log::TextFields).init();
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

/// Loads the directory named by the flags (or the default file, or the demo catalog).
fn directory(args: &DirectoryArgs) -> anyhow::Result<fulfillment_ingress::Directory> {
    let explicit = args.config.is_some();
    let path = args.config.clone().unwrap_or_else(|| PathBuf::from("fulfillment.toml"));
    let (directory, source) = load_directory(&path, explicit)?;
    match &source {
        DirectorySource::Demo => announce_demo(),
        DirectorySource::File(p) => info!(config = %p.display(), "configuration loaded"),
    }
    Ok(directory)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.kafka.kafka_brokers.is_some() && args.database.database_url.is_none() {
        anyhow::bail!(
            "--kafka-brokers puts the event log in Kafka, whose stream versions and dedupe records live in \
             PostgreSQL: give --database-url too"
        );
    }
    run(ServiceOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        roles: Roles::BOTH,
        event_log: args.kafka.event_log(
            &args.folding.group.consumer_group,
            args.folding.session_timeout(),
            SqliteLogOptions { state_cache: args.state_cache, ..SqliteLogOptions::default() },
        ),
        directory: directory(&args.directory)?,
        clock: Arc::new(SystemClock),
        projector_batch: args.folding.projector_batch as usize,
        read_models: args.database.postgres().map(ReadModelBackend::Postgres).unwrap_or_default(),
        billing_relay: args.kafka.billing_relay(&args.billing),
        connection_limits: args.connections.limits(),
        body_limits: args.api.body_limits(),
        auth_failures: args.api.auth_failures(),
        public_url: args.api.public_url.clone(),
        idempotency_retention: args.api.idempotency_retention(),
    })
    .await
}

async fn ingress(args: IngressArgs) -> anyhow::Result<()> {
    args.kafka.require(&args.database, "ingress")?;
    run(ServiceOptions {
        listen: args.listen,
        data_dir: PathBuf::new(),
        roles: Roles { ingress: true, projector: false },
        event_log: args.kafka.event_log(
            &args.group.consumer_group,
            Duration::from_secs(10),
            SqliteLogOptions::default(),
        ),
        directory: directory(&args.directory)?,
        clock: Arc::new(SystemClock),
        projector_batch: 1,
        read_models: args.database.postgres().map(ReadModelBackend::Postgres).unwrap_or_default(),
        billing_relay: None,
        connection_limits: args.connections.limits(),
        body_limits: args.api.body_limits(),
        auth_failures: args.api.auth_failures(),
        public_url: args.api.public_url.clone(),
        idempotency_retention: args.api.idempotency_retention(),
    })
    .await
}

async fn projector(args: ProjectorArgs) -> anyhow::Result<()> {
    args.kafka.require(&args.database, "projector")?;
    run(ServiceOptions {
        listen: args.listen,
        data_dir: PathBuf::new(),
        roles: Roles { ingress: false, projector: true },
        event_log: args.kafka.event_log(
            &args.folding.group.consumer_group,
            args.folding.session_timeout(),
            SqliteLogOptions::default(),
        ),
        // The projector serves no API; the directory is never consulted.
        directory: fulfillment_ingress::Directory::from_toml(DEMO_CONFIG)?,
        clock: Arc::new(SystemClock),
        projector_batch: args.folding.projector_batch as usize,
        read_models: args.database.postgres().map(ReadModelBackend::Postgres).unwrap_or_default(),
        billing_relay: args.kafka.billing_relay(&args.billing),
        connection_limits: args.connections.limits(),
        // The projector serves only /healthz and /readyz: no bodies, no credentials, no links.
        body_limits: BodyLimits::default(),
        auth_failures: AuthFailureQuota::default(),
        public_url: None,
        idempotency_retention: IdempotencyRetention::default(),
    })
    .await
}

/// Starts the service and runs it until SIGINT or SIGTERM.
async fn run(options: ServiceOptions) -> anyhow::Result<()> {
    raise_open_file_limit();
    let service = Service::start(options).await?;
    let stop = service.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        stop.cancel();
    });
    service.run_until_stopped().await;
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let Some(options) = args.database.postgres() else {
        anyhow::bail!("fulfillment migrate needs --database-url (or FULFILLMENT_DATABASE_URL)");
    };
    let store = PostgresReadModel::connect(&options).await?;
    store.close().await;
    info!(database = %redact_url(&options.url), "PostgreSQL migrations applied");
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
        Command::Ingress(args) => ingress(args).await,
        Command::Projector(args) => projector(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args).await,
        Command::Bench(BenchCommand::E2e(args)) => bench::end_to_end(args).await,
        Command::Bench(BenchCommand::Generate(args)) => bench::generate(args).await,
        Command::Bench(BenchCommand::Fold(args)) => bench::fold(args).await,
        Command::Replay(args) => audit_commands::replay(args).await,
        Command::History(args) => audit_commands::history(args).await,
        Command::Export(args) => audit_commands::export(args).await,
        Command::Verify(args) => std::process::exit(audit_commands::verify(args).await as i32),
    }
}
