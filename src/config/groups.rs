//! The option groups the service commands flatten into their arguments, each with the small
//! conversion into the service's options it feeds. A command takes only the groups its role
//! uses; a group shared by several commands (connections, the API, Kafka, PostgreSQL) is defined
//! once here, so its flags, defaults and environment variables are the same everywhere.

use fulfillment::{ApiOptions, FoldOptions, KafkaDeployment, ProjectorOptions};
use fulfillment_ingress::idempotency::IdempotencyRetention;
use fulfillment_ingress::{AuthFailureQuota, BodyLimits, ConnectionLimits, Directory, SystemClock};
use fulfillment_log::KafkaLogOptions;
use fulfillment_read_model::PostgresOptions;
use fulfillment_relay::RelayOptions;
use fulfillment_scheduler::SchedulerOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a client may make the HTTP listener hold: connections and time.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a request's head, from connecting or from the first byte
    /// of its next request; a stalled client is disconnected.
    #[arg(long, env = "FULFILLMENT_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "FULFILLMENT_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
    /// Most open connections (kept an eighth below the open-file limit); at the cap the
    /// connection waiting longest outside a request is closed for the new one.
    #[arg(long, env = "FULFILLMENT_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
}

impl ConnectionArgs {
    pub fn limits(&self) -> ConnectionLimits {
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
pub struct ApiArgs {
    /// Seconds a client has to send a request's body once its head arrived (answered 408).
    #[arg(long, env = "FULFILLMENT_BODY_READ_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// MiB that all request bodies being read or handled may hold together; a body that does
    /// not fit is answered 503 with Retry-After before it is read. At least 1 (one largest body).
    #[arg(long, env = "FULFILLMENT_MAX_BODY_MEMORY_MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_body_memory_mib: u64,
    /// Failed authentication attempts allowed per minute from one address (IPv6: one /64)
    /// before every attempt from it is answered 429 for a while; 0 turns the limit off.
    #[arg(long, env = "FULFILLMENT_AUTH_FAILURES_PER_ADDRESS", default_value_t = 20)]
    pub auth_failures_per_address: u32,
    /// Failed authentication attempts allowed per minute for one credential (a publisher's
    /// webhooks, one API key or token) from anywhere; 0 turns the limit off.
    #[arg(long, env = "FULFILLMENT_AUTH_FAILURES_PER_CREDENTIAL", default_value_t = 60)]
    pub auth_failures_per_credential: u32,
    /// The URL clients reach this service by (`https://fulfillment.example.com`), for the
    /// absolute links of the SaaS API (`Operation-Location`, `@nextLink`); without it links
    /// start with `http://<listen address>`, or are relative when listening on 0.0.0.0. Never
    /// taken from the request's Host header.
    #[arg(long, env = "FULFILLMENT_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Hours an idempotency record (a webhook id, an Idempotency-Key and its answer) is kept;
    /// a repeat after that is decided as a new request. Longer than any client retries (webhook
    /// senders retry for up to 8 hours).
    #[arg(long, env = "FULFILLMENT_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub idempotency_retention_hours: u64,
}

impl ApiArgs {
    /// The API's options for `directory`, on the system clock.
    pub fn options(&self, directory: Directory) -> ApiOptions {
        ApiOptions {
            directory,
            clock: Arc::new(SystemClock),
            body_limits: self.body_limits(),
            auth_failures: self.auth_failures(),
            public_url: self.public_url.clone(),
            idempotency_retention: self.idempotency_retention(),
        }
    }

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
pub struct DirectoryArgs {
    /// Partners, publishers, offers and credentials (TOML). Without it, ./fulfillment.toml is
    /// used when present, else the public demo catalog.
    #[arg(long, env = "FULFILLMENT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// How the projector folds.
#[derive(Debug, clap::Args)]
pub struct FoldingArgs {
    /// Events folded per projector transaction.
    #[arg(long, env = "FULFILLMENT_PROJECTOR_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub projector_batch: u64,
    /// Pause between the scheduler's sweeps for due deadlines (renewals, expiries, activation
    /// deadlines, suspension grace periods), in milliseconds. Each sweep reaches everything due,
    /// including what fell due while the process was down.
    #[arg(long, env = "FULFILLMENT_DEADLINE_CHECK_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub deadline_check_interval_ms: u64,
    #[command(flatten)]
    pub group: ConsumerGroupArgs,
    /// Seconds without a heartbeat after which Kafka moves a projector's partitions to the
    /// other instances (Kafka mode).
    #[arg(long, env = "FULFILLMENT_KAFKA_SESSION_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub kafka_session_timeout: u64,
}

/// The consumer group of the projectors (Kafka mode).
#[derive(Debug, clap::Args)]
pub struct ConsumerGroupArgs {
    /// Consumer group the projector instances share on the events topic (Kafka mode); one name
    /// per read-model database.
    #[arg(long, env = "FULFILLMENT_CONSUMER_GROUP", default_value = "fulfillment-projector")]
    pub consumer_group: String,
}

/// Where Kafka is: the event log's topic, and (for the projector) the billing topic.
#[derive(Debug, clap::Args)]
pub struct KafkaArgs {
    /// Kafka brokers (`host:port[,host:port...]`): the event log goes to the events topic and
    /// billing events to the billing topic. Needs --database-url.
    #[arg(long, env = "FULFILLMENT_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topic the events are appended to (created when missing, unlimited retention).
    #[arg(long, env = "FULFILLMENT_EVENTS_TOPIC", default_value = "fulfillment.events")]
    pub events_topic: String,
    /// Partitions of the events topic when it is created: the most projector instances that
    /// share the work.
    #[arg(long, env = "FULFILLMENT_EVENTS_TOPIC_PARTITIONS", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub events_topic_partitions: i32,
    /// Replication factor of topics created by `fulfillment`.
    #[arg(long, env = "FULFILLMENT_KAFKA_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub kafka_replication_factor: i32,
    /// Seconds an append waits for the broker's acknowledgement before answering 503.
    #[arg(long, env = "FULFILLMENT_KAFKA_DELIVERY_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub kafka_delivery_timeout: u64,
}

/// The billing topic.
#[derive(Debug, clap::Args)]
pub struct BillingTopicArgs {
    /// Topic the billing events are published to.
    #[arg(long, env = "FULFILLMENT_BILLING_TOPIC", default_value = "fulfillment.billing")]
    pub billing_topic: String,
    /// Partitions of the billing topic when it is created (an existing topic is kept).
    #[arg(long, env = "FULFILLMENT_BILLING_TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub billing_topic_partitions: i32,
}

/// Where PostgreSQL is, and how many connections this process may hold.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// Keep the read models and the billing outbox in PostgreSQL
    /// (`postgres://user[:password]@host:port/database`) instead of `<data-dir>/read_model.sqlite`.
    #[arg(long, env = "FULFILLMENT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections in the PostgreSQL pool of this process.
    #[arg(long, env = "FULFILLMENT_DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
    /// Seconds a query waits for a pooled connection before it fails (the projector then
    /// retries the batch; nothing is skipped).
    #[arg(long, env = "FULFILLMENT_DATABASE_ACQUIRE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub database_acquire_timeout: u64,
}

impl DatabaseArgs {
    pub fn postgres(&self) -> Option<PostgresOptions> {
        self.database_url.as_ref().map(|url| PostgresOptions {
            url: url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_secs(self.database_acquire_timeout),
        })
    }
}

impl FoldingArgs {
    /// How the projector folds, with the billing topic when Kafka is configured.
    pub fn options(&self, kafka: &KafkaArgs, billing: &BillingTopicArgs) -> FoldOptions {
        let scheduler = SchedulerOptions {
            interval: Duration::from_millis(self.deadline_check_interval_ms),
            ..SchedulerOptions::default()
        };
        FoldOptions { batch: self.projector_batch as usize, billing_relay: kafka.billing_relay(billing), scheduler }
    }

    /// A projector of `kafka`, folding as these options say.
    pub fn projector(&self, kafka: KafkaDeployment, folding: FoldOptions) -> ProjectorOptions {
        ProjectorOptions { kafka, folding, session_timeout: Duration::from_secs(self.kafka_session_timeout) }
    }
}

impl KafkaArgs {
    /// The Kafka deployment these options, `database` and `consumer_group` name; `None`
    /// without brokers or without a database.
    pub fn deployment(&self, database: &DatabaseArgs, consumer_group: &str) -> Option<KafkaDeployment> {
        let brokers = self.kafka_brokers.as_ref()?;
        Some(KafkaDeployment {
            log: KafkaLogOptions {
                topic: self.events_topic.clone(),
                partitions: self.events_topic_partitions,
                replication_factor: self.kafka_replication_factor,
                delivery_timeout: Duration::from_secs(self.kafka_delivery_timeout),
                ..KafkaLogOptions::new(brokers.clone())
            },
            consumer_group: consumer_group.to_owned(),
            database: database.postgres()?,
        })
    }

    /// The deployment of a separate ingress or projector process, which exists only on Kafka
    /// and PostgreSQL; an error naming what is missing otherwise.
    pub fn require(
        &self,
        database: &DatabaseArgs,
        consumer_group: &str,
        command: &str,
    ) -> anyhow::Result<KafkaDeployment> {
        self.deployment(database, consumer_group).ok_or_else(|| {
            anyhow::anyhow!(
                "fulfillment {command} needs --kafka-brokers and --database-url (or FULFILLMENT_KAFKA_BROKERS and \
                 FULFILLMENT_DATABASE_URL); for one process on the embedded log use `fulfillment serve`"
            )
        })
    }

    /// The billing topic on the brokers, when there are brokers.
    pub fn billing_relay(&self, billing: &BillingTopicArgs) -> Option<RelayOptions> {
        self.kafka_brokers.as_ref().map(|brokers| RelayOptions {
            topic: billing.billing_topic.clone(),
            partitions: billing.billing_topic_partitions,
            replication_factor: self.kafka_replication_factor,
            ..RelayOptions::new(brokers.clone())
        })
    }
}
