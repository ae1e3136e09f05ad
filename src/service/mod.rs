//! A running service process: [`Service::start`] opens storage and starts the parts its
//! [`Role`] names, then the HTTP server; [`Service::stop`] shuts them down in a fixed order.
//!
//! In: [`ServiceOptions`]. Out: a bound address and a handle to stop.
//!
//! Starting is per backend ([`embedded`], [`kafka`]): each opens its read-model store and event
//! log (through `fulfillment_log::open`) and starts the projector, and hands back the parts
//! ([`Started`]); what follows is the same for every role: the billing relay, the health
//! checks, the router (the API, or only `/healthz` and `/readyz`), the idempotency sweep.
//!
//! Stopping follows the order of influxdb 3, each part with a token of its own, cancelled only
//! once the part before it returned ([`Shutdown`]):
//!
//! 1. the HTTP server stops accepting and drains: every request in flight is answered; the
//!    deadline scheduler finishes the page it is on and stops (nothing appends any more);
//! 2. the projector folds what this process accepted (for at most [`DRAIN_LIMIT`]), finishes
//!    its batch and stops; then the billing relay finishes its round and stops;
//! 3. the idempotency sweep stops;
//! 4. storage closes: the read models, then the event log.

mod embedded;
mod kafka;
mod options;

pub use options::{
    ApiOptions, EmbeddedOptions, FoldOptions, IngressOptions, KafkaDeployment, ProjectorOptions, Role, ServiceOptions,
};

use crate::read_models::ReadModelStore;
use crate::{listen_url, DataDirLock, StartError};
use fulfillment_ingress::idempotency::forget_expired;
use fulfillment_ingress::{health_router, AppState, AuthFailures, HealthChecks, WriteVisibility};
use fulfillment_log::EventLog;
use fulfillment_projector::ProjectorHandle;
use fulfillment_relay::{run_billing_relay, BillingRelay, RelayHandle, RelayOptions};
use fulfillment_scheduler::Scheduler;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Longest a stop waits, once the HTTP server returned, for the projector to fold what this
/// process accepted. A projector that cannot (its database is down) is stopped anyway: it
/// resumes from its committed position at the next start.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// One cancellation token per part, so that each is asked to stop only once the part before it
/// returned; `requested` is the operator's request to begin (a signal handler's).
#[derive(Default)]
struct Shutdown {
    requested: CancellationToken,
    http: CancellationToken,
    scheduler: CancellationToken,
    projector: CancellationToken,
    relay: CancellationToken,
    sweep: CancellationToken,
}

/// The HTTP API of a process that serves one: its settings, the log it appends to, and how its
/// reads wait for its own writes.
struct Api {
    options: ApiOptions,
    log: Arc<dyn EventLog>,
    visibility: Option<Arc<dyn WriteVisibility>>,
}

/// What starting a role's backends produced, for [`Service::start`] to finish.
struct Started {
    store: ReadModelStore,
    lock: Option<DataDirLock>,
    api: Option<Api>,
    projector: Option<ProjectorHandle>,
    billing_relay: Option<RelayOptions>,
    /// Wherever a projector runs: the deadline scheduler, on the same read models.
    scheduler: Option<Scheduler>,
}

/// "Now" for the scheduler, from the API's clock (the system clock, or a test's).
fn clock_reader(clock: &Arc<dyn fulfillment_ingress::Clock>) -> fulfillment_scheduler::Now {
    let clock = clock.clone();
    Arc::new(move || clock.now())
}

/// A running service.
pub struct Service {
    addr: SocketAddr,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
    projector: Option<ProjectorHandle>,
    relay: Option<RelayHandle>,
    /// The deadline scheduler, wherever a projector runs.
    scheduler: Option<JoinHandle<()>>,
    /// The ingress's sweep of expired idempotency records.
    sweep: Option<JoinHandle<()>>,
    /// With the API and the projector in this process: waits until the projector folded what
    /// the API accepted.
    drain: Option<Arc<dyn WriteVisibility>>,
    /// Kept to close last.
    log: Option<Arc<dyn EventLog>>,
    read_model: ReadModelStore,
    _lock: Option<DataDirLock>,
}

