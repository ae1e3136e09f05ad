//! `fulfillment`: an event-sourced fulfillment webhook processor for commercial-marketplace
//! SaaS subscriptions bought by CSP partners.
//!
//! This crate assembles the service from the workspace crates: `fulfillment-core` (the pure
//! domain), `fulfillment-log` (the event log), `fulfillment-projector` (read models and the
//! billing outbox), `fulfillment-ingress` (HTTP) and `fulfillment-relay` (billing topic).
//! [`Service::start`] runs the [`Roles`] asked for: ingress and projector in one process on the
//! embedded log (the zero-setup default), or either or both on the Kafka log with PostgreSQL
//! read models; [`Service::stop`] shuts down in a fixed order: stop accepting requests and
//! drain them, let the projector finish its batch, then close storage.

use async_trait::async_trait;
use fulfillment_ingress::idempotency::{forget_expired, IdempotencyRetention};
use fulfillment_ingress::{
    health_router, AppState, AuthFailureQuota, AuthFailures, BodyLimits, Clock, ConnectionLimits, Directory,
    DirectoryError, HealthChecks, InProcessProjection, WriteVisibility,
};
use fulfillment_log::{
    ensure_topic, EventLog, KafkaEventLog, KafkaLogOptions, LogError, SqliteEventLog, SqliteLogOptions,
};
use fulfillment_projector::{
    run_kafka_projector, run_projector, KafkaProjectorOptions, ProjectorError, ProjectorHandle,
};
use fulfillment_read_model::{PostgresOptions, PostgresReadModel, ReadModels, SqliteReadModel};
use fulfillment_relay::{run_billing_relay, BillingRelay, RelayError, RelayHandle, RelayOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The demo catalog and credentials shipped in the repository (`config/demo.toml`).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file is unreadable or invalid.
    #[error("configuration {path}: {source}")]
    Config {
        /// File.
        path: String,
        /// Problem.
        source: DirectoryError,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    ConfigRead {
        /// File.
        path: String,
        /// Problem.
        source: std::io::Error,
    },
    /// Another process already uses the data directory.
    #[error("data directory {path} is in use by another fulfillment process (lock file {lock})")]
    DataDirInUse {
        /// Directory.
        path: String,
        /// Lock file.
        lock: String,
    },
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: String,
        /// Problem.
        source: std::io::Error,
    },
    /// The event log could not be opened.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// The event log is damaged (SQLite's `quick_check`) or was edited (a hash chain breaks
    /// after the last verified checkpoint): serving it would answer from, and append to, a log
    /// that cannot be trusted.
    #[error(
        "refusing to start on the event log {path}: {problem}. Run \
         `fulfillment verify --data-dir {data_dir}` for a full report"
    )]
    UntrustedLog {
        /// `events.sqlite`.
        path: String,
        /// The data directory, for the command to run.
        data_dir: String,
        /// What the check found.
        problem: LogError,
    },
    /// The read models could not be opened.
    #[error("read models: {0}")]
    ReadModels(#[from] ProjectorError),
    /// The billing relay's Kafka client could not be configured.
    #[error("billing relay: {0}")]
    Relay(#[from] RelayError),
    /// The options do not describe a service that can run.
    #[error("{0}")]
    Invalid(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Problem.
        source: std::io::Error,
    },
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), for benchmark and replay
/// reports: the number, or `unknown` where `/proc` does not tell.
pub fn peak_memory_mib() -> String {
    let read = || {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024)
    };
    read().map(|m| m.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Where the directory came from, so the operator can be told when demo credentials are live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// A configuration file.
    File(PathBuf),
    /// The built-in demo catalog (no file at the default path).
    Demo,
}

/// Loads the directory from `path`. When `path` is the default and no file exists, the demo
/// catalog is used; an explicitly named file that does not exist is an error.
pub fn load_directory(path: &Path, explicitly_named: bool) -> Result<(Directory, DirectorySource), StartError> {
    if !path.exists() && !explicitly_named {
        let directory = Directory::from_toml(DEMO_CONFIG)
            .map_err(|source| StartError::Config { path: "config/demo.toml".into(), source })?;
        return Ok((directory, DirectorySource::Demo));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| StartError::ConfigRead { path: path.display().to_string(), source })?;
    let directory = Directory::from_toml(&text)
        .map_err(|source| StartError::Config { path: path.display().to_string(), source })?;
    Ok((directory, DirectorySource::File(path.to_owned())))
}

/// Exclusive use of a data directory, held while a service (or an offline `replay --swap`)
/// runs, released when dropped. Readers (verify, history, export) do not need it.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, or fails at once when another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, StartError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
        let lock = data_dir.join("fulfillment.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StartError::DataDirInUse { path: data_dir.display().to_string(), lock: lock.display().to_string() })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                Err(StartError::DataDir { path: data_dir.display().to_string(), source })
            }
        }
    }
}

