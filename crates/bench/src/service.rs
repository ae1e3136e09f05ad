//! The service under test: started in-process through the `fulfillment` library on the demo
//! catalog, with its log and read models in a scratch directory (embedded, the default), or in
//! PostgreSQL, or on a fresh events topic of the Kafka brokers named (with PostgreSQL).
//!
//! In: [`BenchServiceArgs`]. Out: running services for the phases of a benchmark ([`Parts`]).

use anyhow::bail;
use fulfillment::{
    load_directory, ApiOptions, EmbeddedOptions, FoldOptions, IngressOptions, KafkaDeployment, ProjectorOptions,
    ReadModelBackend, Role, Service, ServiceOptions,
};
use fulfillment_ingress::{Directory, SystemClock};
use fulfillment_log::{KafkaLogOptions, SqliteLogOptions};
use fulfillment_read_model::PostgresOptions;
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

/// Where the events and read models of the service under test go.
enum Backend {
    /// The embedded log in the scratch directory, read models there or in PostgreSQL.
    Embedded(ReadModelBackend),
    /// A fresh topic and consumer group of the brokers named, read models in PostgreSQL.
    Kafka(KafkaDeployment),
}

/// Which parts of the service a phase runs; on the embedded log always both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Ingress and projector.
    Both,
    /// Only the ingress (Kafka mode).
    Ingress,
    /// Only the projector (Kafka mode).
    Projector,
}

/// A service under test: a scratch data directory, the demo catalog, and where events and read
/// models go.
pub struct BenchService {
    scratch: tempfile::TempDir,
    directory: Directory,
    backend: Backend,
}

impl BenchServiceArgs {
    /// The embedded default: the log and read models in the scratch directory.
    pub fn embedded() -> Self {
        BenchServiceArgs { database_url: None, kafka_brokers: None, database_max_connections: 64, partitions: 12 }
    }
}

impl BenchService {
    /// The scratch directory the embedded log and read models live in.
    pub fn data_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// A service as `args` describe it, not started yet.
    pub fn new(args: BenchServiceArgs) -> anyhow::Result<Self> {
        let scratch = tempfile::tempdir()?;
        let (directory, _) = load_directory(Path::new("/nonexistent/use-the-demo-catalog.toml"), false)?;
        let postgres = args.database_url.map(|url| PostgresOptions {
            url,
            max_connections: args.database_max_connections,
            acquire_timeout: Duration::from_secs(30),
        });
        let backend = match (args.kafka_brokers, postgres) {
            (None, postgres) => Backend::Embedded(postgres.map(ReadModelBackend::Postgres).unwrap_or_default()),
            (Some(_), None) => bail!("--kafka-brokers needs --database-url (an empty PostgreSQL database)"),
            (Some(brokers), Some(database)) => Backend::Kafka(KafkaDeployment {
                log: KafkaLogOptions {
                    topic: format!("bench.events.{}", uuid::Uuid::new_v4().simple()),
                    partitions: args.partitions,
                    ..KafkaLogOptions::new(brokers)
                },
                consumer_group: format!("bench-projector-{}", uuid::Uuid::new_v4().simple()),
                database,
            }),
        };
        Ok(BenchService { scratch, directory, backend })
    }

    /// The Kafka deployment, in Kafka mode.
    pub fn kafka(&self) -> Option<&KafkaDeployment> {
        match &self.backend {
            Backend::Kafka(kafka) => Some(kafka),
            Backend::Embedded(_) => None,
        }
    }

    /// Starts `parts` of the service on `127.0.0.1:0`.
    pub async fn start(&self, parts: Parts) -> anyhow::Result<Service> {
        let api = ApiOptions::new(self.directory.clone(), Arc::new(SystemClock));
        let folding = FoldOptions { batch: 1000, ..FoldOptions::default() };
        let role = match (&self.backend, parts) {
            (Backend::Embedded(read_models), _) => Role::Embedded(EmbeddedOptions {
                data_dir: self.scratch.path().to_owned(),
                log: SqliteLogOptions::default(),
                read_models: read_models.clone(),
                api,
                folding,
            }),
            (Backend::Kafka(kafka), parts) => {
                let projector =
                    ProjectorOptions { kafka: kafka.clone(), folding, session_timeout: Duration::from_secs(10) };
                match parts {
                    Parts::Both => Role::IngressAndProjector { projector, api },
                    Parts::Ingress => Role::Ingress(IngressOptions { kafka: kafka.clone(), api }),
                    Parts::Projector => Role::Projector(projector),
                }
            }
        };
        let listen = "127.0.0.1:0".parse().expect("a valid address");
        Ok(Service::start(ServiceOptions { listen, connection_limits: Default::default(), role }).await?)
    }

    /// The backend, for the figures' heading.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Embedded(_) => format!("embedded SQLite log in {}", self.scratch.path().display()),
            Backend::Kafka(kafka) => {
                let log = &kafka.log;
                format!("Kafka log on {} (topic {}, {} partitions)", log.brokers, log.topic, log.partitions)
            }
        }
    }
}