impl Service {
    /// Opens storage, starts the parts `options.role` names, then the HTTP server.
    pub async fn start(options: ServiceOptions) -> Result<Service, StartError> {
        let ServiceOptions { listen, connection_limits, role } = options;
        let shutdown = Shutdown::default();
        let (ingress, projector, event_log, read_models) = describe(&role);
        let started = start_backends(role, &shutdown.projector).await?;
        let Started { store, lock, api, projector: projector_handle, billing_relay, scheduler } = started;
        let read_model_handle = store.shared();
        let relay = match (billing_relay, &projector_handle) {
            (Some(relay_options), Some(projector)) => Some(run_billing_relay(
                BillingRelay::new(relay_options)?,
                read_model_handle.clone(),
                projector.position.clone(),
                shutdown.relay.clone(),
            )),
            _ => None,
        };
        let mut components = Vec::new();
        if let Some(projector) = &projector_handle {
            components.push(("projector", projector.healthy.clone()));
        }
        if let Some(relay) = &relay {
            components.push(("billingRelay", relay.healthy.clone()));
        }
        let health = HealthChecks { components };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: listen, source })?;
        let (mut sweep, mut drain, mut log) = (None, None, None);
        let app = match api {
            Some(Api { options, log: api_log, visibility }) => {
                sweep = Some(tokio::spawn(forget_expired(
                    api_log.clone(),
                    options.clock.clone(),
                    options.idempotency_retention,
                    shutdown.sweep.clone(),
                )));
                if projector_handle.is_some() {
                    drain = visibility.clone();
                }
                log = Some(api_log.clone());
                fulfillment_ingress::router(AppState {
                    log: api_log,
                    billing_feed: read_model_handle.clone(),
                    usage: read_model_handle.clone(),
                    read_models: read_model_handle,
                    directory: Arc::new(options.directory),
                    clock: options.clock,
                    visibility,
                    health,
                    bodies: options.body_limits,
                    auth_failures: AuthFailures::new(options.auth_failures),
                    public_url: options.public_url.or_else(|| listen_url(addr)),
                })
            }
            None => health_router(health),
        };
        let server = tokio::spawn(fulfillment_ingress::serve(listener, app, connection_limits, shutdown.http.clone()));
        // Last, once nothing can fail any more: a start that fails leaves no scheduler appending.
        let scheduler = scheduler.map(|s| s.spawn(shutdown.scheduler.clone()));
        info!(%addr, ingress, projector, event_log, read_models, "fulfillment is listening");
        Ok(Service {
            addr,
            shutdown,
            server,
            projector: projector_handle,
            relay,
            scheduler,
            sweep,
            drain,
            log,
            read_model: store,
            _lock: lock,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that asks the service to stop when cancelled (for signal handlers); the stop
    /// itself, in order, is [`Service::run_until_stopped`]'s.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.requested.clone()
    }

    /// Runs until the shutdown token is cancelled, then stops in order.
    pub async fn run_until_stopped(self) {
        self.shutdown.requested.cancelled().await;
        self.stop().await;
    }

    /// Stops in the order of the module documentation: the HTTP server first (answering every
    /// request in flight), then the projector once it folded them and finished its batch, the
    /// relay after its round, the idempotency sweep, and storage last. Each part's token is
    /// cancelled only once the part before it returned.
    pub async fn stop(self) {
        self.shutdown.requested.cancel();
        self.shutdown.http.cancel();
        match join("HTTP server", self.server).await {
            Some(Ok(())) => info!("HTTP server stopped: every request in flight was answered"),
            Some(Err(e)) => error!(error = %e, "HTTP server ended with an error"),
            None => {}
        }
        if let Some(scheduler) = self.scheduler {
            self.shutdown.scheduler.cancel();
            join("deadline scheduler", scheduler).await;
        }
        if let Some(projector) = self.projector {
            if let Some(drain) = &self.drain {
                let started = std::time::Instant::now();
                match drain.wait_for_own_writes(DRAIN_LIMIT).await {
                    Err(e) => warn!(error = %e, "stopping without the projector folding every accepted event"),
                    // The wait gives up at the limit without an error (a lag is not one).
                    Ok(()) if started.elapsed() >= DRAIN_LIMIT => warn!(
                        limit_s = DRAIN_LIMIT.as_secs(),
                        "stopping before the projector folded every accepted event; it resumes from its position at the next start"
                    ),
                    Ok(()) => {}
                }
            }
            self.shutdown.projector.cancel();
            join("projector", projector.task).await;
        }
        if let Some(relay) = self.relay {
            self.shutdown.relay.cancel();
            join("billing relay", relay.task).await;
        }
        if let Some(sweep) = self.sweep {
            self.shutdown.sweep.cancel();
            join("idempotency sweep", sweep).await;
        }
        self.read_model.close().await;
        // The embedded log's writer thread ends once its last handle is gone, after its round.
        drop(self.log);
        info!("fulfillment stopped");
    }
}

/// Opens the backends `role` names and starts its projector (stopped by `stop_projector`).
async fn start_backends(role: Role, stop_projector: &CancellationToken) -> Result<Started, StartError> {
    match role {
        Role::Embedded(options) => embedded::start(options, stop_projector).await,
        Role::Ingress(IngressOptions { kafka, api }) => kafka::start(kafka, Some(api), None, stop_projector).await,
        Role::Projector(ProjectorOptions { kafka, folding, session_timeout }) => {
            kafka::start(kafka, None, Some((folding, session_timeout)), stop_projector).await
        }
        Role::IngressAndProjector { projector: ProjectorOptions { kafka, folding, session_timeout }, api } => {
            kafka::start(kafka, Some(api), Some((folding, session_timeout)), stop_projector).await
        }
    }
}

/// Waits for a part's task to return; a task that panicked is logged.
async fn join<T>(part: &'static str, task: JoinHandle<T>) -> Option<T> {
    match task.await {
        Ok(returned) => Some(returned),
        Err(e) => {
            error!(part, error = %e, "task failed");
            None
        }
    }
}

/// What a role runs, for the start's log line: (ingress, projector, event log, read models).
fn describe(role: &Role) -> (bool, bool, &'static str, &'static str) {
    match role {
        Role::Embedded(options) => {
            let read_models = match options.read_models {
                crate::ReadModelBackend::Embedded => "embedded",
                crate::ReadModelBackend::Postgres(_) => "postgres",
            };
            (true, true, "embedded", read_models)
        }
        Role::Ingress(_) => (true, false, "kafka", "postgres"),
        Role::Projector(_) => (false, true, "kafka", "postgres"),
        Role::IngressAndProjector { .. } => (true, true, "kafka", "postgres"),
    }
}