/// Everything needed to run the service, or one of its roles.
pub struct ServiceOptions {
    /// Address to listen on (port 0 picks a free port): the HTTP API, or only `/healthz` and
    /// `/readyz` for a projector-only process.
    pub listen: SocketAddr,
    /// Directory for `events.sqlite` and `read_model.sqlite` (embedded mode only).
    pub data_dir: PathBuf,
    /// Which parts run in this process.
    pub roles: Roles,
    /// Where the events are.
    pub event_log: EventLogBackend,
    /// Partners, publishers, offers.
    pub directory: Directory,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Events folded per projector transaction.
    pub projector_batch: usize,
    /// Where the read models and the billing outbox live.
    pub read_models: ReadModelBackend,
    /// Publish the billing outbox to a Kafka topic (`--kafka-brokers`); the billing feed over
    /// HTTP is served either way.
    pub billing_relay: Option<RelayOptions>,
    /// How long connections may wait and how many there may be.
    pub connection_limits: ConnectionLimits,
    /// The memory request bodies in flight may hold, and the time to read one.
    pub body_limits: BodyLimits,
    /// Failed authentication attempts allowed per address and per credential.
    pub auth_failures: AuthFailureQuota,
    /// Base of the absolute links the SaaS API hands out; `None`: `http://<listen address>`
    /// when that is a concrete address, else relative links.
    pub public_url: Option<String>,
    /// How long idempotency records are kept (ingress).
    pub idempotency_retention: IdempotencyRetention,
}

/// The parts of the service one process runs. The embedded mode needs both in one process (the
/// log is a local file); with Kafka they scale separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serve the HTTP API and append to the log.
    pub ingress: bool,
    /// Fold the log into the read models and relay billing events.
    pub projector: bool,
}

impl Roles {
    /// Ingress and projector in one process (`fulfillment serve`).
    pub const BOTH: Roles = Roles { ingress: true, projector: true };
}

/// Where the events live.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once at start; boxing would buy nothing
pub enum EventLogBackend {
    /// `<data-dir>/events.sqlite`, with its tuning (the state cache's size).
    Embedded(SqliteLogOptions),
    /// A Kafka topic, with its write-side bookkeeping in the PostgreSQL database of the read
    /// models (so [`ReadModelBackend::Postgres`] is required).
    Kafka {
        /// The events topic and producer settings.
        log: KafkaLogOptions,
        /// The projector's consumer group.
        projector: KafkaProjectorOptions,
    },
}

impl Default for EventLogBackend {
    /// The zero-setup default: the embedded log, tuned for one machine.
    fn default() -> Self {
        EventLogBackend::Embedded(SqliteLogOptions::default())
    }
}

/// Where the read models live: next to the embedded log by default, or in PostgreSQL so that
/// they survive the machine and can be queried by other tools.
#[derive(Debug, Clone, Default)]
pub enum ReadModelBackend {
    /// `<data-dir>/read_model.sqlite`.
    #[default]
    Embedded,
    /// A PostgreSQL database (migrated at start).
    Postgres(PostgresOptions),
}

/// The opened read-model store, kept to close it last on shutdown.
#[derive(Clone)]
enum ReadModelStore {
    Sqlite(SqliteReadModel),
    Postgres(PostgresReadModel),
}

impl ReadModelStore {
    async fn open(backend: &ReadModelBackend, data_dir: &Path) -> Result<Self, ProjectorError> {
        Ok(match backend {
            ReadModelBackend::Embedded => {
                ReadModelStore::Sqlite(SqliteReadModel::open(&data_dir.join("read_model.sqlite")).await?)
            }
            ReadModelBackend::Postgres(options) => ReadModelStore::Postgres(PostgresReadModel::connect(options).await?),
        })
    }

