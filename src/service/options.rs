//! What a service process runs, and the options of exactly that: a [`Role`] whose variants
//! carry only what their parts use, so no role is handed placeholders for another's settings.
//!
//! The parts are two. The **ingress** serves the HTTP API and appends to the event log
//! ([`ApiOptions`]); the **projector** folds the log into the read models and relays billing
//! events ([`FoldOptions`]). On the embedded log both run in one process, because the log is a
//! local file ([`Role::Embedded`]); on Kafka they scale separately ([`Role::Ingress`],
//! [`Role::Projector`]) or share a process ([`Role::IngressAndProjector`]), and every process of
//! one deployment names the same topic, consumer group and database ([`KafkaDeployment`]).

use crate::ReadModelBackend;
use fulfillment_ingress::idempotency::IdempotencyRetention;
use fulfillment_ingress::{AuthFailureQuota, BodyLimits, Clock, ConnectionLimits, Directory};
use fulfillment_log::{KafkaLogOptions, SqliteLogOptions};
use fulfillment_read_model::PostgresOptions;
use fulfillment_relay::RelayOptions;
use fulfillment_scheduler::SchedulerOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything needed to run one service process.
pub struct ServiceOptions {
    /// Address to listen on (port 0 picks a free port): the HTTP API, or only `/healthz` and
    /// `/readyz` for a projector-only process.
    pub listen: SocketAddr,
    /// How long connections may wait and how many there may be (every role listens).
    pub connection_limits: ConnectionLimits,
    /// What runs in this process.
    pub role: Role,
}

/// What one process runs, with the options of exactly that.
#[allow(clippy::large_enum_variant)] // built once at start; boxing would buy nothing
pub enum Role {
    /// `fulfillment serve` on the embedded log: ingress and projector in one process, the log
    /// (and by default the read models) in a locked data directory.
    Embedded(EmbeddedOptions),
    /// `fulfillment ingress`: the HTTP API, appending to the Kafka log.
    Ingress(IngressOptions),
    /// `fulfillment projector`: folds the Kafka log into PostgreSQL and relays billing events;
    /// serves only `/healthz` and `/readyz`.
    Projector(ProjectorOptions),
    /// `fulfillment serve --kafka-brokers`: a projector and the HTTP API on its deployment, in
    /// one process sharing one PostgreSQL pool.
    IngressAndProjector {
        /// The projector, and the deployment the API appends to.
        projector: ProjectorOptions,
        /// The API.
        api: ApiOptions,
    },
}

/// The HTTP API's settings (the ingress).
#[derive(Clone)]
pub struct ApiOptions {
    /// Partners, publishers, offers.
    pub directory: Directory,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// The memory request bodies in flight may hold, and the time to read one.
    pub body_limits: BodyLimits,
    /// Failed authentication attempts allowed per address and per credential.
    pub auth_failures: AuthFailureQuota,
    /// Base of the absolute links the SaaS API hands out; `None`: `http://<listen address>`
    /// when that is a concrete address, else relative links.
    pub public_url: Option<String>,
    /// How long idempotency records are kept.
    pub idempotency_retention: IdempotencyRetention,
}

impl ApiOptions {
    /// The API for `directory` on `clock`, every limit at its default.
    pub fn new(directory: Directory, clock: Arc<dyn Clock>) -> Self {
        ApiOptions {
            directory,
            clock,
            body_limits: BodyLimits::default(),
            auth_failures: AuthFailureQuota::default(),
            public_url: None,
            idempotency_retention: IdempotencyRetention::default(),
        }
    }
}

/// How the projector folds, where its billing events go besides the feed, and how its
/// scheduler reaches deadlines (the scheduler runs wherever a projector runs: it reads the
/// read models the projector writes).
#[derive(Debug, Clone)]
pub struct FoldOptions {
    /// Events folded per projector transaction.
    pub batch: usize,
    /// Publish the billing outbox to a Kafka topic; the billing feed over HTTP is served
    /// either way.
    pub billing_relay: Option<RelayOptions>,
    /// The deadline scheduler's pace.
    pub scheduler: SchedulerOptions,
}

impl Default for FoldOptions {
    /// Batches of 1,000 events, no billing topic, deadlines checked every second.
    fn default() -> Self {
        FoldOptions { batch: 1000, billing_relay: None, scheduler: SchedulerOptions::default() }
    }
}

/// `fulfillment serve` on the embedded log.
pub struct EmbeddedOptions {
    /// Directory for `events.sqlite` and (unless in PostgreSQL) `read_model.sqlite`; locked
    /// while the service runs.
    pub data_dir: PathBuf,
    /// Tuning of the embedded log (the state cache's size).
    pub log: SqliteLogOptions,
    /// Where the read models and the billing outbox live.
    pub read_models: ReadModelBackend,
    /// The HTTP API.
    pub api: ApiOptions,
    /// The projector.
    pub folding: FoldOptions,
}

/// What every process of one Kafka deployment names alike.
#[derive(Clone)]
pub struct KafkaDeployment {
    /// The events topic and how to produce to it.
    pub log: KafkaLogOptions,
    /// The projectors' consumer group on the events topic: projectors join it, and an ingress
    /// waits on its offsets for a read to see the process's own writes.
    pub consumer_group: String,
    /// The database of the read models, the billing outbox and the log's write-side
    /// bookkeeping (stream versions, dedupe records).
    pub database: PostgresOptions,
}

/// `fulfillment ingress`: the HTTP API on a Kafka deployment.
pub struct IngressOptions {
    /// The deployment it appends to.
    pub kafka: KafkaDeployment,
    /// The API.
    pub api: ApiOptions,
}

/// `fulfillment projector`: one member of a deployment's consumer group.
#[derive(Clone)]
pub struct ProjectorOptions {
    /// The deployment it folds.
    pub kafka: KafkaDeployment,
    /// Batch size and billing topic.
    pub folding: FoldOptions,
    /// Time without a heartbeat after which Kafka moves this projector's partitions to the
    /// other instances.
    pub session_timeout: Duration,
}
