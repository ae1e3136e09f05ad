//! The service under test: started in-process through the `fulfillment` library on the demo
//! catalog, with its log and read models in a scratch directory (embedded, the default), or in
//! PostgreSQL, or on a fresh events topic of the Kafka brokers named (with PostgreSQL).
//!
//! In: [`BenchServiceArgs`]. Out: running services for the phases of a benchmark.

use anyhow::bail;
use fulfillment::{load_directory, EventLogBackend, ReadModelBackend, Roles, Service, ServiceOptions};
use fulfillment_ingress::SystemClock;
use fulfillment_log::KafkaLogOptions;
use fulfillment_projector::{KafkaProjectorOptions, PostgresOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Where a benchmark's service keeps its log and read models (embedded when no flag is given).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchServiceArgs {
    /// Fold into read models in this PostgreSQL database (which should be empty) instead of a
    /// scratch SQLite file.
    #[arg(long, env = "FULFILLMENT_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Append to a fresh events topic on these Kafka brokers (needs --database-url).
    #[arg(long, env = "FULFILLMENT_BENCH_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// PostgreSQL connections of the service (in Kafka mode each append in flight holds one
    /// while it waits for the broker's acknowledgement).
    #[arg(long, default_value_t = 64)]
    database_max_connections: u32,
    /// Partitions of the fresh events topic (Kafka mode).
    #[arg(long, default_value_t = 12)]
    partitions: i32,
}

/// A service under test: a scratch data directory, the demo catalog, and where events and read
/// models go.
pub struct BenchService {
    scratch: tempfile::TempDir,
    directory: fulfillment_ingress::Directory,
    /// Where the events go.
    pub event_log: EventLogBackend,
    /// Where the read models go, when not in the scratch directory.
    pub postgres: Option<PostgresOptions>,
}

impl BenchService {
    /// A service as `args` describe it, not started yet.
    pub fn new(args: BenchServiceArgs) -> anyhow::Result<Self> {
        let scratch = tempfile::tempdir()?;
        let (directory, _) = load_directory(Path::new("/nonexistent/use-the-demo-catalog.toml"), false)?;
        let postgres = args.database_url.map(|url| PostgresOptions {
            url,
            max_connections: args.database_max_connections,
            acquire_timeout: Duration::from_secs(30),
        });
        let event_log = match args.kafka_brokers {
            None => EventLogBackend::default(),
            Some(brokers) => {
                if postgres.is_none() {
                    bail!("--kafka-brokers needs --database-url (an empty PostgreSQL database)");
                }
                let topic = format!("bench.events.{}", uuid::Uuid::new_v4().simple());
                EventLogBackend::Kafka {
                    log: KafkaLogOptions {
                        topic: topic.clone(),
                        partitions: args.partitions,
                        ..KafkaLogOptions::new(brokers.clone())
                    },
                    projector: KafkaProjectorOptions {
                        topic,
                        group: format!("bench-projector-{}", uuid::Uuid::new_v4().simple()),
                        ..KafkaProjectorOptions::new(brokers)
                    },
                }
            }
        };
        Ok(BenchService { scratch, directory, event_log, postgres })
    }

    /// Whether the events go to Kafka.
    pub fn kafka(&self) -> bool {
        matches!(self.event_log, EventLogBackend::Kafka { .. })
    }

    /// Starts `roles` of the service on `127.0.0.1:0`.
    pub async fn start(&self, roles: Roles) -> anyhow::Result<Service> {
        Service::start(ServiceOptions {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            data_dir: self.scratch.path().to_owned(),
            roles,
            event_log: self.event_log.clone(),
            directory: self.directory.clone(),
            clock: Arc::new(SystemClock),
            projector_batch: 1000,
            read_models: self.postgres.clone().map(ReadModelBackend::Postgres).unwrap_or_default(),
            billing_relay: None,
            connection_limits: Default::default(),
            body_limits: Default::default(),
            auth_failures: Default::default(),
            public_url: None,
            idempotency_retention: Default::default(),
        })
        .await
        .map_err(Into::into)
    }

    /// The backend, for the figures' heading.
    pub fn describe(&self) -> String {
        match &self.event_log {
            EventLogBackend::Embedded(_) => format!("embedded SQLite log in {}", self.scratch.path().display()),
            EventLogBackend::Kafka { log, .. } => {
                format!("Kafka log on {} (topic {}, {} partitions)", log.brokers, log.topic, log.partitions)
            }
        }
    }
}
