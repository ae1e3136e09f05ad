//! The command line of `fulfillment`: one clap struct per subcommand, every option with an
//! environment fallback (`FULFILLMENT_*`), each role taking only the option groups it uses
//! ([`groups`]). The service commands turn their arguments into the service's options here
//! (`service_options`), so `main` only parses and dispatches. The audit commands' arguments
//! live with the commands (`crate::audit_commands`).

mod groups;

pub use groups::{DatabaseArgs, DirectoryArgs};

use crate::audit_commands;
use clap::{Parser, Subcommand};
use fulfillment::logging::LogFormat;
use fulfillment::{EmbeddedOptions, IngressOptions, ReadModelBackend, Role, ServiceOptions};
use fulfillment_ingress::Directory;
use fulfillment_log::SqliteLogOptions;
use groups::{ApiArgs, BillingTopicArgs, ConnectionArgs, ConsumerGroupArgs, FoldingArgs, KafkaArgs};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Event-sourced fulfillment for commercial-marketplace SaaS subscriptions.
#[derive(Debug, Parser)]
#[command(name = "fulfillment", version, about)]
pub struct Config {
    /// Log format: `text` for people, `json` for collectors; `auto` picks text on a terminal.
    #[arg(long, env = "FULFILLMENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the embedded event log and read models (unused with --kafka-brokers).
    #[arg(long, env = "FULFILLMENT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub directory: DirectoryArgs,
    #[command(flatten)]
    pub folding: FoldingArgs,
    /// Subscription states the embedded log keeps in memory, so a command need not read its
    /// stream again: up to twice this many, each about a kilobyte; 0 turns it off (embedded
    /// mode only).
    #[arg(long, env = "FULFILLMENT_STATE_CACHE", default_value_t = 20_000)]
    pub state_cache: usize,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub billing: BillingTopicArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct IngressArgs {
    /// Address to listen on.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub directory: DirectoryArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The projectors' group: reads wait on its offsets to see this process's own writes.
    #[command(flatten)]
    pub group: ConsumerGroupArgs,
}

#[derive(Debug, clap::Args)]
pub struct ProjectorArgs {
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "FULFILLMENT_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub folding: FoldingArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub billing: BillingTopicArgs,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

impl ServeArgs {
    /// What `serve` runs: the embedded log by default, ingress and projector on Kafka with
    /// --kafka-brokers (which needs --database-url: that is checked before `directory` is
    /// loaded, so a wrong command line fails before anything is announced).
    pub fn service_options(
        &self,
        directory: impl FnOnce(&DirectoryArgs) -> anyhow::Result<Directory>,
    ) -> anyhow::Result<ServiceOptions> {
        if self.kafka.kafka_brokers.is_some() && self.database.database_url.is_none() {
            anyhow::bail!(
                "--kafka-brokers puts the event log in Kafka, whose stream versions and dedupe records live in \
                 PostgreSQL: give --database-url too"
            );
        }
        let api = self.api.options(directory(&self.directory)?);
        let folding = self.folding.options(&self.kafka, &self.billing);
        let role = match self.kafka.deployment(&self.database, &self.folding.group.consumer_group) {
            Some(kafka) => Role::IngressAndProjector { projector: self.folding.projector(kafka, folding), api },
            None => Role::Embedded(EmbeddedOptions {
                data_dir: self.data_dir.clone(),
                log: SqliteLogOptions { state_cache: self.state_cache, ..SqliteLogOptions::default() },
                read_models: self.database.postgres().map(ReadModelBackend::Postgres).unwrap_or_default(),
                api,
                folding,
            }),
        };
        Ok(ServiceOptions { listen: self.listen, connection_limits: self.connections.limits(), role })
    }
}

impl IngressArgs {
    /// What `ingress` runs: the API on a Kafka deployment (brokers and database required).
    pub fn service_options(
        &self,
        directory: impl FnOnce(&DirectoryArgs) -> anyhow::Result<Directory>,
    ) -> anyhow::Result<ServiceOptions> {
        let kafka = self.kafka.require(&self.database, &self.group.consumer_group, "ingress")?;
        let api = self.api.options(directory(&self.directory)?);
        let role = Role::Ingress(IngressOptions { kafka, api });
        Ok(ServiceOptions { listen: self.listen, connection_limits: self.connections.limits(), role })
    }
}

impl ProjectorArgs {
    /// What `projector` runs: one projector of a Kafka deployment (brokers and database
    /// required), with the billing relay.
    pub fn service_options(&self) -> anyhow::Result<ServiceOptions> {
        let kafka = self.kafka.require(&self.database, &self.folding.group.consumer_group, "projector")?;
        let folding = self.folding.options(&self.kafka, &self.billing);
        let role = Role::Projector(self.folding.projector(kafka, folding));
        Ok(ServiceOptions { listen: self.listen, connection_limits: self.connections.limits(), role })
    }
}
