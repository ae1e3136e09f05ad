//! `fulfillment`: an event-sourced fulfillment webhook processor for commercial-marketplace
//! SaaS subscriptions bought by CSP partners.
//!
//! This crate assembles the service from the workspace crates: `fulfillment-core` (the pure
//! domain), `fulfillment-log` (the event log), `fulfillment-read-model` (read models and the
//! billing outbox), `fulfillment-projector` (keeps them caught up with the log),
//! `fulfillment-ingress` (HTTP), `fulfillment-relay` (billing topic) and `fulfillment-kafka`
//! (the Kafka plumbing under the last three).
//! [`Service::start`] runs the [`Role`] asked for: ingress and projector in one process on the
//! embedded log (the zero-setup default), or either or both on the Kafka log with PostgreSQL
//! read models; [`Service::stop`] shuts down in a fixed order: stop accepting requests and
//! drain them, let the projector fold them and finish its batch, then close storage.
//!
//! Modules: `service` (roles, start, ordered stop), `read_models` (where the read models
//! live), `directory` (the catalog and credentials, or the demo's), `data_dir` (the lock on a
//! data directory), `error` ([`StartError`]), [`logging`] (how a process logs, shared with
//! `fulfillment-bench`).

mod data_dir;
mod directory;
mod error;
pub mod logging;
mod read_models;
mod service;
mod text_log;

pub use data_dir::DataDirLock;
pub use directory::{load_directory, DirectorySource, DEMO_CONFIG};
pub use error::StartError;
pub use read_models::ReadModelBackend;
pub use service::{
    ApiOptions, EmbeddedOptions, FoldOptions, IngressOptions, KafkaDeployment, ProjectorOptions, Role, Service,
    ServiceOptions,
};

use std::net::SocketAddr;

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

/// The URL a service listening on `addr` is reached by, when the address says it: a concrete
/// address (`127.0.0.1:8080`), not an unspecified one (`0.0.0.0:8080`, which any host name may
/// reach). The SaaS API's links are absolute URIs in its contract; without a configured public
/// URL this is their base, and never the request's `Host`.
pub fn listen_url(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_unspecified()).then(|| format!("http://{addr}"))
}