    fn shared(&self) -> Arc<dyn ReadModels> {
        match self {
            ReadModelStore::Sqlite(store) => Arc::new(store.clone()),
            ReadModelStore::Postgres(store) => Arc::new(store.clone()),
        }
    }

    async fn close(&self) {
        match self {
            ReadModelStore::Sqlite(store) => store.close().await,
            ReadModelStore::Postgres(store) => store.close().await,
        }
    }
}

/// The URL a service listening on `addr` is reached by, when the address says it: a concrete
/// address (`127.0.0.1:8080`), not an unspecified one (`0.0.0.0:8080`, which any host name may
/// reach). The SaaS API's links are absolute URIs in its contract; without a configured public
/// URL this is their base, and never the request's `Host`.
pub fn listen_url(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_unspecified()).then(|| format!("http://{addr}"))
}

/// A running service.
pub struct Service {
    addr: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    projector: Option<ProjectorHandle>,
    relay: Option<RelayHandle>,
    /// The ingress's sweep of expired idempotency records.
    maintenance: Option<JoinHandle<()>>,
    read_model: ReadModelStore,
    _lock: Option<DataDirLock>,
}

/// Reads wait, in the Kafka mode, until the projector (this process's or another's) committed
/// offsets past every message this process produced.
struct KafkaWriteVisibility {
    log: KafkaEventLog,
    store: PostgresReadModel,
    group: String,
}

#[async_trait]
impl WriteVisibility for KafkaWriteVisibility {
    async fn wait_for_own_writes(&self, limit: std::time::Duration) -> Result<(), String> {
        let produced = self.log.produced_offsets();
        if produced.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // A database that does not answer is a lag here; the read itself reports it.
            if let Ok(consumed) = self.store.consumed_offsets(&self.group, self.log.topic()).await {
                if produced.iter().all(|(p, offset)| consumed.get(p).is_some_and(|next| next > offset)) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl Service {
    /// Opens storage, starts the projector and the HTTP server, as `options.roles` asks.
    pub async fn start(options: ServiceOptions) -> Result<Service, StartError> {
        let roles = options.roles;
        if !roles.ingress && !roles.projector {
            return Err(StartError::Invalid("nothing to run: neither ingress nor projector".into()));
        }
        if matches!(options.event_log, EventLogBackend::Embedded(_)) && roles != Roles::BOTH {
            return Err(StartError::Invalid(
                "the embedded event log runs ingress and projector in one process (fulfillment serve); \
                 separate ingress and projector processes need --kafka-brokers and --database-url"
                    .into(),
            ));
        }
        let lock = match options.event_log {
            EventLogBackend::Embedded(_) => Some(DataDirLock::acquire(&options.data_dir)?),
            EventLogBackend::Kafka { .. } => None,
        };
        let read_model = ReadModelStore::open(&options.read_models, &options.data_dir).await?;
        let read_models = read_model.shared();
        let shutdown = CancellationToken::new();
        // What the ingress needs (the log, and how its reads wait for its own writes), when this
        // process runs one, and the projector.
        type IngressParts = (Arc<dyn EventLog>, Arc<dyn WriteVisibility>);
        let (ingress, projector): (Option<IngressParts>, Option<ProjectorHandle>) = match (
            &options.event_log,
            &read_model,
        ) {
            (EventLogBackend::Embedded(log_options), _) => {
                let path = options.data_dir.join("events.sqlite");
                let log: Arc<dyn EventLog> =
                    Arc::new(SqliteEventLog::open(&path, log_options.clone()).await.map_err(|e| match e {
                        LogError::Damaged(_) | LogError::Tampered(_) => StartError::UntrustedLog {
                            path: path.display().to_string(),
                            data_dir: options.data_dir.display().to_string(),
                            problem: e,
                        },
                        other => StartError::Log(other),
                    })?);
                let projector =
                    run_projector(log.clone(), read_models.clone(), options.projector_batch, shutdown.child_token());
                let visibility: Arc<dyn WriteVisibility> =
                    Arc::new(InProcessProjection { head: log.head(), projected: projector.position.clone() });
                (Some((log, visibility)), Some(projector))
            }
            (
                EventLogBackend::Kafka { log: log_options, projector: projector_options },
                ReadModelStore::Postgres(store),
            ) => {
                let kafka_log = if roles.ingress {
                    Some(KafkaEventLog::connect(log_options.clone(), store.pool().clone()).await?)
                } else {
                    // The projector only consumes; it still creates the topic, so whichever
                    // process starts first finds it.
                    if log_options.create_topic {
                        ensure_topic(log_options).await?;
                    }
                    None
                };
                let projector = if roles.projector {
                    Some(run_kafka_projector(
                        KafkaProjectorOptions { batch: options.projector_batch, ..projector_options.clone() },
                        store.clone(),
                        store.pool().clone(),
                        shutdown.child_token(),
                    )?)
                } else {
                    None
                };
                let ingress = kafka_log.map(|log| {
                    let visibility: Arc<dyn WriteVisibility> = Arc::new(KafkaWriteVisibility {
                        log: log.clone(),
                        store: store.clone(),
                        group: projector_options.group.clone(),
                    });
                    (Arc::new(log) as Arc<dyn EventLog>, visibility)
                });
                (ingress, projector)
            }
            (EventLogBackend::Kafka { .. }, ReadModelStore::Sqlite(_)) => return Err(StartError::Invalid(
                "the Kafka event log keeps stream versions and dedupe records in PostgreSQL: give --database-url too"
                    .into(),
            )),
        };
        let relay = match (&options.billing_relay, &projector) {
            (Some(relay_options), Some(projector)) => Some(run_billing_relay(
                BillingRelay::new(relay_options.clone())?,
                read_models.clone(),
                projector.position.clone(),
                shutdown.child_token(),
            )),
            _ => None,
        };
        let mut components = Vec::new();
        if let Some(projector) = &projector {
            components.push(("projector", projector.healthy.clone()));
        }
        if let Some(relay) = &relay {
            components.push(("billingRelay", relay.healthy.clone()));
        }
        let health = HealthChecks { components };
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| StartError::Listen { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: options.listen, source })?;
        let mut maintenance = None;
        let app = match ingress {
            Some((log, visibility)) => {
                maintenance = Some(tokio::spawn(forget_expired(
                    log.clone(),
                    options.clock.clone(),
                    options.idempotency_retention,
                    shutdown.child_token(),
                )));
                fulfillment_ingress::router(AppState {
                    log,
                    billing_feed: read_models.clone(),
                    read_models,
                    directory: Arc::new(options.directory),
                    clock: options.clock,
                    visibility: Some(visibility),
                    health,
                    bodies: options.body_limits,
                    auth_failures: AuthFailures::new(options.auth_failures),
                    public_url: options.public_url.or_else(|| listen_url(addr)),
                })
            }
            None => health_router(health),
        };
        let server =
            tokio::spawn(fulfillment_ingress::serve(listener, app, options.connection_limits, shutdown.clone()));
        let read_models_backend = match &options.read_models {
            ReadModelBackend::Embedded => "embedded",
            ReadModelBackend::Postgres(_) => "postgres",
        };
        let event_log_backend = match &options.event_log {
            EventLogBackend::Embedded(_) => "embedded",
            EventLogBackend::Kafka { .. } => "kafka",
        };
        info!(
            %addr,
            ingress = roles.ingress,
            projector = roles.projector,
            event_log = event_log_backend,
            read_models = read_models_backend,
            "fulfillment is listening"
        );
        Ok(Service { addr, shutdown, server, projector, relay, maintenance, read_model, _lock: lock })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that stops the service when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the shutdown token is cancelled, then stops in order.
    pub async fn run_until_stopped(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }

    /// Stops: the HTTP server first (draining requests), then the projector after its
    /// current batch, then storage.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server ended with an error"),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        }
        if let Some(projector) = self.projector {
            if let Err(e) = projector.task.await {
                tracing::error!(error = %e, "projector task failed");
            }
        }
        if let Some(relay) = self.relay {
            if let Err(e) = relay.task.await {
                tracing::error!(error = %e, "billing relay task failed");
            }
        }
        if let Some(maintenance) = self.maintenance {
            if let Err(e) = maintenance.await {
                tracing::error!(error = %e, "idempotency sweep task failed");
            }
        }
        self.read_model.close().await;
        info!("fulfillment stopped");
    }
}
